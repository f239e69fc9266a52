#!/bin/sh
# Access points authenticate with a client certificate issued by our CA:
# provd over HTTPS asks for one (server.tls_client_ca), a certificate with
# the access-point role in its optional-data extension may ask
# POST /v1/authorize without a token and nothing else; a plain device
# certificate, a certificate from another CA and a revoked one are refused
# (the revoked one within the per-connection cache time, also on a kept-alive
# connection); only an admin token may issue a certificate with roles;
# clients without a certificate keep using tokens.
. "$(dirname "$0")/lib.sh"

CACHE_S=2	# CERT_CACHE_NS in server/http.c
PROVD_LOG_LEVEL=${PROVD_LOG_LEVEL:-info}	# the refusals are logged at info

write_conf
"$BIN/provd" -c "$T/provd.conf" ca init --cn "provd Test Root CA" >/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/server.key" 2>/dev/null
openssl req -new -key "$T/server.key" -subj "/CN=provd.test" -out "$T/server.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" -CAcreateserial \
    -days 1 -extfile "$T/ext" -out "$T/server.crt" 2>/dev/null
sed -i "s|^threads = 2|threads = 2\ntls_cert = $T/server.crt\ntls_key = $T/server.key\ntls_client_ca = $T/ca/root.crt|" \
    "$T/provd.conf"
check_out "TLS with client CA: configuration OK" '^configuration OK$' provd -n
check "start provd with TLS and a client CA" start_provd || { t_done; exit 1; }
HTTPS=$(echo "$URL" | sed 's|^http:|https:|')
PORT=${URL##*:}
ADMIN=$T/admin.token
SEC=$T/security.token

pctl() { "$BIN/provctl" --url "$HTTPS" --cacert "$T/ca/root.crt" "$@"; }
# tapi TOKENFILE|- METHOD PATH [BODY|"" [curl args...]]: status; body in $T/resp
tapi() {
	tf=$1; m=$2; path=$3; shift 3
	body=""
	rm -f "$T/resp"
	if [ $# -gt 0 ]; then body=$1; shift; fi
	set -- -s -o "$T/resp" -w '%{http_code}' --cacert "$T/ca/root.crt" -X "$m" "$@"
	[ "$tf" = - ] || set -- "$@" -H "Authorization: Bearer $(cat "$tf")"
	if [ -n "$body" ]; then
		printf '%s' "$body" > "$T/body.json"
		set -- "$@" -H 'Content-Type: application/json' --data-binary "@$T/body.json"
	fi
	curl "$@" "$HTTPS$path"
}
# capi CERTBASE METHOD PATH [BODY]: with client certificate CERTBASE.pem/.key, no token
capi() { tapi - "$2" "$3" "${4:-}" --cert "$1.pem" --key "$1.key"; }
Q='{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}'

# provd asks TLS clients for a certificate, naming our root
check_out "the handshake asks for a client certificate naming our root" \
    'Acceptable client certificate CA names' \
    sh -c "openssl s_client -connect 127.0.0.1:$PORT -CAfile '$T/ca/root.crt' </dev/null 2>&1"
check_out "... and that list is our root" 'CN ?= ?provd Test Root CA' \
    sh -c "openssl s_client -connect 127.0.0.1:$PORT -CAfile '$T/ca/root.crt' </dev/null 2>&1 | sed -n '/Acceptable client certificate CA names/,/Requested/p'"

# the policy, a device, and the access point's certificate
new_csr "$T/a.csr"
check "issue device A (operator token, over HTTPS)" pctl --token-file "$T/operator.token" issue \
    --mac 00:1a:7d:da:74:01 --csr "$T/a.csr" --owner alice --group engineering --out "$T/a.pem"
cp "$T/a.csr.key" "$T/a.key"
new_csr "$T/b.csr"
check "issue device B, no owner or groups (so no optional data)" pctl --token-file "$T/operator.token" \
    issue --mac 00:1a:7d:da:74:02 --csr "$T/b.csr" --out "$T/b.pem"
cp "$T/b.csr.key" "$T/b.key"
check_eq "add resource ap-lobby-3" 201 "$(tapi "$SEC" POST /v1/resources '{"name":"ap-lobby-3","class":"access-point"}')"
check_eq "rule: engineering may connect" 201 \
    "$(tapi "$SEC" POST /v1/rules '{"subject":{"group":"engineering"},"resource":"ap-lobby-3","action":"connect","effect":"allow"}')"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ap.key" 2>/dev/null
openssl req -new -key "$T/ap.key" -subj "/CN=ignored" -out "$T/ap.csr" 2>/dev/null
check_fails_out "operator token asking for the access-point role -> 403" 'HTTP 403|forbidden|admin' \
    pctl --token-file "$T/operator.token" issue --mac 02:00:00:00:0a:01 --csr "$T/ap.csr" \
    --role access-point --out "$T/ap-op.pem"
CSRJ=$(jq -Rs . "$T/ap.csr")
check_eq "operator token, roles in the body -> 403" 403 \
    "$(tapi "$T/operator.token" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:01\",\"csr\":$CSRJ,\"roles\":[\"access-point\"]}")"
check_out "... saying only an admin may" 'admin' cat "$T/resp"
check_eq "unknown role -> 400" 400 \
    "$(tapi "$ADMIN" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:01\",\"csr\":$CSRJ,\"roles\":[\"root\"]}")"
