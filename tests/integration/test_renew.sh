#!/bin/sh
# Certificate renewal end to end: a device signs its new CSR with its current
# key (openssl cms as an independent client, then devagent), provd answers
# with a new certificate and supersedes the old one everywhere (database,
# audit, outbox, OCSP, CRL); replays, revoked, superseded, foreign, tampered,
# unsigned and expired requests are refused and change nothing; the renewal
# hint, "renew at next contact" and a group's validity cap; devagent renew
# and devagent run against the file keystore and a TPM (swtpm).
. "$(dirname "$0")/lib.sh"
PROVD_LOG_LEVEL=${PROVD_LOG_LEVEL:-info}

AIR=$T/air
mkdir -p "$AIR"
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 5000"
check "start provd" start_provd || { t_done; exit 1; }
CA=$T/ca
SEC=$T/security.token
OP=$T/operator.token
MAC1=02:00:00:00:10:01

# issue DEVICE-FILE-PREFIX MAC: a certificate for MAC (prefix.pem, key prefix.csr.key)
issue() {
	new_csr "$1.csr" && provctl issue --mac "$2" --csr "$1.csr" --out "$1.pem" >/dev/null
}
# signed_req OUT SIGNER-PEM SIGNER-KEY CSR [extra openssl cms args]: the JSON body
signed_req() {
	_o=$1 _c=$2 _k=$3 _r=$4; shift 4
	openssl req -in "$_r" -outform DER -out "$_r.der" &&
	openssl cms -sign -binary -nodetach -nosmimecap -in "$_r.der" -signer "$_c" -inkey "$_k" \
	    -outform DER -out "$_o.cms" "$@" &&
	printf '{"signed_csr":"%s"}' "$(base64 -w0 "$_o.cms")" > "$_o"
}
# renew BODYFILE: POST /v1/renew without any token; prints the status
renew() {
	curl -s -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	    --data-binary "@$1" "$URL/v1/renew"
}
serial_of() { serial32 "$(openssl x509 -in "$1" -noout -serial | sed 's/serial=//')"; }
jget() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$1)" "$T/resp"; }
cert_status() { sql "select status || coalesce('/' || revocation_reason, '') from certificates where serial = '$1'"; }
active_count() { sql "select count(*) from certificates c join devices d on d.id = c.device_id where d.mac = '$1' and c.status = 'active'"; }

# --- a renewal with openssl cms as the device ------------------------------
check "issue the first certificate" issue "$T/d1" "$MAC1"
S1=$(serial_of "$T/d1.pem")
new_csr "$T/n1.csr"
check "signed request made with openssl cms" signed_req "$T/r1.json" "$T/d1.pem" "$T/d1.csr.key" "$T/n1.csr"
before=$(counts)
check_eq "POST /v1/renew without a token: 201" 201 "$(renew "$T/r1.json")"
jget "['certificate']" > "$T/n1.pem"
S2=$(serial_of "$T/n1.pem")
check_eq "the answer names the replaced certificate" "$S1" "$(jget "['replaced']")"
check_eq "a new key: key_reused false" False "$(jget "['key_reused']")"
check "the new certificate verifies against the CA" openssl verify -CAfile "$CA/root.crt" "$T/n1.pem"
check_eq "it certifies the CSR's key" \
    "$(openssl pkey -in "$T/n1.csr.key" -pubout)" "$(openssl x509 -in "$T/n1.pem" -noout -pubkey)"
check_eq "same subject as before" "$(openssl x509 -in "$T/d1.pem" -noout -subject)" \
    "$(openssl x509 -in "$T/n1.pem" -noout -subject)"
check_eq "old certificate superseded (reason 4)" "superseded/4" "$(cert_status "$S1")"
check_eq "new certificate active" "active" "$(cert_status "$S2")"
check_eq "superseded_by points at the new one" "$S2" \
    "$(sql "select n.serial from certificates o join certificates n on n.id = o.superseded_by where o.serial = '$S1'")"
check_eq "one active certificate for the device" 1 "$(active_count "$MAC1")"
check_eq "one audit row certificate.renew" 1 \
    "$(sql "select count(*) from audit_log where action = 'certificate.renew' and object = '$S2'")"
check_eq "the audit row names the replaced serial" "$S1" \
    "$(sql "select detail->>'replaced' from audit_log where action = 'certificate.renew' and object = '$S2'")"
check_eq "one directory outbox row with the new serial" 1 \
    "$(sql "select count(*) from directory_outbox where payload->>'serial' = '$S2' and op = 'upsert'")"
