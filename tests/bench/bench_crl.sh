# Sourced by tests/bench/run.sh (provd at $URL on database provd, the
# benchmark directory $B, the operator token $B/token): 100,000 revoked
# certificates (rows written with SQL; a CRL needs only their serials,
# times and reasons), a base CRL made over them, then 10 revocations
# through the API: the size of the full CRL against the delta CRL that
# lists the 10, and the time each takes to make. Prints
# "bench: NAME VALUE UNIT".

CRL_REVOKED=${BENCH_CRL_REVOKED:-100000}

psql -X -q -d provd >/dev/null <<SQL
insert into devices (mac, status)
select ('02:cc:' || lpad(to_hex((i >> 24) & 255), 2, '0') || ':' || lpad(to_hex((i >> 16) & 255), 2, '0')
    || ':' || lpad(to_hex((i >> 8) & 255), 2, '0') || ':' || lpad(to_hex(i & 255), 2, '0'))::macaddr,
    'revoked'
from generate_series(1, $CRL_REVOKED) i on conflict do nothing;
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der,
    revoked_at, revocation_reason)
select d.id, md5('crl-bench-' || d.id), sha256(('crl-bench-' || d.id)::bytea), 'revoked',
    now() - interval '1 day', now() + interval '300 days', '\x30'::bytea,
    now() - interval '1 hour', (array[0, 1, 3, 4, 5, 9])[1 + d.id % 6]
from devices d where d.mac >= '02:cc:00:00:00:00' and d.mac <= '02:cc:ff:ff:ff:ff'
    and not exists (select 1 from certificates c where c.device_id = d.id);
-- whatever base there is: due now
update crl_bases set this_update = this_update - interval '100 days';
analyze certificates;
SQL
sleep 6		# provd's cached CRLs are at most 5 s old

# crl_get NAME PATH FILE: fetches PATH into FILE, prints the time as NAME
crl_get() {
	_s=$(curl -sf -o "$3" -w '%{time_total}' "$URL$2") || _s=-1
	awk -v n="$1" -v s="$_s" 'BEGIN { printf "bench: %s %.0f ms\n", n, s * 1000 }'
}
# the first request after the interval makes the base
crl_get crl_base_100k_ms /v1/crl/delta "$B/crl-delta0.der"

_i=1
while [ $_i -le 10 ]; do
	_m=$(printf '02:cd:00:00:00:%02x' "$_i")
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$B/crl$_i.key" 2>/dev/null
	openssl req -new -key "$B/crl$_i.key" -subj /CN=bench -out "$B/crl$_i.csr" 2>/dev/null
	"$BIN/provctl" --url "$URL" --token-file "$B/token" issue --mac "$_m" --csr "$B/crl$_i.csr" \
	    >/dev/null 2>&1 || true
	"$BIN/provctl" --url "$URL" --token-file "$B/token" revoke "$_m" --reason keyCompromise \
	    >/dev/null 2>&1 || true
	_i=$((_i + 1))
done

# signed afresh after the revocations
crl_get crl_full_100k_ms /v1/crl "$B/crl-full.der"
crl_get crl_delta_ms /v1/crl/delta "$B/crl-delta.der"
_full=$(openssl crl -inform DER -in "$B/crl-full.der" -noout -text 2>/dev/null | grep -c 'Serial Number:' || true)
_delta=$(openssl crl -inform DER -in "$B/crl-delta.der" -noout -text 2>/dev/null | grep -c 'Serial Number:' || true)
echo "bench: crl_full_100k_bytes $(stat -c %s "$B/crl-full.der" 2>/dev/null || echo 0) bytes"
echo "bench: crl_full_100k_entries ${_full:-0} count"
echo "bench: crl_delta_bytes $(stat -c %s "$B/crl-delta.der" 2>/dev/null || echo 0) bytes"
echo "bench: crl_delta_entries ${_delta:-0} count"