check_out "... naming it" 'Unknown role \\"root\\"' cat "$T/resp"
check_eq "a role listed twice -> 400" 400 \
    "$(tapi "$ADMIN" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:01\",\"csr\":$CSRJ,\"roles\":[\"access-point\",\"access-point\"]}")"
check_eq "roles not an array -> 400" 400 \
    "$(tapi "$ADMIN" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:01\",\"csr\":$CSRJ,\"roles\":\"access-point\"}")"
check_eq "a role that is not a string -> 400" 400 \
    "$(tapi "$ADMIN" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:01\",\"csr\":$CSRJ,\"roles\":[1]}")"
check_eq "nothing was issued by the refused requests" 0 \
    "$(sql "select count(*) from certificates c join devices d on d.id = c.device_id where d.mac = '02:00:00:00:0a:01'" 2>/dev/null || echo "?")"
check "admin token issues the access point's certificate (provctl issue --role)" \
    pctl --token-file "$ADMIN" issue --mac 02:00:00:00:0a:01 --csr "$T/ap.csr" --role access-point --out "$T/ap.pem"
check "the AP certificate verifies" openssl verify -CAfile "$T/ca/root.crt" "$T/ap.pem"
# the optional-data extension holds [3] { "access-point" }, read by openssl
openssl x509 -in "$T/ap.pem" -outform DER -out "$T/ap.der"
off=$(openssl asn1parse -inform DER -in "$T/ap.der" | grep -A1 "$(grep '^#define OPTDATA_OID "' "$top/common/common.h" | cut -d'"' -f2)" |
    tail -n 1 | cut -d: -f1 | tr -d ' ')
openssl asn1parse -inform DER -in "$T/ap.der" -strparse "$off" > "$T/optdata.txt" 2>&1
check_out "its optional-data extension holds roles [3]" 'cont \[ 3 \]' cat "$T/optdata.txt"
check_out "... with the UTF8String access-point" 'UTF8STRING +:access-point' cat "$T/optdata.txt"
# libmicrohttpd's TLS is GnuTLS, which must parse a client certificate,
# extension OIDs included, before provd sees it; its ASN.1 reader (libtasn1)
# refuses an OID arc over 64 bits: GnuTLS's own certtool must read it
check "GnuTLS parses the AP certificate (certtool -i)" certtool -i --infile "$T/ap.pem"
new_csr "$T/ap3.csr"
check_eq "admin token, roles in the body -> 201" 201 \
    "$(tapi "$ADMIN" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:02\",\"csr\":$(jq -Rs . "$T/ap3.csr"),\"roles\":[\"access-point\"]}")"
check_eq "... and the answer lists the role" '["access-point"]' "$(jq -c .roles "$T/resp")"
check_eq "an issuance without roles answers without them" null \
    "$(tapi "$T/operator.token" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:03\",\"csr\":$(jq -Rs . "$T/ap3.csr")}" >/dev/null; jq -c .roles "$T/resp")"
sleep 0.3

# the access point asks with its certificate alone
check_eq "AP certificate, no token: POST /v1/authorize -> 200" 200 "$(capi "$T/ap" POST /v1/authorize "$Q")"
check_eq "... and gets the decision" "allow|allowed by rule 1" "$(jq -r '.decision + "|" + .reason' "$T/resp")"
check_eq "AP certificate: POST /v1/authorize/batch -> 200" 200 \
    "$(capi "$T/ap" POST /v1/authorize/batch "{\"questions\":[$Q]}")"
check_eq "AP certificate: GET /v1/policy -> 403" 403 "$(capi "$T/ap" GET /v1/policy)"
check_out "... saying what the certificate may do" 'access-point role may only ask' cat "$T/resp"
check_eq "AP certificate: POST /v1/certificates -> 403" 403 \
    "$(capi "$T/ap" POST /v1/certificates "{\"mac\":\"02:00:00:00:0a:09\",\"csr\":$CSRJ}")"
