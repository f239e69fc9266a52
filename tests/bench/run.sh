#!/bin/sh
# make bench: every benchmark in tests/bench/, against durable private
# services (fsync on, synchronous_commit on). Prints "bench: NAME VALUE UNIT".
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$top/build/bin
. "$top/scripts/provd-lib.sh"
B=$(mktemp -d /tmp/provd-bench.XXXXXX)
chmod 755 "$B"
pid=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	sh "$top/scripts/services.sh" stop "$B/svc" >/dev/null 2>&1 || true
	rm -rf "$B"
}
trap cleanup EXIT INT TERM

sh "$top/scripts/services.sh" start "$B/svc" pg >/dev/null
set -a; . "$B/svc/services.env"; set +a
cat > "$B/provd.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=provd user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $B/ca
crl_url = http://127.0.0.1:8440/v1/crl
ocsp_url = http://127.0.0.1:8440/ocsp
[log]
level = warn
CONF
"$BIN/provd" -c "$B/provd.conf" ca init >/dev/null
"$BIN/provd" -c "$B/provd.conf" migrate >/dev/null
"$BIN/provd" -c "$B/provd.conf" token add --role operator --name bench > "$B/token" 2>/dev/null
provd_start "$B/provd.conf" "$B"
pid=$provd_pid
conninfo="host=127.0.0.1 port=$PGPORT dbname=provd user=postgres password=$(cat "$PROVD_DB_PASSWORD_FILE")"

"$top/build/tests/bench/bench_issue" --url "$URL" --token-file "$B/token" \
    --conninfo "$conninfo" --clients 16 --seconds "${BENCH_SECONDS:-10}"
