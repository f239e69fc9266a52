#!/bin/sh
# Enrollment through an external CA over CMP ([ca] mode = cmp) against
# tests/tools/cmpca (OpenSSL's CMP server API signing every request), next
# to the built-in CA in the same run: one keep-alive client posting
# POST /v1/certificates with a fresh CSR each, for BENCH_SECONDS (10), one
# enrollment after the other (the test CA, like OpenSSL's mock server,
# serves one transaction at a time; OSSL_CMP_SRV_CTX keeps one).
# Runs in a private network namespace with a PostgreSQL of its own (durable:
# fsync on). Prints "bench: NAME VALUE UNIT":
#   cmp_enroll_per_s, cmp_enroll_p50_ms     through CMP
#   builtin_enroll_per_s, builtin_enroll_p50_ms   the built-in CA, same load
#   cmp_added_ms                             p50 through CMP - p50 built-in
# usage: BIN=build/bin sh tests/bench/bench_cmp.sh
set -eu
if [ -z "${PROVD_CMP_NETNS:-}" ]; then
	exec env PROVD_CMP_NETNS=1 unshare --net sh "$0" "$@"
fi
ip link set lo up
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$top/build/bin}
. "$top/scripts/provd-lib.sh"
B=$(mktemp -d /tmp/provd-bench-cmp.XXXXXX)
chmod 755 "$B"
pid="" ca_pid=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[ -n "$ca_pid" ] && kill "$ca_pid" 2>/dev/null || true
	sh "$top/scripts/services.sh" stop "$B/svc" >/dev/null 2>&1 || true
	rm -rf "$B"
}
trap cleanup EXIT INT TERM
unset PGPORT PGHOST
sh "$top/scripts/services.sh" start "$B/svc" pg >/dev/null
set -a; . "$B/svc/services.env"; set +a
CP=7100
E=$B/ent
mkdir -p "$E"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=Bench Enterprise CA" \
    -keyout "$E/ca.key" -out "$E/ca.crt" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 's3cret\n' > "$E/secret"
"$top/build/tests/tools/cmpca" $CP "$E/ca.crt" "$E/ca.key" 1234 s3cret >"$B/cmpca.out" 2>&1 &
ca_pid=$!

# run NAME DB [ca lines]: provd on database DB with a CA of its own, then
# the load; figures named NAME_enroll_*
run() {
	_name=$1 _db=$2
	shift 2
	psql -X -q -d postgres -c "create database $_db" >/dev/null
	cat > "$B/$_name.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=$_db user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $B/$_name-ca
$*
[log]
level = warn
CONF
	if [ "$_name" = cmp ]; then
		"$BIN/provd" -c "$B/$_name.conf" ca init --chain "$E/ca.crt" >/dev/null
	else
		"$BIN/provd" -c "$B/$_name.conf" ca init >/dev/null
	fi
	"$BIN/provd" -c "$B/$_name.conf" migrate >/dev/null
	"$BIN/provd" -c "$B/$_name.conf" token add --role operator --name bench > "$B/$_name.token" 2>/dev/null
	mkdir -p "$B/$_name"
	provd_start "$B/$_name.conf" "$B/$_name"
	pid=$provd_pid
	"$top/build/tests/bench/bench_issue" --url "$URL" --token-file "$B/$_name.token" \
	    --conninfo "host=127.0.0.1 port=$PGPORT dbname=$_db user=postgres password=$(cat "$PROVD_DB_PASSWORD_FILE")" \
	    --clients 1 --seconds "${BENCH_SECONDS:-10}" --prefix "${_name}_" --issue-only --mac-in-csr \
	    | sed 's/_issue_/_enroll_/' | tee "$B/$_name.out"
	grep -m 3 'external CA' "$B/$_name/provd.log" >&2 || true	# failures, if any
	kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
	pid=""
}
run builtin bench_builtin ""
run cmp bench_cmp "mode = cmp
cmp_url = http://127.0.0.1:$CP/pkix/
cmp_ref = 1234
cmp_secret_file = $E/secret"
p50() { sed -n "s/^bench: $1_enroll_p50_ms \([0-9.]*\) ms/\1/p" "$B/$1.out"; }
awk -v a="$(p50 cmp)" -v b="$(p50 builtin)" 'BEGIN { printf "bench: cmp_added_ms %.2f ms\n", a - b }'