check_eq "AP certificate: GET /v1/certificates/{serial} -> 403" 403 \
    "$(capi "$T/ap" GET "/v1/certificates/$(serial32 "$(openssl x509 -in "$T/ap.pem" -noout -serial | cut -d= -f2)")")"
check_eq "AP certificate: POST /v1/audit/verify -> 403" 403 "$(capi "$T/ap" POST /v1/audit/verify)"
check_eq "AP certificate: POST /v1/rules -> 403" 403 \
    "$(capi "$T/ap" POST /v1/rules '{"subject":{"group":"x"},"resource":"ap-lobby-3","effect":"allow"}')"
check_eq "AP certificate with an operator token: the token decides (403 on authorize)" 403 \
    "$(tapi "$T/operator.token" POST /v1/authorize "$Q" --cert "$T/ap.pem" --key "$T/ap.key")"
check_eq "AP certificate with a bad token: the token decides (401)" 401 \
    "$(printf 'pvd_nope\n' > "$T/bad.token"; tapi "$T/bad.token" POST /v1/authorize "$Q" --cert "$T/ap.pem" --key "$T/ap.key")"
check_out "the log names the caller ap:<mac>" 'client certificate "ap:02:00:00:00:0a:01" \(role authorizer\) refused' \
    cat "$T/provd.log"
check_eq "rule: a one-time grant for device B" 201 \
    "$(tapi "$SEC" POST /v1/rules '{"subject":{"device":"00:1a:7d:da:74:02"},"resource":"ap-lobby-3","effect":"allow","one_time":true}')"
sleep 0.3
check_eq "the AP uses the one-time grant with its certificate" allow \
    "$(capi "$T/ap" POST /v1/authorize '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"ap-lobby-3"}' >/dev/null; jq -r .decision "$T/resp")"
check_eq "the audit row of the grant's use names ap:<mac>" "ap:02:00:00:00:0a:01" \
    "$(sql "select actor from audit_log where action = 'rule.use' order by seq desc limit 1")"

# other certificates
check_eq "device certificate without optional data: POST /v1/authorize -> 403" 403 \
    "$(capi "$T/b" POST /v1/authorize "$Q")"
check_out "... the log names the caller device:<mac>" 'client certificate "device:00:1a:7d:da:74:02" \(role none\) refused' \
    cat "$T/provd.log"
check_eq "device certificate with owner and groups but no role: POST /v1/authorize -> 403" 403 \
    "$(capi "$T/a" POST /v1/authorize "$Q")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/x.key" \
    -subj "/serialNumber=02:00:00:00:0a:01" -days 2 -out "$T/x.pem" 2>/dev/null
check_eq "a certificate from another CA -> 401" 401 "$(capi "$T/x" POST /v1/authorize "$Q")"
check_out "... not issued by this CA" 'not issued by this CA' cat "$T/resp"
# same key and address as the AP, same issuer name, but signed by another key
openssl req -new -key "$T/ap.key" -subj "/CN=ignored" -out "$T/forge.csr" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/fake-ca.key" \
    -subj "/CN=provd Test Root CA" -days 2 -out "$T/fake-ca.pem" 2>/dev/null
printf 'subjectAltName=URI:urn:dev:mac:02000000000a01\n' > "$T/forge.ext"
openssl x509 -req -in "$T/forge.csr" -CA "$T/fake-ca.pem" -CAkey "$T/fake-ca.key" -days 1 \
    -set_serial "0x$(openssl x509 -in "$T/ap.pem" -noout -serial | cut -d= -f2)" \
    -extfile "$T/forge.ext" -out "$T/forge.pem" 2>/dev/null
cp "$T/ap.key" "$T/forge.key"
check_eq "a look-alike (our CA's name, the AP's serial and key, another signer) -> 401" 401 \
    "$(capi "$T/forge" POST /v1/authorize "$Q")"

# clients without a certificate
check_eq "no certificate, no token -> 401" 401 "$(tapi - POST /v1/authorize "$Q")"
check_eq "no certificate, authorizer token -> 200" 200 "$(tapi "$T/authorizer.token" POST /v1/authorize "$Q")"
check_out "no certificate: health" '"status":"ok"' curl -sS --cacert "$T/ca/root.crt" "$HTTPS/v1/health"
check_out "an AP certificate on a public route is no bother" '"status":"ok"' \
    curl -sS --cacert "$T/ca/root.crt" --cert "$T/ap.pem" --key "$T/ap.key" "$HTTPS/v1/health"

