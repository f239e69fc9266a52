# Shell helpers shared by the demo, the tests and the benchmarks.
# Sourced; expects BIN (the directory holding provd).

# provd_start CONF DIR: runs "provd -c CONF run" in the background with its
# output in DIR/provd.out and DIR/provd.log, waits until it listens, and sets
# provd_pid and URL. Returns non-zero (after printing the log) if it does not
# come up within 10 s.
provd_start() {
	# emptied here, not only by the redirection below, which happens in the
	# background child: the loop could otherwise read a previous run's port
	: > "$2/provd.out"
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

# swtpm_start DIR: a private swtpm (state in DIR) on free 127.0.0.1 ports,
# in the background; sets swtpm_pid and swtpm_tcti once it answers.
# Returns non-zero if it does not come up within 10 s (three tries of a
# port pair, in case one was taken meanwhile).
swtpm_start() {
	mkdir -p "$1"
	for _try in 1 2 3; do
		# a port whose next one (swtpm's control port) is free too
		_port=$(python3 -c '
import socket
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); s.close()')
		swtpm socket --tpm2 --tpmstate dir="$1" \
		    --server type=tcp,port=$_port,bindaddr=127.0.0.1 \
		    --ctrl type=tcp,port=$((_port + 1)),bindaddr=127.0.0.1 \
		    --flags not-need-init,startup-clear >"$1/swtpm.log" 2>&1 &
		swtpm_pid=$!
		_n=0
		while [ $_n -lt 100 ]; do
			if python3 -c "import socket; socket.create_connection(('127.0.0.1', $_port), 0.2).close()" 2>/dev/null; then
				swtpm_tcti="swtpm:host=127.0.0.1,port=$_port"
				return 0
			fi
			kill -0 "$swtpm_pid" 2>/dev/null || break
			_n=$((_n + 1))
			sleep 0.1
		done
		kill "$swtpm_pid" 2>/dev/null
		wait "$swtpm_pid" 2>/dev/null || true	# callers may run under set -e
	done
	echo "swtpm did not start:" >&2
	cat "$1/swtpm.log" >&2
	return 1
}
