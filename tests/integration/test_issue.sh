#!/bin/sh
# Issuance end to end: provd with a real PostgreSQL, certificates checked by
# the openssl command line, every kind of bad input refused with nothing
# written, revocation and the CRL, the audit chain, the signer process.
. "$(dirname "$0")/lib.sh"

write_conf
check_out "configuration OK" '^configuration OK$' provd -n
check "start provd" start_provd || { t_done; exit 1; }
check_out "migrate again is a no-op" '^migrations: 0 applied' provd migrate
check "health" provctl health

# --- a good issuance, checked by openssl --------------------------------
new_csr "$T/d1.csr"
before=$(counts)
check "issue with provctl" provctl issue --mac 00:1A:7D:DA:71:13 --csr "$T/d1.csr" \
    --owner alice --group engineering --out "$T/d1.pem"
check "openssl verify accepts it" openssl verify -CAfile "$T/ca/root.crt" "$T/d1.pem"
openssl x509 -in "$T/d1.pem" -noout -text > "$T/d1.txt" 2>&1
check "SAN URI urn:dev:mac" grep -q 'URI:urn:dev:mac:001a7dda7113' "$T/d1.txt"
check "subject serialNumber is the address" sh -c "openssl x509 -in '$T/d1.pem' -noout -subject -nameopt RFC2253 | grep -q 'serialNumber=00:1a:7d:da:71:13'"
check "keyUsage digitalSignature (critical)" sh -c "grep -A1 'Key Usage: critical' '$T/d1.txt' | grep -q 'Digital Signature'"
check "extendedKeyUsage client+server" sh -c "grep -A1 'Extended Key Usage' '$T/d1.txt' | grep -q 'TLS Web Client Authentication' && grep -A1 'Extended Key Usage' '$T/d1.txt' | grep -q 'TLS Web Server Authentication'"
check "CRL distribution point" grep -q 'URI:http://127.0.0.1:8440/v1/crl' "$T/d1.txt"
check "OCSP AIA" grep -q 'OCSP - URI:http://127.0.0.1:8440/ocsp' "$T/d1.txt"
check "SKI and AKI" sh -c "grep -q 'Subject Key Identifier' '$T/d1.txt' && grep -q 'Authority Key Identifier' '$T/d1.txt'"
serial=$(serial32 "$(openssl x509 -in "$T/d1.pem" -noout -serial | sed 's/serial=//')")
slen=$(printf %s "$serial" | wc -c)
check "128-bit serial ($slen hex digits)" test "$slen" -ge 30 -a "$slen" -le 32
check_eq "no device or certificate before" "0|0" "$(echo "$before" | cut -d'|' -f1,2)"
after=$(counts)
check_eq "exactly one device, certificate, audit row and outbox row per issuance" \
    "$(echo "$before" | awk -F'|' '{print $1+1 "|" $2+1 "|" $3+1 "|" $4+1}')" "$after"
check_eq "database row" "00:1a:7d:da:71:13|active|alice" \
    "$(sql "select d.mac, c.status, u.name from devices d join certificates c on c.device_id = d.id join users u on u.id = d.owner_id")"
check_out "certificate lookup by serial" '"status": "active"' provctl cert "$(sql 'select serial from certificates limit 1')"

# --- every accepted spelling of an address normalises -------------------
i=0
for m in 00-1a-7d-da-71-14 001a.7dda.7115 001A7DDA7116; do
	i=$((i + 1))
	new_csr "$T/s$i.csr"
	jq -n --arg mac "$m" --arg csr "$(cat "$T/s$i.csr")" '{mac:$mac, csr:$csr}' > "$T/s$i.json"
	st=$(api POST /v1/certificates "$T/s$i.json")
	check_eq "spelling $m accepted" 201 "$st"
	check_eq "spelling $m normalised" "00:1a:7d:da:71:1$((i + 3))" "$(jq -r .mac "$T/resp")"
done

# --- bad input: clear error, nothing written -----------------------------
before=$(counts)
bad() {	# NAME EXPECTED_STATUS BODYFILE [TOKENFILE]
	st=$(api POST /v1/certificates "$3" "${4:-}")
	check_eq "$1 -> $2" "$2" "$st"
	if [ "$st" -ge 400 ] 2>/dev/null && [ "$st" != 401 ] && [ "$st" != 413 ]; then
		jq -e '.error.message and .error.request_id' "$T/resp" >/dev/null || not_ok "$1: error body has message and request id"
	fi
}
new_csr "$T/b.csr"
for m in 00:1A:7D:DA:71 001A7DDA711 001A7DDA71134 00:1A:7D:DA:71:1G 01:00:5e:00:00:01 00:00:00:00:00:00 ff:ff:ff:ff:ff:ff; do
	jq -n --arg mac "$m" --arg csr "$(cat "$T/b.csr")" '{mac:$mac, csr:$csr}' > "$T/b.json"
	bad "bad address '$m'" 400 "$T/b.json"
	check_eq "bad address '$m' code" bad_mac "$(jq -r .error.code "$T/resp")"