# openssl s_client as an independent client: two requests on one kept-alive
# connection, the AP certificate revoked in between; the second, made after
# the cache time, is refused
BODYLEN=$(printf '%s' "$Q" | wc -c)
req() { printf 'POST /v1/authorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "$BODYLEN" "$Q"; }
sclient() {	# CERTBASE: HTTP/1.1 requests on standard input over one TLS connection
	openssl s_client -quiet -connect "127.0.0.1:$PORT" -CAfile "$T/ca/root.crt" \
	    -cert "$1.pem" -key "$1.key" 2>/dev/null | tr -d '\r' | grep -oE 'HTTP/1\.1 [0-9]{3}.*$' | paste -sd'|'
}
check_eq "openssl s_client with the AP certificate: two answers on one connection" \
    "HTTP/1.1 200 OK|HTTP/1.1 200 OK" "$( (req; sleep 0.3; req; sleep 0.5) | sclient "$T/ap")"
SERIAL=$(serial32 "$(openssl x509 -in "$T/ap.pem" -noout -serial | cut -d= -f2)")
{
	req; sleep 0.5
	# revoked now, through another connection
	tapi "$ADMIN" POST "/v1/certificates/$SERIAL/revoke" '{"reason":"keyCompromise"}' > "$T/revoke.status"
	sleep $((CACHE_S + 1))
	req; sleep 0.5
} | sclient "$T/ap" > "$T/keepalive.out"
check_eq "revoke the AP certificate (while its connection stays open)" 200 "$(cat "$T/revoke.status")"
check_eq "kept-alive connection: allowed before, refused $((CACHE_S + 1)) s after the revocation" \
    "HTTP/1.1 200 OK|HTTP/1.1 401 Unauthorized" "$(cat "$T/keepalive.out")"
check_eq "a new connection with the revoked AP certificate -> 401" 401 "$(capi "$T/ap" POST /v1/authorize "$Q")"
check_out "... the certificate is revoked" 'The certificate is revoked' cat "$T/resp"
check_eq "the authorizer token still works" 200 "$(tapi "$T/authorizer.token" POST /v1/authorize "$Q")"

# a new AP certificate for the same access point works again at once
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ap2.key" 2>/dev/null
openssl req -new -key "$T/ap2.key" -subj "/CN=ignored" -out "$T/ap2.csr" 2>/dev/null
check "a new AP certificate for the same address" \
    pctl --token-file "$ADMIN" issue --mac 02:00:00:00:0a:01 --csr "$T/ap2.csr" --role access-point --out "$T/ap2.pem"
check_eq "the new AP certificate is accepted" 200 "$(capi "$T/ap2" POST /v1/authorize "$Q")"
check_eq "the old one is still refused" 401 "$(capi "$T/ap" POST /v1/authorize "$Q")"
# renewal with the current certificate as the TLS client certificate (EST
# simplereenroll style): device A, which has an owner and a group
A_SERIAL=$(serial32 "$(openssl x509 -in "$T/a.pem" -noout -serial | cut -d= -f2)")
new_csr "$T/a2.csr"
check_eq "POST /v1/renew with device A's certificate and a PEM CSR -> 201" 201 \
    "$(capi "$T/a" POST /v1/renew "{\"csr\":$(jq -Rs . "$T/a2.csr")}")"
check_eq "... it replaced A's certificate" "$A_SERIAL" "$(jq -r .replaced "$T/resp")"
jq -r .certificate "$T/resp" > "$T/a2.pem"
check_eq "... for the CSR's key" "$(openssl pkey -in "$T/a2.csr.key" -pubout)" \
    "$(openssl x509 -in "$T/a2.pem" -noout -pubkey)"
check_out "... keeping the optional-data extension (owner and group)" 'alice' \
    sh -c "openssl x509 -in '$T/a2.pem' -noout -text | grep -A1 '1.3.6.1.4.1.32473.4020.1'"
check "... which GnuTLS reads (certtool -i)" certtool -i --infile "$T/a2.pem"
check_eq "... and the old certificate is superseded" "superseded" \
    "$(sql "select status from certificates where serial = '$A_SERIAL'")"
new_csr "$T/a3.csr"
check_eq "the superseded certificate cannot renew again -> 401" 401 \
    "$(capi "$T/a" POST /v1/renew "{\"csr\":$(jq -Rs . "$T/a3.csr")}")"
cp "$T/a2.csr.key" "$T/a2.key"
check_eq "the new one can" 201 "$(capi "$T/a2" POST /v1/renew "{\"csr\":$(jq -Rs . "$T/a3.csr")}")"
check_eq "a PEM CSR over TLS without a client certificate -> 401" 401 \
    "$(tapi - POST /v1/renew "{\"csr\":$(jq -Rs . "$T/a3.csr")}")"
check_out "... saying how to authenticate" 'TLS client certificate' cat "$T/resp"
t_done
