#!/bin/sh
# Base and delta CRLs and releasing a certificate from hold, end to end:
# the base CRL recorded in the database and served by GET /v1/crl while
# nothing changed, with its Freshest CRL pointer; a delta CRL listing
# exactly what changed since, which openssl verify -use_deltas combines
# with the base; a certificate on hold released (unrevoke) — the full CRL,
# the delta (removeFromCRL), /v1/authorize and OCSP all say so — and every
# other unrevoke refused with nothing changed; a new base on schedule and
# one base for two instances racing; the size of a full CRL against a
# delta with 20,000 revoked certificates.
. "$(dirname "$0")/lib.sh"

# the base interval against the CRL lifetime
write_conf "[ca]
crl_next_update_s = 3600"
check_out "unset, the base interval follows a shorter crl_next_update_s" '^configuration OK$' provd -n
write_conf "[ca]
crl_next_update_s = 3600
crl_base_interval_s = 7200"
check_fails_out "a base interval longer than crl_next_update_s is refused" \
    'ca.crl_base_interval_s \(7200\) must not exceed ca.crl_next_update_s \(3600\)' provd -n
write_conf "[ca]
crl_base_interval_s = 59"
check_fails_out "a base interval under a minute is refused" 'crl_base_interval_s' provd -n

write_conf
check "start provd" start_provd || { t_done; exit 1; }
CA=$T/ca
SEC=$T/security.token
AUTH=$T/authorizer.token
sectl() { env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" "$@"; }

mac_of() { printf '00:1a:7d:da:77:%02x' "$1"; }
# serial_of I: the active (else latest) certificate of device I, 32 hex digits
serial_of() { sql "select c.serial from certificates c join devices d on d.id = c.device_id where d.mac = '$(mac_of "$1")' order by (c.status = 'active') desc, c.id desc limit 1"; }
# upper-case serial as openssl prints it (leading zero bytes dropped)
ossl_serial() { echo "$1" | tr a-f A-F | sed 's/^\(00\)*//'; }
crl_text() { openssl crl -in "$1" -noout -text; }
crl_number() { openssl crl -in "$1" -noout -text | sed -n '/X509v3 CRL Number:/{n;s/ //gp}'; }
delta_base() { openssl crl -in "$1" -noout -text | sed -n '/X509v3 Delta CRL Indicator:/{n;s/ //gp}'; }
entries() { openssl crl -in "$1" -noout -text | grep -c 'Serial Number:'; }
lists() { crl_text "$1" | grep -q "Serial Number: $(ossl_serial "$2")\$"; }
# verify CERT CRLFILE...: openssl verify -crl_check against the root;
# verify_d: the same with -use_deltas
verify_with() {
	_o=$1 _c=$2; shift 2
	_args=""
	for _f in "$@"; do _args="$_args -CRLfile $_f"; done
	openssl verify -crl_check $_o -CAfile "$CA/root.crt" $_args "$_c"
}
verify() { verify_with "" "$@"; }
verify_d() { verify_with -use_deltas "$@"; }
ocsp() {
	openssl ocsp -issuer "$CA/ca.crt" -cert "$1" -url "$URL/ocsp" -CAfile "$CA/root.crt" \
	    -no_nonce 2>&1
}
ask() {	# MAC: the decision of POST /v1/authorize for ap-crl
	printf '{"device":{"mac":"%s"},"resource":"ap-crl","action":"connect"}' "$1" > "$T/ask.json"
	api POST /v1/authorize "$T/ask.json" "$AUTH" >/dev/null
	jq -r '.decision + "|" + .reason' "$T/resp"
}

i=1
while [ $i -le 8 ]; do
	new_csr "$T/d$i.csr"
	provctl issue --mac "$(mac_of $i)" --csr "$T/d$i.csr" --group crl-test --out "$T/d$i.pem" \
	    >/dev/null 2>&1 || not_ok "issue device $i"
	i=$((i + 1))
done
check_eq "8 devices issued" 8 "$(sql "select count(*) from certificates where status = 'active'")"
printf '{"name":"ap-crl"}' > "$T/res.json"
check_eq "resource ap-crl" 201 "$(api POST /v1/resources "$T/res.json" "$SEC")"
printf '{"subject":{"group":"crl-test"},"resource":"ap-crl","action":"connect","effect":"allow"}' > "$T/rule.json"
check_eq "rule: crl-test may connect" 201 "$(api POST /v1/rules "$T/rule.json" "$SEC")"

# --- the base --------------------------------------------------------------
check_eq "no base CRL before the first request" 0 "$(sql "select count(*) from crl_bases")"
check "provctl crl --pem" provctl crl --pem --out "$T/base.pem"
check_eq "the first request made one base" 1 "$(sql "select count(*) from crl_bases")"
base=$(sql "select crl_number from crl_bases")
check_eq "GET /v1/crl serves the base (CRL number $base)" "$base" "$(crl_number "$T/base.pem")"
check_eq "  byte for byte as recorded" "$(sql "select encode(sha256(der), 'hex') from crl_bases")" \
    "$(openssl crl -in "$T/base.pem" -outform DER | sha256sum | cut -d' ' -f1)"
check "  it verifies against the CA" openssl crl -in "$T/base.pem" -CAfile "$CA/root.crt" -noout
check "  Freshest CRL names the delta CRL" sh -c "openssl crl -in '$T/base.pem' -noout -text | grep -A3 'Freshest CRL' | grep -q 'URI:http://127.0.0.1:8440/v1/crl/delta'"
check_eq "  nothing revoked yet" 0 "$(entries "$T/base.pem")"
check_eq "  its update times recorded" "$(sql "select extract(epoch from next_update - this_update)::int from crl_bases")" 86400
curl -sf "$URL/v1/crl" -o "$T/base2.der"
check_eq "asked again: the same base" "$base" "$(openssl crl -inform DER -in "$T/base2.der" -noout -text | sed -n '/X509v3 CRL Number:/{n;s/ //gp}')"
check "an empty delta CRL" provctl crl --delta --pem --out "$T/delta0.pem"
check_eq "  Delta CRL Indicator: the base's number" "$base" "$(delta_base "$T/delta0.pem")"
check "  critical" sh -c "openssl crl -in '$T/delta0.pem' -noout -text | grep -q 'Delta CRL Indicator: critical'"
check_eq "  no entries" 0 "$(entries "$T/delta0.pem")"
check_fails "  no Freshest CRL in a delta" sh -c "openssl crl -in '$T/delta0.pem' -noout -text | grep -q 'Freshest CRL'"
check "  signed by the CA" openssl crl -in "$T/delta0.pem" -CAfile "$CA/root.crt" -noout
check "  DER by default" sh -c "curl -sf '$URL/v1/crl/delta' | openssl crl -inform DER -noout"
check_eq "  ?format=pem" "-----BEGIN X509 CRL-----" "$(curl -sf "$URL/v1/crl/delta?format=pem" | head -n 1)"
check_eq "  ?format=xml -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/crl/delta?format=xml")"
check_eq "  public: no token needed, POST not allowed -> 405" 405 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/v1/crl/delta")"