check_eq "audit chain intact" 200 "$(api POST /v1/audit/verify "" "$SEC")"
check_out "OCSP: the old certificate is revoked (superseded)" 'd1.pem: revoked' \
    openssl ocsp -issuer "$CA/ca.crt" -cert "$T/d1.pem" -url "$URL/ocsp" -CAfile "$CA/root.crt"
check_out "OCSP: the new certificate is good" 'n1.pem: good' \
    openssl ocsp -issuer "$CA/ca.crt" -cert "$T/n1.pem" -url "$URL/ocsp" -CAfile "$CA/root.crt"
curl -s "$URL/v1/crl" -o "$T/crl.der"
check_fails_out "openssl verify -crl_check refuses the old one" 'certificate revoked' \
    openssl verify -crl_check -CAfile "$CA/root.crt" -CRLfile "$T/crl.der" "$T/d1.pem"
check "openssl verify -crl_check accepts the new one" \
    openssl verify -crl_check -CAfile "$CA/root.crt" -CRLfile "$T/crl.der" "$T/n1.pem"

# --- refused, and nothing changes ------------------------------------------
before=$(counts)
check_eq "the same request again (replay): 401" 401 "$(renew "$T/r1.json")"
check_out "  says the certificate is superseded" 'superseded' cat "$T/resp"
new_csr "$T/n1b.csr"
signed_req "$T/r1b.json" "$T/d1.pem" "$T/d1.csr.key" "$T/n1b.csr"
check_eq "a new request signed with the superseded certificate: 401" 401 "$(renew "$T/r1b.json")"
# another CA's certificate, same address
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil.key" \
    -subj "/serialNumber=$MAC1" -days 30 -out "$T/evil.pem" 2>/dev/null
signed_req "$T/r_evil.json" "$T/evil.pem" "$T/evil.key" "$T/n1b.csr"
check_eq "signed with another CA's certificate: 401" 401 "$(renew "$T/r_evil.json")"
check_out "  says it is not this CA's" 'not issued by this CA' cat "$T/resp"
# a signature that does not verify: the last byte of the DER is the signature's
signed_req "$T/r_bad.json" "$T/n1.pem" "$T/n1.csr.key" "$T/n1b.csr"
python3 - "$T/r_bad.json.cms" "$T/r_bad.json" <<'EOF'
import base64, json, sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[-1] ^= 0x01
open(sys.argv[2], 'w').write(json.dumps({"signed_csr": base64.b64encode(bytes(d)).decode()}))
EOF
check_eq "a tampered signature: 401" 401 "$(renew "$T/r_bad.json")"
# a different key than the included certificate's
signed_req "$T/r_key.json" "$T/n1.pem" "$T/n1.csr.key" "$T/n1b.csr"
python3 - "$T/r_key.json.cms" "$T/n1b.csr.der" "$T/r_key.json" <<'EOF'
import base64, json, sys
d = bytes(open(sys.argv[1], 'rb').read())
csr = open(sys.argv[2], 'rb').read()
# the encapsulated CSR replaced by another of the same length: the signed digest no longer matches
i = d.find(csr)
assert i > 0
d = d[:i] + bytes(b ^ 0xff if k == 40 else b for k, b in enumerate(csr)) + d[i + len(csr):]
open(sys.argv[3], 'w').write(json.dumps({"signed_csr": base64.b64encode(d).decode()}))
EOF
check_eq "content changed after signing: 401" 401 "$(renew "$T/r_key.json")"
signed_req "$T/r_noattr.json" "$T/n1.pem" "$T/n1.csr.key" "$T/n1b.csr" -noattr
check_eq "no signingTime (openssl cms -noattr): 400" 400 "$(renew "$T/r_noattr.json")"
check_out "  says a signingTime is needed" 'signingTime' cat "$T/resp"
# the CMS content is not a CSR
printf 'not a certificate request' > "$T/junk.der"
openssl cms -sign -binary -nodetach -nosmimecap -in "$T/junk.der" -signer "$T/n1.pem" \
    -inkey "$T/n1.csr.key" -outform DER -out "$T/junk.cms"
