#!/bin/sh
# Runs every test suite and ends with one line "N passed, N failed".
#   unit tests (cmocka) from build/ and build-asan/ (AddressSanitizer + UBSan),
#   integration tests (tests/integration/*.sh) against real PostgreSQL and
#   slapd with the sanitizer build of provd, and the fuzz targets for a
#   bounded time. Exits non-zero on any failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

pass=0; fail=0
failed_names=""
note_fail() { fail=$((fail + $1)); failed_names="$failed_names $2"; }

run=$(mktemp -d /tmp/provd-check.XXXXXX)
chmod 755 "$run"
cleanup() { sh scripts/services.sh stop "$run/svc" >/dev/null 2>&1; rm -rf "$run"; }
trap cleanup EXIT INT TERM

echo "== services"
PROVD_PG_FAST=1 sh scripts/services.sh start "$run/svc" || { echo "0 passed, 1 failed"; exit 1; }
set -a; . "$run/svc/services.env"; set +a
PROVD_TEST_CONNINFO="host=127.0.0.1 port=$PGPORT dbname=provd user=postgres password=$(cat "$PROVD_DB_PASSWORD_FILE")"
export PROVD_TEST_CONNINFO
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests"
for variant in build build-asan; do
	for t in $(find "$variant/tests/unit" -type f -perm -u+x ! -name "*.d" 2>/dev/null | sort); do
		out=$("$t" 2>&1); rc=$?
		p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
		f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
		p=${p:-0}; f=${f:-0}
		if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi	# crashed or sanitizer report
		pass=$((pass + p))
		echo "$t: $p passed, $f failed"
		if [ "$f" != 0 ]; then
			printf '%s\n' "$out" | tail -n 40
			note_fail "$f" "$t"
		fi
	done
done

echo "== integration tests"
export PROVD_BIN=${PROVD_BIN:-$top/build-asan/bin}
for t in tests/integration/test_*.sh; do
	out=$(sh "$t" 2>&1); rc=$?
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	f=$(printf '%s\n' "$out" | grep -c '^not ok ')
	if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
	pass=$((pass + p))
	echo "$t: $p passed, $f failed"
	if [ "$f" != 0 ]; then
		printf '%s\n' "$out" | grep -v '^ok ' | tail -n 100
		note_fail "$f" "$t"
	fi
done

echo "== fuzz targets (${FUZZ_SECONDS}s each)"
for t in $(find build-fuzz/bin -type f -name 'fuzz_*' 2>/dev/null | sort); do
	n=$(basename "$t")
	corpus=$run/corpus-$n
	mkdir -p "$corpus"
	[ -d "tests/fuzz/corpus/$n" ] && cp tests/fuzz/corpus/"$n"/* "$corpus"/ 2>/dev/null
	if "$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
	    "$corpus" >"$run/$n.log" 2>&1; then
		pass=$((pass + 1)); echo "$n: ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$run/$n.log" | tail -n 1))"
	else
		tail -n 40 "$run/$n.log"
		note_fail 1 "$n"
	fi
done

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