# --- changes after the base --------------------------------------------------
s2=$(serial_of 2) s3=$(serial_of 3) s4=$(serial_of 4) s5=$(serial_of 5)
check "revoke device 2 (keyCompromise)" sectl revoke "$(mac_of 2)" --reason keyCompromise
check "put device 3 on hold (certificateHold)" sectl revoke "$(mac_of 3)" --reason certificateHold
check "revoke device 4 (cessationOfOperation)" sectl revoke "$(mac_of 4)" --reason cessationOfOperation
new_csr "$T/d5b.csr"
check "replace device 5's certificate (superseded)" provctl issue --mac "$(mac_of 5)" \
    --csr "$T/d5b.csr" --group crl-test --replace --out "$T/d5b.pem"
check "provctl crl --delta" provctl crl --delta --pem --out "$T/delta1.pem"
openssl crl -in "$T/delta1.pem" -noout -text > "$T/delta1.txt"
check_eq "the delta is against the base" "$base" "$(delta_base "$T/delta1.pem")"
d1num=$(crl_number "$T/delta1.pem")
check "  its own CRL number is higher ($d1num)" test "$d1num" -gt "$base"
check_eq "  exactly the four changes" 4 "$(entries "$T/delta1.pem")"
for s in "$s2" "$s3" "$s4" "$s5"; do
	check "  lists $s" lists "$T/delta1.pem" "$s"
