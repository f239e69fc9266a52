# Shared set-up for the integration tests: a private database (in the
# PostgreSQL that tests/run-all.sh started, or in services started here when
# run alone), a CA, API tokens and a running provd; TAP-style "ok"/"not ok"
# lines that tests/run-all.sh counts.
# Sourced by tests/integration/test_*.sh.

top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PROVD_BIN:-$top/build/bin}
. "$top/scripts/provd-lib.sh"
T=$(mktemp -d /tmp/provd-it.XXXXXX)
chmod 755 "$T"
own_services=0
provd_pid=""
dbname=""
nfail=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; nfail=$((nfail + 1)); }
# check NAME CMD...: ok when CMD succeeds
check() { n=$1; shift; if "$@" >"$T/last.out" 2>&1; then ok "$n"; else not_ok "$n"; sed 's/^/    /' "$T/last.out" | tail -n 20; fi; }
# check_fails NAME CMD...: ok when CMD fails
check_fails() { n=$1; shift; if "$@" >"$T/last.out" 2>&1; then not_ok "$n (unexpectedly succeeded)"; sed 's/^/    /' "$T/last.out" | tail -n 20; else ok "$n"; fi; }
# check_out NAME PATTERN CMD...: ok when CMD succeeds and its output matches PATTERN (grep -E)
check_out() { n=$1; p=$2; shift 2; if "$@" >"$T/last.out" 2>&1 && grep -qE -- "$p" "$T/last.out"; then ok "$n"; else not_ok "$n"; sed 's/^/    /' "$T/last.out" | tail -n 20; fi; }
# check_fails_out NAME PATTERN CMD...: ok when CMD fails and its output matches PATTERN
check_fails_out() { n=$1; p=$2; shift 2; if ! "$@" >"$T/last.out" 2>&1 && grep -qE -- "$p" "$T/last.out"; then ok "$n"; else not_ok "$n"; sed 's/^/    /' "$T/last.out" | tail -n 20; fi; }
# check_eq NAME EXPECTED ACTUAL
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected '$2', got '$3'"; fi; }

if [ -z "${PGPORT:-}" ]; then
	PROVD_PG_FAST=1 sh "$top/scripts/services.sh" start "$T/svc" pg >/dev/null || { echo "not ok - services"; exit 1; }
	set -a; . "$T/svc/services.env"; set +a
	own_services=1
fi
export PGPASSFILE PGHOST PGPORT PGUSER

dbname="it_$(basename "$0" .sh | tr -c 'a-z0-9_\n' '_')_$$"
psql -X -q -d postgres -c "create database $dbname" >/dev/null || { echo "not ok - create database"; exit 1; }
export PGDATABASE=$dbname

sql() { psql -X -q -At -d "$dbname" -c "$1"; }

stop_provd() {
	[ -n "$provd_pid" ] || return 0
	kill -TERM "$provd_pid" 2>/dev/null
	wait "$provd_pid" 2>/dev/null
	provd_status=$?
	provd_pid=""
	return 0
}

t_cleanup() {
	stop_provd
	psql -X -q -d postgres -c "drop database if exists $dbname with (force)" >/dev/null 2>&1
	[ $own_services = 1 ] && sh "$top/scripts/services.sh" stop "$T/svc" >/dev/null 2>&1
	rm -rf "$T"
}
trap t_cleanup EXIT

# write_conf [extra ini lines]: $T/provd.conf for this test's database and CA
write_conf() {
	cat > "$T/provd.conf" <<-CONF
	[server]
	listen = 127.0.0.1
	port = 0
	threads = 2
	[database]
	conninfo = host=127.0.0.1 port=$PGPORT dbname=$dbname user=postgres
	password_file = $PROVD_DB_PASSWORD_FILE
	pool = 4
	[ca]
	dir = $T/ca
	crl_url = http://127.0.0.1:8440/v1/crl
	ocsp_url = http://127.0.0.1:8440/ocsp
	[log]
	level = ${PROVD_LOG_LEVEL:-warn}
	$*
	CONF
}

provd() { "$BIN/provd" -c "$T/provd.conf" "$@"; }
provctl() { "$BIN/provctl" --url "$URL" "$@"; }

# start_provd: CA, schema, tokens ($T/operator.token ...), daemon; sets URL
start_provd() {
	# a CA unless there is one (chain.pem alone: an external CA's, ca.mode cmp)
	[ -f "$T/ca/ca.key" ] || [ -f "$T/ca/chain.pem" ] ||
	    provd ca init --cn "provd Test Root CA" >/dev/null || return 1
	provd migrate >/dev/null || return 1
	for role in operator security authorizer admin; do
		[ -f "$T/$role.token" ] || provd token add --role "$role" --name "test-$role" \
		    >"$T/$role.token" 2>/dev/null || return 1
	done
	provd_start "$T/provd.conf" "$T" || return 1
	export PROVD_TOKEN_FILE=$T/operator.token
}

# new_csr FILE [openssl genpkey args...]: a CSR and its key (FILE.key)
new_csr() {
	f=$1; shift
	[ $# -gt 0 ] || set -- -algorithm EC -pkeyopt ec_paramgen_curve:P-256
	openssl genpkey "$@" -out "$f.key" 2>/dev/null &&
	openssl req -new -key "$f.key" -subj "/CN=ignored" -out "$f" 2>/dev/null
}

# api METHOD PATH [BODYFILE] [TOKENFILE]: prints the HTTP status; body in $T/resp
api() {
	tok=${4:-$T/operator.token}
	if [ -n "${3:-}" ]; then
		curl -s -o "$T/resp" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $(cat "$tok")" \
		    -H 'Content-Type: application/json' --data-binary "@$3" "$URL$2"
	else
		curl -s -o "$T/resp" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $(cat "$tok")" "$URL$2"
	fi
}

# serial32 HEX: a serial as provd writes it (32 lowercase hex digits), from
# openssl's or BN_bn2hex's form, which drop leading zero bytes
serial32() { _s=$(echo "$1" | tr 'A-F' 'a-f'); while [ ${#_s} -lt 32 ]; do _s=0$_s; done; echo "$_s"; }
# serial_ossl SERIAL32: the same serial as openssl prints it
serial_ossl() { echo "$1" | sed 's/^\(00\)*//' | tr a-f A-F; }

counts() { sql "select (select count(*) from devices), (select count(*) from certificates), (select count(*) from audit_log), (select count(*) from directory_outbox)"; }

t_done() {
	stop_provd
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/provd.log" 2>/dev/null; then
		not_ok "provd ran clean under the sanitizers"
		grep -A 30 -E 'Sanitizer|runtime error' "$T/provd.log" | head -n 60
	fi
	# a failure is easier to read with what provd said last
	if [ $nfail != 0 ] && [ -s "$T/provd.log" ]; then
		echo "# the end of provd's log:"
		tail -n 40 "$T/provd.log" | sed 's/^/#   /'
	fi
	[ $nfail = 0 ]
}