done
mkbody() { jq -n --arg csr "$(cat "$1")" '{mac:"00:1a:7d:da:71:20", csr:$csr}' > "$2"; }
# CSR with a broken signature: flip a byte near the end of the DER
openssl req -in "$T/b.csr" -outform DER -out "$T/b.der" 2>/dev/null
len=$(stat -c %s "$T/b.der")
{ head -c $((len - 5)) "$T/b.der"; printf '\001'; tail -c 4 "$T/b.der"; } > "$T/badsig.der"
openssl base64 -in "$T/badsig.der" | { echo "-----BEGIN CERTIFICATE REQUEST-----"; cat; echo "-----END CERTIFICATE REQUEST-----"; } > "$T/badsig.csr"
mkbody "$T/badsig.csr" "$T/b1.json"; bad "CSR with a bad signature" 400 "$T/b1.json"
new_csr "$T/p224.csr" -algorithm EC -pkeyopt ec_paramgen_curve:P-224
mkbody "$T/p224.csr" "$T/b2.json"; bad "P-224 key" 400 "$T/b2.json"
check_eq "P-224 code" key_not_allowed "$(jq -r .error.code "$T/resp")"
new_csr "$T/k1.csr" -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1
mkbody "$T/k1.csr" "$T/b3.json"; bad "secp256k1 key" 400 "$T/b3.json"
new_csr "$T/rsa1024.csr" -algorithm RSA -pkeyopt rsa_keygen_bits:1024
mkbody "$T/rsa1024.csr" "$T/b4.json"; bad "RSA-1024 key" 400 "$T/b4.json"
new_csr "$T/rsa2048.csr" -algorithm RSA -pkeyopt rsa_keygen_bits:2048
mkbody "$T/rsa2048.csr" "$T/b5.json"; bad "RSA-2048 refused unless allowed" 400 "$T/b5.json"
head -c $((len / 2)) "$T/b.der" | openssl base64 | { echo "-----BEGIN CERTIFICATE REQUEST-----"; cat; echo "-----END CERTIFICATE REQUEST-----"; } > "$T/trunc.csr"
mkbody "$T/trunc.csr" "$T/b6.json"; bad "truncated DER" 400 "$T/b6.json"
{ cat "$T/b.csr"; echo "garbage after the PEM"; } > "$T/trail.csr"
mkbody "$T/trail.csr" "$T/b7.json"; bad "PEM with trailing garbage" 400 "$T/b7.json"
head -c 10485760 /dev/zero | tr '\0' 'a' > "$T/big.json"
bad "10 MB body" 413 "$T/big.json"
: > "$T/empty.json"; bad "empty body" 400 "$T/empty.json"
printf '{"mac": "00:1a:7d:da:71:20", "csr": ' > "$T/inv.json"; bad "invalid JSON" 400 "$T/inv.json"
printf '[1,2]' > "$T/arr.json"; bad "JSON array instead of object" 400 "$T/arr.json"
jq -n --arg csr "$(cat "$T/b.csr")" '{mac:"00:1a:7d:da:71:20", csr:$csr, colour:"red"}' > "$T/unk.json"
bad "unknown field" 400 "$T/unk.json"
check "unknown field named in the error" grep -q 'colour' "$T/resp"
jq -n --arg csr "$(cat "$T/b.csr")" '{mac:"00:1a:7d:da:71:20", csr:$csr, mac:"00:1a:7d:da:71:21"}' > "$T/dup.json" 2>/dev/null
printf '{"mac":"00:1a:7d:da:71:20","mac":"00:1a:7d:da:71:21","csr":"x"}' > "$T/dup.json"; bad "duplicate key" 400 "$T/dup.json"
jq -n --arg csr "$(cat "$T/b.csr")" '{mac:"00:1a:7d:da:71:20", csr:$csr, owner:"bad\nname"}' > "$T/own.json"
bad "owner with a control character" 400 "$T/own.json"
jq -n --arg csr "$(cat "$T/b.csr")" '{mac:"00:1a:7d:da:71:13", csr:$csr}' > "$T/again.json"
bad "second issuance for an active device" 409 "$T/again.json"
mkbody "$T/b.csr" "$T/ok.json"
echo "not-a-token" > "$T/wrong.token"
bad "wrong API token" 401 "$T/ok.json" "$T/wrong.token"
st=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$T/ok.json" "$URL/v1/certificates")
check_eq "missing API token -> 401" 401 "$st"
bad "authorizer token may not issue" 403 "$T/ok.json" "$T/authorizer.token"
check_eq "nothing written by refused requests" "$before" "$(counts)"

