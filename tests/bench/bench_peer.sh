#!/bin/sh
# Device-to-device mutual authentication next to nginx, in the same run:
#   bench: nginx_mtls_per_s N /s        nginx (nginx-light, 2 workers) with
#                                       TLS 1.3 and ssl_verify_client on, hit
#                                       by openssl s_time -new with a client
#                                       certificate: full handshakes per second
#   bench: nginx_mtls_cpu_ms N ms       CPU time (nginx and s_time) per handshake
#   bench: mutual_auth_per_s N /s       devices of the device library (file
#                                       keystore) over the sim air, PAIRS pairs
#                                       at once: both certificates checked
#                                       (chain, dates, CRL, address), the peer's
#                                       confirmation, link key exported, link
#                                       keyed and closed
#   bench: mutual_auth_cpu_ms N ms      CPU time (both devices) per authentication
#   bench: mutual_auth_vs_nginx_pct N % the ratio of the two rates
#   bench: mutual_auth_1pair_per_s N /s one pair alone (each step waits for the
#                                       other side: no overlap at all)
#   bench: rekey_latency_ms, rekey_pause_ms, rekey_pause_max_ms, link_rtt_us,
#          link_rekeys                  a key change on a live link carrying
#                                       request/echo round trips (bench_peer.c)
# Both sides use ECDSA P-256 certificates from a one-tier CA, X25519, and
# TLS_AES_128_GCM_SHA256. s_time is one client whose handshakes overlap with
# nginx's work on the other CPU; the two devices of a pair wait for each
# other at every step, so PAIRS pairs (default: one per CPU, about as many
# busy threads as s_time and nginx have) run at once. The rates are
# measured in alternating slices
# (BENCH_PEER_ROUNDS, default 3, of BENCH_PEER_SECONDS / rounds each, default
# 10 s in all for each), so that other load on the machine falls on both
# alike. About 30 s in all.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$top/build/bin}
TOOL=$(dirname "$BIN")/tests/bench/bench_peer
S=${BENCH_PEER_SECONDS:-10}
R=${BENCH_PEER_ROUNDS:-3}
PAIRS=${BENCH_PEER_PAIRS:-$(nproc)}
[ "$PAIRS" -le 16 ] || PAIRS=16
SLICE=$(( (S + R - 1) / R ))
P=$(mktemp -d /tmp/provd-bench-peer.XXXXXX)
chmod 755 "$P"
nginx_pid=""
cleanup() {
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
	rm -rf "$P"
}
trap cleanup EXIT INT TERM

# CPU time (ms) used so far by the processes named: utime + stime
cpu_ms() {
	_t=0
	for _p in "$@"; do
		_v=$(awk '{print $14 + $15}' "/proc/$_p/stat" 2>/dev/null || echo 0)
		_t=$((_t + _v))
	done
	echo $((_t * 1000 / $(getconf CLK_TCK)))
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- nginx with client certificates -----------------------------------------
mkdir -p "$P/nginx/html" "$P/nginx/tmp"
: > "$P/nginx/html/index.html"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$P/ca.key"
openssl req -x509 -new -key "$P/ca.key" -subj "/CN=bench CA" -days 2 -out "$P/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
for who in server client; do
	ec "$P/$who.key"
	openssl req -new -key "$P/$who.key" -subj "/CN=$who" -out "$P/$who.csr"
	printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=DNS:localhost\n' \
	    "$([ $who = server ] && echo serverAuth || echo clientAuth)" > "$P/$who.ext"
	openssl x509 -req -in "$P/$who.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
	    -days 2 -extfile "$P/$who.ext" -out "$P/$who.pem" 2>/dev/null
done
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$P/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $P/nginx/nginx.pid;
error_log $P/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $P/nginx/tmp;
	proxy_temp_path $P/nginx/tmp;
	fastcgi_temp_path $P/nginx/tmp;
	uwsgi_temp_path $P/nginx/tmp;
	scgi_temp_path $P/nginx/tmp;
	server {
		listen 127.0.0.1:$nport ssl;
		root $P/nginx/html;
		ssl_protocols TLSv1.3;
		ssl_ecdh_curve X25519;
		ssl_certificate $P/server.pem;
		ssl_certificate_key $P/server.key;
		ssl_client_certificate $P/ca.pem;
		ssl_verify_client on;
		ssl_session_cache off;
		ssl_session_tickets off;
	}
}
NGINX
nginx -c "$P/nginx/nginx.conf" -p "$P/nginx" -g 'daemon off;' &
nginx_pid=$!
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $nport), 0.2).close()" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "bench_peer: nginx did not start" >&2; exit 1; }
	sleep 0.05