printf '{"signed_csr":"%s"}' "$(base64 -w0 "$T/junk.cms")" > "$T/r_junk.json"
check_eq "signed content that is not a CSR: 400" 400 "$(renew "$T/r_junk.json")"
printf '{"signed_csr":"%s"}' "$(base64 -w0 "$T/n1b.csr.der")" > "$T/r_raw.json"
check_eq "a bare CSR where the CMS belongs: 400" 400 "$(renew "$T/r_raw.json")"
printf '{"signed_csr":"@@@@"}' > "$T/r_b64.json"
check_eq "not base64: 400" 400 "$(renew "$T/r_b64.json")"
printf '{"signed_csr":"%s","csr":"x"}' "$(base64 -w0 "$T/junk.cms")" > "$T/r_both.json"
check_eq "both signed_csr and csr: 400" 400 "$(renew "$T/r_both.json")"
printf '{}' > "$T/r_none.json"
check_eq "neither: 400" 400 "$(renew "$T/r_none.json")"
printf '{"signed_csr":"AAAA","mac":"%s"}' "$MAC1" > "$T/r_unk.json"
check_eq "an unknown field: 400" 400 "$(renew "$T/r_unk.json")"
printf '{"csr":"%s"}' "x" > "$T/r_csr.json"
check_eq "a plain csr over plain HTTP (no client certificate): 401" 401 "$(renew "$T/r_csr.json")"
printf 'not json' > "$T/r_nj.json"
check_eq "not JSON: 400" 400 "$(renew "$T/r_nj.json")"
head -c 1048576 /dev/zero | tr '\0' 'A' | sed 's/^/{"signed_csr":"/; s/$/"}/' > "$T/r_big.json"
check_eq "a 1 MB body: 413" 413 "$(renew "$T/r_big.json")"
check_eq "nothing was written by the refused requests" "$before" "$(counts)"
check_eq "still one active certificate" 1 "$(active_count "$MAC1")"

# the same key again is allowed, and said
openssl req -new -key "$T/n1.csr.key" -subj "/CN=x" -out "$T/same.csr" 2>/dev/null
signed_req "$T/r_same.json" "$T/n1.pem" "$T/n1.csr.key" "$T/same.csr"
check_eq "renewal with the same key: 201" 201 "$(renew "$T/r_same.json")"
check_eq "  key_reused true" True "$(jget "['key_reused']")"
jget "['certificate']" > "$T/n2.pem"
check_eq "  recorded in the audit row" true \
    "$(sql "select detail->>'key_reused' from audit_log where action = 'certificate.renew' order by seq desc limit 1")"

# a revoked certificate cannot renew
check "issue a second device" issue "$T/d2" 02:00:00:00:10:02
check "revoke it" provctl revoke 02:00:00:00:10:02 --reason keyCompromise
new_csr "$T/n2b.csr"
signed_req "$T/r_rev.json" "$T/d2.pem" "$T/d2.csr.key" "$T/n2b.csr"
check_eq "a revoked certificate: 401" 401 "$(renew "$T/r_rev.json")"
check_out "  says revoked" 'revoked' cat "$T/resp"

# an expired certificate of ours: intake again
cat > "$T/ca.cnf" <<EOF
[ca]
default_ca = x
[x]
database = $T/index.txt
new_certs_dir = $T
serial = $T/serial.txt
default_md = sha256
policy = p
copy_extensions = none
[p]
serialNumber = supplied
EOF
: > "$T/index.txt"; echo 01 > "$T/serial.txt"
new_csr "$T/old.csr"
openssl req -new -key "$T/old.csr.key" -subj "/serialNumber=02:00:00:00:10:03" -out "$T/old.csr"
openssl ca -batch -config "$T/ca.cnf" -cert "$CA/ca.crt" -keyfile "$CA/ca.key" -in "$T/old.csr" \
    -startdate 20200101000000Z -enddate 20200201000000Z -out "$T/old.pem" >/dev/null 2>&1
new_csr "$T/n3.csr"
signed_req "$T/r_exp.json" "$T/old.pem" "$T/old.csr.key" "$T/n3.csr"
check_eq "an expired certificate of this CA: 403" 403 "$(renew "$T/r_exp.json")"
check_out "  says intake is the way back" 'intake' cat "$T/resp"

# two renewals of one certificate at once: one wins
new_csr "$T/ca1.csr"; new_csr "$T/ca2.csr"
signed_req "$T/r_c1.json" "$T/n2.pem" "$T/n1.csr.key" "$T/ca1.csr"
signed_req "$T/r_c2.json" "$T/n2.pem" "$T/n1.csr.key" "$T/ca2.csr"
renew "$T/r_c1.json" > "$T/c1.st" & c1=$!
renew "$T/r_c2.json" > "$T/c2.st" & c2=$!
wait $c1 $c2
check_eq "two concurrent renewals: one 201" 1 "$(printf '%s\n%s\n' "$(cat "$T/c1.st")" "$(cat "$T/c2.st")" | grep -c '^201$')"
check_eq "  and still one active certificate" 1 "$(active_count "$MAC1")"