done
check "  with their reasons" sh -c "grep -q 'Key Compromise' '$T/delta1.txt' && grep -q 'Certificate Hold' '$T/delta1.txt' && grep -q 'Cessation Of Operation' '$T/delta1.txt' && grep -q 'Superseded' '$T/delta1.txt'"
check_fails "verify -use_deltas with base and delta rejects device 2" verify_d "$T/d2.pem" "$T/base.pem" "$T/delta1.pem"
check_fails_out "  the reason: revoked" "certificate revoked" verify_d "$T/d2.pem" "$T/base.pem" "$T/delta1.pem"
check_fails "  and the superseded certificate of device 5" verify_d "$T/d5.pem" "$T/base.pem" "$T/delta1.pem"
check "  accepts a good certificate (device 1)" verify_d "$T/d1.pem" "$T/base.pem" "$T/delta1.pem"
check "  (the base alone still accepts device 2)" verify "$T/d2.pem" "$T/base.pem"
check "the full CRL lists a revocation at once" provctl crl --pem --out "$T/full1.pem"
check_eq "  all four" 4 "$(entries "$T/full1.pem")"
full1=$(crl_number "$T/full1.pem")
check "  a complete CRL newer than the base ($full1)" test "$full1" -gt "$base"
check_fails "  verify -crl_check rejects device 3 (on hold)" verify "$T/d3.pem" "$T/full1.pem"
check_eq "device 3 is refused by /v1/authorize" "deny|device revoked" "$(ask "$(mac_of 3)")"
check_out "OCSP: device 3 revoked (certificateHold)" "Reason: certificateHold" ocsp "$T/d3.pem"

# --- release from hold -------------------------------------------------------------
audit0=$(sql "select count(*) from audit_log")
outbox0=$(sql "select count(*) from directory_outbox")
check_out "provctl unrevoke --serial" "released $(mac_of 3) from hold, serial $s3 is active" \
    sectl unrevoke --serial "$s3"
check_eq "certificate and device active again" "active|active||" \
    "$(sql "select c.status || '|' || d.status || '|' || coalesce(c.revoked_at::text, '') || '|' || coalesce(c.revocation_reason::text, '') from certificates c join devices d on d.id = c.device_id where c.serial = '$s3'")"
check_eq "one audit row certificate.unrevoke" "$((audit0 + 1))|1|$s3" \
    "$(sql "select count(*) || '|' || (select count(*) from audit_log where action = 'certificate.unrevoke') || '|' || (select object from audit_log where action = 'certificate.unrevoke') from audit_log")"
check_eq "  naming the device and its status before" "$(mac_of 3)|revoked" \
    "$(sql "select (detail->>'mac') || '|' || (detail->>'device_was') from audit_log where action = 'certificate.unrevoke'")"
check_eq "one directory outbox row: the device active" "$((outbox0 + 1))|upsert|active|$s3" \
    "$(sql "select (select count(*) from directory_outbox) || '|' || op || '|' || (payload->>'status') || '|' || (payload->>'serial') from directory_outbox order by id desc limit 1")"
