# Shell helpers shared by the demo, the tests and the benchmarks.
# Sourced; expects BIN (the directory holding provd).

# provd_start CONF DIR: runs "provd -c CONF run" in the background with its
# output in DIR/provd.out and DIR/provd.log, waits until it listens, and sets
# provd_pid and URL. Returns non-zero (after printing the log) if it does not
# come up within 10 s.
provd_start() {
	"$BIN/provd" -c "$1" run >"$2/provd.out" 2>"$2/provd.log" &
	provd_pid=$!
	_n=0
	until grep -q 'listening on' "$2/provd.out" 2>/dev/null; do
		_n=$((_n + 1))
		if [ $_n -gt 200 ] || ! kill -0 "$provd_pid" 2>/dev/null; then
			echo "provd did not start:" >&2
			cat "$2/provd.log" >&2
			return 1
		fi
		sleep 0.05
	done
	URL=http://127.0.0.1:$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$2/provd.out")
}