# --- the hint, renew at next contact, group validity cap ------------------
S3=$(sql "select c.serial from certificates c join devices d on d.id = c.device_id where d.mac = '$MAC1' and c.status = 'active'")
curl -s -o "$T/resp" "$URL/v1/renew/$S3"
check_eq "hint for a fresh certificate: renew_now false" False "$(jget "['renew_now']")"
check_eq "GET /v1/renew/{serial} for an unknown serial: 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/renew/0123456789abcdef0123456789abcdef")"
check_eq "GET /v1/renew/{serial} with a bad serial: 400" 400 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/renew/xyz")"
check_eq "renew-request without a token: 401" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/v1/devices/$MAC1/renew-request")"
check_eq "renew-request with the authorizer token: 403" 403 \
    "$(api POST "/v1/devices/$MAC1/renew-request" "" "$T/authorizer.token")"
check_out "provctl renew-request" "renew" provctl renew-request "$MAC1"
curl -s -o "$T/resp" "$URL/v1/renew/$S3"
check_eq "now the hint says renew_now true" True "$(jget "['renew_now']")"
check_out "  because an administrator asked" 'administrator' cat "$T/resp"
check_eq "renew-request for an unknown device: 404" 404 "$(api POST /v1/devices/02:00:00:00:99:99/renew-request)"
check_eq "renew-request for a revoked device: 409" 409 "$(api POST /v1/devices/02:00:00:00:10:02/renew-request)"
check_eq "audited as device.renew_request" 1 \
    "$(sql "select count(*) from audit_log where action = 'device.renew_request'")"

# the group cap: members get certificates of at most N days
check "put the device in group lab" sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    -H 'Authorization: Bearer $(cat "$SEC")' -H 'Content-Type: application/json' \
    --data '{\"mac\":\"$MAC1\"}' '$URL/v1/groups/lab/devices') = 201 ]"
printf '{"max_validity_days": 7}' > "$T/cap.json"
check_eq "PUT /v1/groups/lab/validity with an operator token: 403" 403 \
    "$(api PUT /v1/groups/lab/validity "$T/cap.json")"
check_out "provctl group validity lab 7" '7' env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" group validity lab 7
for bad in '{"max_validity_days": 0}' '{"max_validity_days": 36501}' '{"max_validity_days": "7"}' '{}' '{"days": 7}'; do
	printf '%s' "$bad" > "$T/capbad.json"
	check_eq "PUT validity $bad: 400" 400 "$(api PUT /v1/groups/lab/validity "$T/capbad.json" "$SEC")"
done
printf '{"max_validity_days": 30}' > "$T/cap2.json"
check_eq "a group name with SQL metacharacters: 200" 200 \
    "$(api PUT "/v1/groups/o'brien%3B%20drop%20table%20groups--/validity" "$T/cap2.json" "$SEC")"
check_eq "  stored as given" 30 "$(sql "select max_validity_days from groups where name = 'o''brien; drop table groups--'")"