check_out "audit chain verifies" '^audit chain OK' sectl audit verify
check "a fresh full CRL" provctl crl --pem --out "$T/full2.pem"
check_fails "  no longer lists device 3" lists "$T/full2.pem" "$s3"
check "  verify -crl_check accepts device 3 again" verify "$T/d3.pem" "$T/full2.pem"
check_fails "  and still rejects device 2" verify "$T/d2.pem" "$T/full2.pem"
check "a fresh delta" provctl crl --delta --pem --out "$T/delta2.pem"
openssl crl -in "$T/delta2.pem" -noout -text > "$T/delta2.txt"
check "  lists device 3 with removeFromCRL" sh -c "grep -A4 'Serial Number: $(ossl_serial "$s3")\$' '$T/delta2.txt' | grep -q 'Remove From CRL'"
check_eq "  and the three still revoked" 4 "$(entries "$T/delta2.pem")"
check_fails "the complete CRL made during the hold rejects device 3" verify "$T/d3.pem" "$T/full1.pem"
check "  combined with the new delta, accepts it" verify_d "$T/d3.pem" "$T/full1.pem" "$T/delta2.pem"
check "  and base + delta accept it" verify_d "$T/d3.pem" "$T/base.pem" "$T/delta2.pem"
t0=$(date +%s%N)
while [ "$(ask "$(mac_of 3)")" != "allow|allowed by rule 1" ]; do
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || break
	sleep 0.05
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "/v1/authorize allows device 3 again within 1 s (${ms} ms)" test "$ms" -lt 1000
check_out "OCSP says good again" "d3.pem: good" ocsp "$T/d3.pem"

# --- refusals: nothing changes -------------------------------------------------
# refused NAME STATUS PATH [TOKEN] [MESSAGE]: POST PATH answers STATUS (and
# MESSAGE), and neither the certificates nor the audit log change
refused() {
	_before="$(sql "select count(*) from audit_log")|$(sql "select string_agg(serial || status || coalesce(revocation_reason::text, '-'), ',' order by id) from certificates")|$(sql "select count(*) from directory_outbox")"
	_st=$(api POST "$3" "" "${4:-$SEC}")
	check_eq "$1 -> $2" "$2" "$_st"
	if [ -n "${5:-}" ]; then
		check_out "  says: $5" "$5" jq -r .error.message "$T/resp"
	fi
	check_eq "  nothing changed" "$_before" "$(sql "select count(*) from audit_log")|$(sql "select string_agg(serial || status || coalesce(revocation_reason::text, '-'), ',' order by id) from certificates")|$(sql "select count(*) from directory_outbox")"
}
refused "unrevoke a keyCompromise revocation" 409 "/v1/certificates/$s2/unrevoke" "" \
    "Only a certificate on hold .* reason keyCompromise"
refused "unrevoke a superseded certificate" 409 "/v1/certificates/$s5/unrevoke" "" \
    "superseded .* never reinstated"
refused "unrevoke an active certificate" 409 "/v1/certificates/$(serial_of 1)/unrevoke" "" \
    "not revoked"
refused "unrevoke device 3 again (active now)" 409 "/v1/certificates/$s3/unrevoke"
refused "unrevoke an unknown serial" 404 "/v1/certificates/5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a/unrevoke" "" \
    "No certificate has this serial number"
refused "unrevoke a malformed serial" 400 "/v1/certificates/5a5a-not-hex/unrevoke" "" "32 hexadecimal digits"
refused "unrevoke with 31 digits" 400 "/v1/certificates/5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5/unrevoke"
refused "an authorizer token may not unrevoke" 403 "/v1/certificates/$s2/unrevoke" "$AUTH"
echo "not-a-token" > "$T/wrong.token"
refused "a wrong token" 401 "/v1/certificates/$s2/unrevoke" "$T/wrong.token"
check_eq "  unrevoke without a token -> 401" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/v1/certificates/$s2/unrevoke")"
refused "unrevoke by address: device 2's latest is keyCompromise" 409 "/v1/devices/$(mac_of 2)/unrevoke"
refused "unrevoke by address: device 1 has no revoked certificate" 404 "/v1/devices/$(mac_of 1)/unrevoke" "" \
    "no revoked certificate"