# --- replace supersedes ---------------------------------------------------
new_csr "$T/d1b.csr"
check "replace with provctl" provctl issue --mac 00:1a:7d:da:71:13 --csr "$T/d1b.csr" --replace --out "$T/d1b.pem"
check_eq "old certificate superseded, new active" "active,superseded" \
    "$(sql "select string_agg(c.status, ',' order by c.status) from certificates c join devices d on d.id = c.device_id where d.mac = '00:1a:7d:da:71:13'")"

# --- revocation and the CRL ----------------------------------------------
check "revoke with provctl" env PROVD_TOKEN_FILE="$T/security.token" "$BIN/provctl" --url "$URL" revoke 00:1a:7d:da:71:13 --reason keyCompromise
check_fails "revoking again is refused" env PROVD_TOKEN_FILE="$T/security.token" "$BIN/provctl" --url "$URL" revoke 00:1a:7d:da:71:13
check "provctl crl --out" provctl crl --out "$T/crl.der"
check "openssl crl parses it" sh -c "openssl crl -inform DER -in '$T/crl.der' -noout -text > '$T/crl.txt'"
rserial=$(openssl x509 -in "$T/d1b.pem" -noout -serial | sed 's/serial=//')
check "CRL lists the revoked serial with its reason" sh -c "grep -q '$rserial' '$T/crl.txt' && grep -q 'Key Compromise' '$T/crl.txt'"
check "CRL signature verifies" openssl crl -inform DER -in "$T/crl.der" -CAfile "$T/ca/root.crt" -noout
openssl crl -inform DER -in "$T/crl.der" -out "$T/crl.pem"
check_fails "openssl verify -crl_check rejects the revoked certificate" \
    openssl verify -crl_check -CAfile "$T/ca/root.crt" -CRLfile "$T/crl.pem" "$T/d1b.pem"
provctl cert "$(sql "select serial from certificates c join devices d on d.id=c.device_id where d.mac='00:1a:7d:da:71:14'")" --pem > "$T/s1.pem"
check "openssl verify -crl_check accepts a good certificate" \
    openssl verify -crl_check -CAfile "$T/ca/root.crt" -CRLfile "$T/crl.pem" "$T/s1.pem"
check "PEM CRL over the API" sh -c "curl -sf '$URL/v1/crl?format=pem' | grep -q 'BEGIN X509 CRL'"

# --- audit chain ------------------------------------------------------------
check "audit verify OK" env PROVD_TOKEN_FILE="$T/security.token" "$BIN/provctl" --url "$URL" audit verify
check_fails "operator may not verify the audit log" provctl audit verify
check_fails "audit rows cannot be updated" sql "update audit_log set actor = 'mallory' where seq = 2"
check_fails "audit rows cannot be deleted" sql "delete from audit_log where seq = 2"
sql "alter table audit_log disable trigger user; update audit_log set actor = 'mallory' where seq = 2; alter table audit_log enable trigger user" >/dev/null
check "an edited row is detected" sh -c "env PROVD_TOKEN_FILE='$T/security.token' '$BIN/provctl' --url '$URL' audit verify | grep -q 'BROKEN at seq 2'"
check_fails "provd audit verify fails too" provd audit verify

# --- metrics, signer restart, shutdown --------------------------------------
check "metrics count issuances" sh -c "curl -sf '$URL/metrics' | grep -q '^provd_certificates_issued_total 5$'"
spid=$(pgrep -f "provd signer --fd" | head -n 1)
kill -9 "$spid" 2>/dev/null
new_csr "$T/d9.csr"
jq -n --arg csr "$(cat "$T/d9.csr")" '{mac:"00:1a:7d:da:71:30", csr:$csr}' > "$T/d9.json"
st=$(api POST /v1/certificates "$T/d9.json")
[ "$st" = 201 ] || st=$(api POST /v1/certificates "$T/d9.json")
check_eq "issuance works after the signer was killed" 201 "$st"
stop_provd
check_eq "provd exits 0 on SIGTERM" 0 "$provd_status"
check_eq "no signer left running" "" "$(pgrep -f "provd -c $T/provd.conf" || true)"
t_done