done
nginx_procs="$nginx_pid $(pgrep -P "$nginx_pid" -d ' ' || true)"

# one slice of s_time: appends "connections wall_ms cpu_ms" to $P/nginx.slices
nginx_slice() {
	_c0=$(cpu_ms $nginx_procs)
	_t0=$(now_ms)
	openssl s_time -connect "127.0.0.1:$nport" -new -cert "$P/client.pem" -key "$P/client.key" \
	    -CAfile "$P/ca.pem" -verify 2 -time "$SLICE" > "$P/s_time.out" 2>&1 &
	_sp=$!
	_sc=0
	while kill -0 $_sp 2>/dev/null; do
		_v=$(cpu_ms $_sp); [ "$_v" -gt 0 ] && _sc=$_v
		sleep 0.1
	done
	wait $_sp || true
	_t1=$(now_ms)
	_c1=$(cpu_ms $nginx_procs)
	_n=$(awk '/connections in [0-9.]+s;/ { print $1; exit }' "$P/s_time.out")
	if [ -z "$_n" ]; then
		echo "bench_peer: s_time failed:" >&2
		cat "$P/s_time.out" >&2
		_n=0
	fi
	echo "$_n $((_t1 - _t0)) $((_c1 - _c0 + _sc))" >> "$P/nginx.slices"
}
# one slice of the devices: appends "rate cpu_ms" to $P/peer.slices
peer_slice() {
	rm -rf "$P/dev"; mkdir -p "$P/dev"
	"$TOOL" --dir "$P/dev" --seconds "$SLICE" --pairs "$1" --rekey-seconds 0 > "$P/slice.out"
	echo "$(sed -n 's/^bench: mutual_auth_per_s \([0-9.]*\) .*/\1/p' "$P/slice.out") \
$(sed -n 's/^bench: mutual_auth_cpu_ms \([0-9.]*\) .*/\1/p' "$P/slice.out")" >> "$2"
	grep 'mutual_auth_errors' "$P/slice.out" || true
}

: > "$P/nginx.slices"; : > "$P/peer.slices"
i=0
while [ $i -lt "$R" ]; do
	nginx_slice
	peer_slice "$PAIRS" "$P/peer.slices"
	i=$((i + 1))
done
kill "$nginx_pid" 2>/dev/null || true
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=""

awk '{ n += $1; ms += $2; cpu += $3 } END {
	printf "bench: nginx_mtls_per_s %.0f /s\n", (ms > 0 ? n * 1000 / ms : 0)
	printf "bench: nginx_mtls_cpu_ms %.3f ms\n", (n > 0 ? cpu / n : 0) }' "$P/nginx.slices"
awk -v p="$PAIRS" '{ r += $1; c += $2; k++ } END {
	printf "bench: mutual_auth_per_s %.0f /s\n", (k ? r / k : 0)
	printf "bench: mutual_auth_cpu_ms %.3f ms\n", (k ? c / k : 0)
	printf "bench: mutual_auth_pairs %d count\n", p }' "$P/peer.slices"
awk 'NR == FNR { n += $1; ms += $2; next } { r += $1; k++ } END {
	if (ms > 0 && n > 0 && k > 0)
		printf "bench: mutual_auth_vs_nginx_pct %.0f %%\n", 100 * (r / k) / (n * 1000 / ms) }' \
    "$P/nginx.slices" "$P/peer.slices"

# one pair alone, and a key change on a live link
rm -rf "$P/dev"; mkdir -p "$P/dev"
"$TOOL" --dir "$P/dev" --seconds "$SLICE" --pairs 1 --rekey-seconds 3 > "$P/one.out"
sed -n 's/^bench: mutual_auth_per_s /bench: mutual_auth_1pair_per_s /p' "$P/one.out"
grep -E '^bench: (rekey_|link_)' "$P/one.out"
exit 0