refused "unrevoke by a bad address" 400 "/v1/devices/01:00:5e:00:00:01/unrevoke"
check_fails_out "provctl unrevoke says why" "keyCompromise.*HTTP 409" sectl unrevoke --serial "$s2"
# an expired certificate stays on hold
s6=$(serial_of 6)
check "put device 6 on hold" sectl revoke "$(mac_of 6)" --reason certificateHold
sql "update certificates set not_after = now() - interval '1 second' where serial = '$s6'" >/dev/null
refused "unrevoke an expired certificate on hold" 409 "/v1/certificates/$s6/unrevoke" "" "expired"
# a device given a new certificate meanwhile keeps it; the old one stays on hold
s7=$(serial_of 7)
check "put device 7 on hold" sectl revoke "$(mac_of 7)" --reason certificateHold
new_csr "$T/d7b.csr"
check "device 7 gets a new certificate" provctl issue --mac "$(mac_of 7)" --csr "$T/d7b.csr" \
    --group crl-test --out "$T/d7b.pem"
refused "unrevoke a hold whose device has another active certificate" 409 \
    "/v1/certificates/$s7/unrevoke" "" "another active certificate"
# by address
check "put device 8 on hold" sectl revoke "$(mac_of 8)" --reason certificateHold
check_out "provctl unrevoke ADDR" "released $(mac_of 8) from hold" sectl unrevoke "$(mac_of 8)"
check_eq "  device 8 active again" "active|active" \
    "$(sql "select c.status || '|' || d.status from certificates c join devices d on d.id = c.device_id where d.mac = '$(mac_of 8)'")"
check_out "an operator may unrevoke too" "released $(mac_of 8)" sh -c \
    "env PROVD_TOKEN_FILE='$SEC' '$BIN/provctl' --url '$URL' revoke '$(mac_of 8)' --reason certificateHold >/dev/null && '$BIN/provctl' --url '$URL' unrevoke '$(mac_of 8)'"

# --- a new base on schedule ------------------------------------------------------
sql "update crl_bases set this_update = this_update - interval '13 hours'" >/dev/null
sleep 6		# the delta cached by this provd is at most 5 s old
check "the delta after ca.crl_base_interval_s" provctl crl --delta --pem --out "$T/delta3.pem"
base2=$(sql "select max(crl_number) from crl_bases")
check_eq "  a second base was made" 2 "$(sql "select count(*) from crl_bases")"
check "  newer than the first ($base2)" test "$base2" -gt "$base"
check_eq "  the delta is against it" "$base2" "$(delta_base "$T/delta3.pem")"
check_eq "  and lists no revocation (only releases, removeFromCRL)" 0 \
    "$(crl_text "$T/delta3.pem" | grep -A4 'Serial Number' | grep -c -E 'Key Compromise|Certificate Hold|Superseded|Cessation')"
check_eq "  the new base holds what is revoked now" \
    "$(sql "select count(*) from certificates where status <> 'active' and not_after > now()")" \
    "$(sql "select entries || '' from crl_bases where crl_number = $base2")"
check_eq "  its entries recorded" "$(sql "select entries from crl_bases where crl_number = $base2")" \
    "$(sql "select count(*) from crl_base_entries where crl_number = $base2")"

# --- two instances, one base ---------------------------------------------------------
cp "$T/provd.conf" "$T/provd2.conf"
mkdir -p "$T/p2"
first_pid=$provd_pid first_url=$URL
check "second provd" provd_start "$T/provd2.conf" "$T/p2"
second_pid=$provd_pid URL2=$URL
provd_pid=$first_pid URL=$first_url
sql "update crl_bases set this_update = this_update - interval '13 hours'" >/dev/null
sleep 6
i=0
racers=""
while [ $i -lt 8 ]; do
	curl -s -o "$T/race-a$i.der" "$URL/v1/crl/delta" &
	racers="$racers $!"
	curl -s -o "$T/race-b$i.der" "$URL2/v1/crl/delta" &
	racers="$racers $!"
	i=$((i + 1))
done
for r in $racers; do wait "$r"; done
base3=$(sql "select max(crl_number) from crl_bases")
check_eq "16 requests at two instances made one new base" "2|$base3" \
    "$(sql "select count(*) from crl_bases where crl_number >= $base2")|$(sql "select max(crl_number) from crl_bases")"
