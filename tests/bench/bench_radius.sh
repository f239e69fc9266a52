#!/bin/sh
# EAP-TLS authentications per second through FreeRADIUS 3.2 configured from
# etc/freeradius/ (provd's CA as trust anchor, revocation asked of provd's
# OCSP responder in both runs), with provd's access-control question in
# post-auth (rlm_rest -> POST /v1/authorize/radius) and without it.
# eapol_test plays the access points: BENCH_RADIUS_CLIENTS (default 24) at
# a time, each running "eapol_test -r 4" (5 full handshakes: the snippet
# allows no session resumption) over and over. The two configurations run
# side by side and are loaded in turns, 5 windows each of
# BENCH_RADIUS_SECONDS / 5 (default 10 s in all) after half a second of
# warm-up, so that whatever else the machine does weighs on both; the rate
# is FreeRADIUS's "Login OK" lines over those windows. A rejected
# authentication is reported on standard error. The load generator shares
# the machine with the servers.
#   bench: eap_tls_per_s N /s        OCSP, no provd question
#   bench: eap_tls_rest_per_s N /s   OCSP and the provd question
# Uses the PostgreSQL of tests/bench/run.sh when PGPORT is set (a database
# of its own in it), else starts one.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$top/build/bin}
SECONDS_RUN=${BENCH_RADIUS_SECONDS:-10}
ROUNDS=5
WINDOW=$(( (SECONDS_RUN + ROUNDS - 1) / ROUNDS ))
CLIENTS=${BENCH_RADIUS_CLIENTS:-24}
. "$top/scripts/provd-lib.sh"
D=$(mktemp -d /tmp/provd-bench-radius.XXXXXX)
chmod 755 "$D"
provd_pid=""
rpids=""
db=bench_radius_$$
own_pg=0
cleanup() {
	for p in $rpids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	[ -n "$provd_pid" ] && kill -TERM "$provd_pid" 2>/dev/null && wait "$provd_pid" 2>/dev/null || true
	psql -X -q -d postgres -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
	[ $own_pg = 1 ] && sh "$top/scripts/services.sh" stop "$D/svc" >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

if [ -z "${PGPORT:-}" ]; then
	sh "$top/scripts/services.sh" start "$D/svc" pg >/dev/null
	set -a; . "$D/svc/services.env"; set +a
	own_pg=1
fi
export PGDATABASE=postgres
psql -X -q -c "create database $db" >/dev/null
export PGDATABASE=$db

cat > "$D/provd.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=$db user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $D/ca
[log]
level = warn
CONF
"$BIN/provd" -c "$D/provd.conf" ca init >/dev/null
"$BIN/provd" -c "$D/provd.conf" migrate >/dev/null
for role in operator security authorizer; do
	"$BIN/provd" -c "$D/provd.conf" token add --role $role --name bench-$role > "$D/$role.token" 2>/dev/null
done
provd_start "$D/provd.conf" "$D"

# a device allowed on the access point ap-bench
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/dev.key" 2>/dev/null
openssl req -new -key "$D/dev.key" -subj /CN=bench -out "$D/dev.csr" 2>/dev/null
"$BIN/provctl" --url "$URL" --token-file "$D/operator.token" issue --mac 02:0e:a9:00:00:01 \
    --csr "$D/dev.csr" --group bench --out "$D/dev.pem" >/dev/null 2>&1
sec() { curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$D/security.token")" \
    -H 'Content-Type: application/json' --data "$2" "$URL$1"; }
sec /v1/resources '{"name":"ap-bench","class":"access-point"}'
sec /v1/rules '{"subject":{"group":"bench"},"resource":"ap-bench","action":"connect","effect":"allow"}'

# the RADIUS server's certificate, from a CA of its own
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/srvca.key" \
    -subj "/CN=RADIUS bench CA" -days 2 -out "$D/srvca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/srv.key" \
    -subj "/CN=radius.bench" -out "$D/srv.csr" 2>/dev/null
openssl x509 -req -in "$D/srv.csr" -CA "$D/srvca.pem" -CAkey "$D/srvca.key" -set_serial 1 \
    -days 2 -out "$D/srv.pem" 2>/dev/null

# radius_conf DIR PORT rest|norest: as tests/integration/test_radius.sh
# (the snippet installed as docs/radius.md says), not in debug mode, with
# accepted and rejected authentications logged to count them
radius_conf() {
	rm -rf "$1"
	cp -a /etc/freeradius/3.0 "$1"
	mkdir -p "$1/log" "$1/run"
	sed -i -e 's/^\([[:space:]]*\)\(user\|group\) = freerad/\1#\2 = freerad/' \
	    -e 's/^\([[:space:]]*\)proxy_requests[[:space:]]*=.*/\1proxy_requests = no/' \
	    -e 's/^\([[:space:]]*\)reject_delay[[:space:]]*=.*/\1reject_delay = 0/' \
	    -e 's/^\([[:space:]]*\)auth = no$/\1auth = yes/' \
	    -e "s#^logdir = .*#logdir = $1/log#" -e "s#^run_dir = .*#run_dir = $1/run#" "$1/radiusd.conf"
	for f in mods-available/eap-provd mods-available/provd policy.d/provd sites-available/provd; do
		sed -e "s#@PROVD_URL@#$URL#g" -e "s#@PROVD_OCSP_URL@#$URL/ocsp#g" \
		    -e "s#@PROVD_TOKEN@#$(cat "$D/authorizer.token")#g" -e "s#@PROVD_TLS_CA@#$D/ca/root.crt#g" \
		    -e "s#@PROVD_CHAIN@#$D/ca/chain.pem#g" -e "s#@RADIUS_CERT@#$D/srv.pem#g" \
		    -e "s#@RADIUS_KEY@#$D/srv.key#g" "$top/etc/freeradius/$f" > "$1/$f"
	done
	rm -f "$1/mods-enabled/eap" "$1/sites-enabled/default" "$1/sites-enabled/inner-tunnel"
	ln -s ../mods-available/eap-provd "$1/mods-enabled/eap-provd"
	ln -s ../mods-available/provd "$1/mods-enabled/provd"
	ln -s ../sites-available/provd "$1/sites-enabled/provd"
	sed -i -e 's/^\([[:space:]]*\)ipaddr = \*$/\1ipaddr = 127.0.0.1/' \
	    -e "s/^\([[:space:]]*\)port = 0$/\1port = $2/" "$1/sites-available/provd"
	[ "$3" = rest ] || sed -i 's/^\([[:space:]]*\)provd_authorize$/\1#provd_authorize/' \
	    "$1/sites-available/provd"
	printf 'client ap-bench {\n\tipaddr = 127.0.0.1\n\tsecret = bench-secret\n}\n' > "$1/clients.conf"
}

cat > "$D/eap.conf" <<EOF
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="bench"
	ca_cert="$D/srvca.pem"
	client_cert="$D/dev.pem"
	private_key="$D/dev.key"
	eapol_flags=0
}
EOF

