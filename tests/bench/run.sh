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
tpms=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	for p in $tpms; do kill "$p" 2>/dev/null || true; done
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
[radio]
backend = sim
sim_dir = $B/air
max_enrollments = 64
[log]
level = warn
CONF
mkdir -p "$B/air" "$B/devices"
"$BIN/provd" -c "$B/provd.conf" ca init >/dev/null
"$BIN/provd" -c "$B/provd.conf" migrate >/dev/null
"$BIN/provd" -c "$B/provd.conf" token add --role operator --name bench > "$B/token" 2>/dev/null
provd_start "$B/provd.conf" "$B"
pid=$provd_pid
conninfo="host=127.0.0.1 port=$PGPORT dbname=provd user=postgres password=$(cat "$PROVD_DB_PASSWORD_FILE")"

"$top/build/tests/bench/bench_issue" --url "$URL" --token-file "$B/token" \
    --conninfo "$conninfo" --clients 16 --seconds "${BENCH_SECONDS:-10}"
# the same with the CA key in a TPM (swtpm)
. "$top/tests/bench/bench_ca_tpm.sh"

# CPU time (ms) used so far by the processes named: utime + stime
cpu_ms() {
	_t=0
	for _p in "$@"; do
		_v=$(awk '{print $14 + $15}' "/proc/$_p/stat" 2>/dev/null || echo 0)
		_t=$((_t + _v))
	done
	echo $((_t * 1000 / $(getconf CLK_TCK)))
}
pg_pids() { pgrep -u postgres -d ' ' postgres; }

# intake over the sim radio: 16 devices at a time, file keystore; then where
# the CPU went, per enrollment: provd (and its signer), the simulated
# devices (the benchmark process), PostgreSQL
signer=$(pgrep -P "$pid" -d ' ' || true)
p0=$(cpu_ms $pid $signer); g0=$(cpu_ms $(pg_pids))
"$top/build/tests/bench/bench_enroll" --url "$URL" --token-file "$B/token" --air "$B/air" \
    --state "$B/devices" --devices "${BENCH_DEVICES:-16}" --seconds "${BENCH_SECONDS:-10}" \
    > "$B/enroll.out" &
bpid=$!
b1=0
while kill -0 $bpid 2>/dev/null; do b1=$(cpu_ms $bpid); sleep 0.2; done
wait $bpid
p1=$(cpu_ms $pid $signer); g1=$(cpu_ms $(pg_pids))
cat "$B/enroll.out"
rate=$(sed -n 's/^bench: enroll_per_s \([0-9.]*\) .*/\1/p' "$B/enroll.out")
n=$(awk -v r="$rate" -v s="${BENCH_SECONDS:-10}" 'BEGIN { printf "%d", r * s }')
if [ "$n" -gt 0 ]; then
	awk -v n="$n" -v p=$((p1 - p0)) -v d="$b1" -v g=$((g1 - g0)) 'BEGIN {
		printf "bench: enroll_cpu_provd_ms %.2f ms\n", p / n
		printf "bench: enroll_cpu_devices_ms %.2f ms\n", d / n
		printf "bench: enroll_cpu_postgres_ms %.2f ms\n", g / n }'
fi

# one device at a time: the latency of an enrollment without queueing
"$top/build/tests/bench/bench_enroll" --url "$URL" --token-file "$B/token" --air "$B/air" \
    --state "$B/devices" --devices 1 --seconds 3 --prefix one |
    sed -n 's/^bench: enroll_p50_ms /bench: enroll_1dev_p50_ms /p'

# the same with the tpm2 keystore: one swtpm per device
ntpm=${BENCH_TPM_DEVICES:-4}
: > "$B/tctis"
i=0
while [ $i -lt "$ntpm" ]; do
	swtpm_start "$B/tpm$i"
	tpms="$tpms $swtpm_pid"
	echo "$swtpm_tcti" >> "$B/tctis"
	i=$((i + 1))
done
"$top/build/tests/bench/bench_enroll" --url "$URL" --token-file "$B/token" --air "$B/air" \
    --state "$B/devices" --devices "$ntpm" --seconds "${BENCH_SECONDS:-10}" --keystore tpm2 \
    --tcti-file "$B/tctis" --prefix tpm

# central access control: decisions per second, warm and cold, next to nginx
. "$top/tests/bench/bench_authz.sh"
. "$top/tests/bench/bench_crl.sh"
. "$top/tests/bench/bench_console.sh"

# device to device: mutual authentications next to nginx with client
# certificates, and the link's key changes
BIN=$BIN sh "$top/tests/bench/bench_peer.sh"
# 802.1X: EAP-TLS through FreeRADIUS, with and without the REST question
BIN=$BIN sh "$top/tests/bench/bench_radius.sh"
# enrollment through an external CA over CMP, next to the built-in CA
BIN=$BIN sh "$top/tests/bench/bench_cmp.sh"

# OCSP: one certificate's status over and over (POST, no nonce: the cached
# answer), then with a fresh nonce each (signed anew)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$B/ocsp-dev.key" 2>/dev/null
openssl req -new -key "$B/ocsp-dev.key" -subj /CN=bench -out "$B/ocsp-dev.csr" 2>/dev/null
"$BIN/provctl" --url "$URL" --token-file "$B/token" issue --mac 02:0c:5f:00:00:01 \
    --csr "$B/ocsp-dev.csr" --out "$B/ocsp-dev.pem" >/dev/null
"$top/build/tests/bench/bench_ocsp" --url "$URL" --issuer "$B/ca/ca.crt" --cert "$B/ocsp-dev.pem" \
    --clients 8 --seconds "${BENCH_SECONDS:-10}"

# the directory worker draining 10,000 outbox rows into its own slapd (a
# database of its own in this PostgreSQL)
BIN=$BIN sh "$top/tests/bench/bench_directory.sh"