check "  newer than the one before ($base3)" test "$base3" -gt "$base2"
bases=$(for f in "$T"/race-*.der; do openssl crl -inform DER -in "$f" -noout -text | sed -n '/Delta CRL Indicator/{n;s/ //gp}'; done | sort -u | tr '\n' ' ')
check_eq "  every delta from either instance is against it" "$base3 " "$bases"
check_eq "the newest two bases are kept" 2 "$(sql "select count(*) from crl_bases")"
check_eq "  and only their entries" 0 "$(sql "select count(*) from crl_base_entries e where not exists (select 1 from crl_bases b where b.crl_number = e.crl_number)")"
kill -TERM "$second_pid"; wait "$second_pid" 2>/dev/null
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/p2/provd.log" 2>/dev/null; then
	not_ok "the second provd ran clean under the sanitizers"
	grep -A 30 -E 'Sanitizer|runtime error' "$T/p2/provd.log" | head -n 60
fi

# --- size: 20,000 revoked certificates, a full CRL against a delta of 10 -------------
big=${CRL_TEST_REVOKED:-20000}
sql "insert into devices (mac, status)
select ('02:77:' || lpad(to_hex((i >> 24) & 255), 2, '0') || ':' || lpad(to_hex((i >> 16) & 255), 2, '0') || ':' || lpad(to_hex((i >> 8) & 255), 2, '0') || ':' || lpad(to_hex(i & 255), 2, '0'))::macaddr, 'revoked'
from generate_series(1, $big) i;
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der, revoked_at, revocation_reason)
select d.id, md5('crl-size-' || d.id), sha256(('crl-size-' || d.id)::bytea), 'revoked', now() - interval '1 day',
    now() + interval '300 days', '\x30'::bytea, now() - interval '1 hour', (array[0, 1, 3, 4, 5, 9])[1 + d.id % 6]
from devices d where d.mac >= '02:77:00:00:00:00' and d.mac <= '02:77:ff:ff:ff:ff';" >/dev/null
check_eq "$big revoked certificates inserted" "$big" \
    "$(sql "select count(*) from certificates where serial in (select md5('crl-size-' || id) from devices)")"
# an hour later: the releases above are on every complete CRL by then
sql "update crl_bases set this_update = this_update - interval '13 hours';
update crl_releases set released_at = released_at - interval '2 hours'" >/dev/null
sleep 6
check "a base over them" provctl crl --delta --pem --out "$T/delta-big0.pem"
check_eq "  its delta is empty" 0 "$(entries "$T/delta-big0.pem")"
i=1
while [ $i -le 10 ]; do
	new_csr "$T/z$i.csr"
	provctl issue --mac "$(printf '00:1a:7d:da:78:%02x' $i)" --csr "$T/z$i.csr" >/dev/null 2>&1 &&
	    sectl revoke "$(printf '00:1a:7d:da:78:%02x' $i)" --reason keyCompromise >/dev/null 2>&1 ||
	    not_ok "issue and revoke $i"
	i=$((i + 1))
done
check "the full CRL" provctl crl --out "$T/full-big.der"
check "the delta CRL" provctl crl --delta --out "$T/delta-big.der"
full_entries=$(openssl crl -inform DER -in "$T/full-big.der" -noout -text | grep -c 'Serial Number:')
delta_entries=$(openssl crl -inform DER -in "$T/delta-big.der" -noout -text | grep -c 'Serial Number:')
check_eq "  the delta lists exactly the 10 new revocations" 10 "$delta_entries"
check "  the full CRL lists everything ($full_entries)" test "$full_entries" -ge $((big + 10))
full_bytes=$(stat -c %s "$T/full-big.der")
delta_bytes=$(stat -c %s "$T/delta-big.der")
echo "# crl size: full CRL $full_bytes bytes ($full_entries entries), delta CRL $delta_bytes bytes ($delta_entries entries)"
check "  the delta is a small fraction of the full CRL" test "$delta_bytes" -lt $((full_bytes / 100))
t_done