count() { grep -c "$1" "$2" 2>/dev/null || true; }

# start NAME rest|norest: FreeRADIUS with that configuration on a free port,
# in the background; sets NAME_port, NAME_pid
start() {
	_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	radius_conf "$D/$1" "$_port" "$2"
	freeradius -f -d "$D/$1" > "$D/$1.out" 2>&1 &
	_pid=$!
	rpids="$rpids $_pid"
	_n=0
	until grep -q 'Ready to process requests' "$D/$1/log/radius.log" 2>/dev/null; do
		_n=$((_n + 1))
		if [ $_n -gt 100 ] || ! kill -0 $_pid 2>/dev/null; then
			echo "bench_radius: FreeRADIUS ($2) did not start:" >&2
			tail -n 20 "$D/$1.out" "$D/$1/log/radius.log" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.1
	done
	eval "${1}_port=$_port"
}

# window NAME: CLIENTS access points against server NAME for WINDOW
# seconds after half a second of warm-up; adds the accepted and rejected
# authentications and the nanoseconds to NAME_ok, NAME_rej, NAME_ns
window() {
	eval "_port=\$${1}_port"
	_log=$D/$1/log/radius.log
	_end=$(( $(date +%s%N) + 500000000 + WINDOW * 1000000000 ))
	_i=0
	_pids=""
	while [ $_i -lt "$CLIENTS" ]; do
		( while [ "$(date +%s%N)" -lt $_end ]; do
			eapol_test -c "$D/eap.conf" -a 127.0.0.1 -p "$_port" -s bench-secret -r 4 -t 10 \
			    >/dev/null 2>&1 || true
		done ) &
		_pids="$_pids $!"
		_i=$((_i + 1))
	done
	sleep 0.5
	_c0=$(count 'Login OK' "$_log"); _r0=$(count 'Login incorrect' "$_log"); _t0=$(date +%s%N)
	sleep "$WINDOW"
	_c1=$(count 'Login OK' "$_log"); _r1=$(count 'Login incorrect' "$_log"); _t1=$(date +%s%N)
	for _p in $_pids; do wait "$_p" 2>/dev/null || true; done
	eval "${1}_ok=\$((${1}_ok + _c1 - _c0)); ${1}_rej=\$((${1}_rej + _r1 - _r0)); ${1}_ns=\$((${1}_ns + _t1 - _t0))"
}

rpids=""
start norest norest
start rest rest
norest_ok=0; norest_rej=0; norest_ns=0
rest_ok=0; rest_rej=0; rest_ns=0
# the two in turns, so that whatever else the machine does weighs on both
_k=0
while [ $_k -lt "$ROUNDS" ]; do
	window norest
	window rest
	_k=$((_k + 1))
done
for p in $rpids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
rpids=""
[ $norest_rej = 0 ] || echo "bench_radius: without provd: $norest_rej authentications rejected" >&2
[ $rest_rej = 0 ] || echo "bench_radius: with provd: $rest_rej authentications rejected" >&2
awk -v n=$norest_ok -v t=$norest_ns 'BEGIN { printf "bench: eap_tls_per_s %.1f /s\n", n / (t / 1e9) }'
awk -v n=$rest_ok -v t=$rest_ns 'BEGIN { printf "bench: eap_tls_rest_per_s %.1f /s\n", n / (t / 1e9) }'