# --- devagent: intake, then renew and run --------------------------------
dev_pids="" swtpm_pid=""
cleanup_devices() {
	for p in $dev_pids $swtpm_pid; do kill "$p" 2>/dev/null; done
	for p in $dev_pids $swtpm_pid; do wait "$p" 2>/dev/null; done
	dev_pids="" swtpm_pid=""
}
# enroll_device DIR ADDR [init args]: devagent made, enrolled over the sim air
enroll_device() {
	_dir=$1 _a=$2; shift 2
	"$BIN/devagent" --state "$_dir" init --addr "$_a" --pin 24681357 "$@" >/dev/null || return 1
	check_fails_out "devagent renew before intake: clear error" 'intake' \
	    "$BIN/devagent" --state "$_dir" renew --url "$URL"
	"$BIN/devagent" --state "$_dir" serve --air "$AIR" --once >"$_dir.out" 2>&1 &
	_pid=$!
	_i=0
	until grep -q 'in range' "$_dir.out" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 100 ] || return 1; sleep 0.05
	done
	printf '24681357\n' > "$T/pin"
	provctl enroll "$_a" --label-mac "$_a" --pin-file "$T/pin" >/dev/null || return 1
	wait $_pid
}
dev_serial() { _v=$("$BIN/devagent" --state "$1" show | sed -n 's/^certificate: serial //p'); [ -z "$_v" ] || serial32 "$_v"; }
# devagent_renews NAME DIR ADDR: renew twice, run once after a renew-request
devagent_renews() {
	_n=$1 _dir=$2 _a=$3
	_s0=$(dev_serial "$_dir")
	check_out "$_n: devagent renew" 'renewed, new certificate [0-9a-f]{32}' \
	    "$BIN/devagent" --state "$_dir" renew --url "$URL"
	_s1=$(dev_serial "$_dir")
	check "$_n: the device holds a new certificate" test -n "$_s1" -a "$_s1" != "$_s0"
	check_eq "$_n: provd has it active, the old one superseded" "active superseded/4" \
	    "$(cert_status "$_s1") $(cert_status "$_s0")"
	check_eq "$_n: valid validity_days (365 days + 300 s) without a cap" 31536300 \
	    "$(sql "select extract(epoch from not_after - not_before)::int from certificates where serial = '$_s1'")"
	check_eq "$_n: a new key (key_reused false in the audit row)" false \
	    "$(sql "select detail->>'key_reused' from audit_log where action = 'certificate.renew' and object = '$_s1'")"
	check_out "$_n: devagent run --once with nothing due does not renew" 'checking renewal' \
	    "$BIN/devagent" --state "$_dir" run --url "$URL" --once
	check_eq "$_n:   same certificate" "$_s1" "$(dev_serial "$_dir")"
	provctl renew-request "$_a" >/dev/null
	env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" group add lab --device "$_a" >/dev/null
	check_out "$_n: after renew-request, devagent run --once renews" 'renewing \(An administrator asked' \
	    "$BIN/devagent" --state "$_dir" run --url "$URL" --once
	_s2=$(dev_serial "$_dir")
	check "$_n:   new certificate" test -n "$_s2" -a "$_s2" != "$_s1"
	check_eq "$_n:   valid 7 days (+ 300 s backdating): group lab's cap" 605100 \
	    "$(sql "select extract(epoch from not_after - not_before)::int from certificates where serial = '$_s2'")"
	check_eq "$_n:   the request is cleared" "" \
	    "$(sql "select renew_requested_at from devices where mac = '$_a'")"
	# two-thirds of the lifetime: provd's record says the certificate is
	# 300 days into 365 (its dates on record are what the hint reads)
	sql "update certificates set not_before = now() - interval '300 days' where serial = '$_s2'" >/dev/null
	check_out "$_n: at two-thirds of the lifetime, devagent run --once renews" \
	    'renewing \(Two-thirds of the certificate.s lifetime have passed' \
	    "$BIN/devagent" --state "$_dir" run --url "$URL" --once
	_s3=$(dev_serial "$_dir")
	check "$_n:   new certificate" test -n "$_s3" -a "$_s3" != "$_s2"
	check "$_n: the installed certificate verifies" sh -c \
	    "'$BIN/devagent' --state '$_dir' show >/dev/null && curl -s '$URL/v1/certificates/$_s3' -H 'Authorization: Bearer $(cat "$OP")' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"certificate\"])' > '$_dir.pem' && openssl verify -CAfile '$CA/root.crt' '$_dir.pem'"
}

MAC5=02:00:00:00:10:05
check "devagent (file keystore) enrolled" enroll_device "$T/dev5" "$MAC5"
devagent_renews "file" "$T/dev5" "$MAC5"
check "one active certificate for the device" test "$(active_count "$MAC5")" = 1
check "revoke it" provctl revoke "$MAC5" --reason keyCompromise
check_fails_out "devagent renew after revocation: provd's reason" 'revoked' \
    "$BIN/devagent" --state "$T/dev5" renew --url "$URL"
check_fails_out "devagent renew with provd unreachable: clear error" 'cannot reach provd' \
    "$BIN/devagent" --state "$T/dev5" renew --url http://127.0.0.1:9

if command -v swtpm >/dev/null && swtpm_start "$T/tpm"; then
	MAC6=02:00:00:00:10:06
	check "devagent (tpm2 keystore on swtpm) enrolled" enroll_device "$T/dev6" "$MAC6" \
	    --keystore tpm2 --tcti "$swtpm_tcti"
	devagent_renews "tpm2" "$T/dev6" "$MAC6"
else
	not_ok "a private swtpm starts (swtpm from make deps)"
fi
cleanup_devices
t_done
