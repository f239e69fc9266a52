#!/bin/sh
# OCSP responder end to end: provd with a real PostgreSQL answering the
# openssl ocsp client (POST, with and without a nonce) and curl (GET, RFC
# 6960 appendix A): good, revoked, superseded and unknown certificates,
# malformed and oversized requests, and the responder certificate made by
# "provd ca init", missing, renewed and taken up while provd runs.
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
CA=$T/ca
SEC="env PROVD_TOKEN_FILE=$T/security.token $BIN/provctl --url"

# --- the responder certificate made by provd ca init ----------------------
check "ca init made ocsp.key and ocsp.crt" test -f "$CA/ocsp.key" -a -f "$CA/ocsp.crt"
check_eq "ocsp.key has mode 0600" 600 "$(stat -c %a "$CA/ocsp.key")"
openssl x509 -in "$CA/ocsp.crt" -noout -text > "$T/ocsp.txt" 2>&1
check "extendedKeyUsage OCSP Signing" sh -c "grep -A1 'Extended Key Usage' '$T/ocsp.txt' | grep -q 'OCSP Signing'"
check "keyUsage digitalSignature (critical)" sh -c "grep -A1 'Key Usage: critical' '$T/ocsp.txt' | grep -q 'Digital Signature'"
check "id-pkix-ocsp-nocheck" grep -q 'OCSP No Check' "$T/ocsp.txt"
check "SKI and AKI" sh -c "grep -q 'Subject Key Identifier' '$T/ocsp.txt' && grep -q 'Authority Key Identifier' '$T/ocsp.txt'"
check "P-256 key" grep -q 'NIST CURVE: P-256' "$T/ocsp.txt"
check "issued by the CA, fit for OCSP signing" \
    openssl verify -purpose ocsphelper -CAfile "$CA/root.crt" "$CA/ocsp.crt"
na=$(date -d "$(openssl x509 -in "$CA/ocsp.crt" -noout -enddate | sed 's/notAfter=//')" +%s)
left=$(( (na - $(date +%s)) / 3600 ))
check "valid for ca.ocsp_cert_days (30 days: ${left} h left)" test "$left" -ge 719 -a "$left" -le 720

# --- good, with and without a nonce ----------------------------------------
new_csr "$T/d1.csr"
check "issue a certificate" provctl issue --mac 00:1a:7d:da:72:01 --csr "$T/d1.csr" --out "$T/d1.pem"
# ocsp CERT [openssl ocsp options]: asks provd about CERT, verifying the
# answer; the output is also kept in $T/o.out for the checks that follow
ocsp() {
	c=$1; shift
	openssl ocsp -issuer "$CA/ca.crt" -cert "$c" -url "$URL/ocsp" -CAfile "$CA/root.crt" \
	    -resp_text "$@" >"$T/o.out" 2>&1
	rc=$?
	cat "$T/o.out"
	return $rc
}
# kept CMD...: runs CMD, keeping its output in $T/o.out; always succeeds
# (openssl ocsp exits 1 on an OCSP error status, which some checks expect)
kept() { "$@" >"$T/o.out" 2>&1; cat "$T/o.out"; return 0; }
check_out "good (nonce)" "d1.pem: good" ocsp "$T/d1.pem"
check "the response verifies against the root" grep -q '^Response verify OK' "$T/o.out"
check_fails "the nonce is echoed" grep -q 'WARNING: no nonce in response' "$T/o.out"
check "responder id by key, nextUpdate" sh -c "grep -q 'Responder Id: [0-9A-F]\{40\}' '$T/o.out' && grep -q 'Next Update:' '$T/o.out'"
check_out "good (no nonce)" "d1.pem: good" ocsp "$T/d1.pem" -no_nonce
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"
check_out "good again (no nonce, from the cache)" "d1.pem: good" ocsp "$T/d1.pem" -no_nonce
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"

# --- HTTP: content type, caching headers, GET ------------------------------
openssl ocsp -issuer "$CA/ca.crt" -cert "$T/d1.pem" -no_nonce -reqout "$T/req.der" >/dev/null 2>&1
# post FILE [curl options]: HTTP status; body in $T/resp.der, headers in $T/hdr
post() {
	f=$1; shift
	curl -s -D "$T/hdr" -o "$T/resp.der" -w '%{http_code}' -H 'Content-Type: application/ocsp-request' \
	    --data-binary "@$f" "$@" "$URL/ocsp"
}
check_eq "POST -> 200" 200 "$(post "$T/req.der")"
check "Content-Type: application/ocsp-response" grep -qi '^Content-Type: application/ocsp-response' "$T/hdr"
maxage=$(sed -n 's/^Cache-Control: max-age=\([0-9]*\),.*/\1/ip' "$T/hdr" | tr -d '\r')
check "Cache-Control: max-age up to ca.ocsp_max_age_s (${maxage:-none})" test "${maxage:-0}" -gt 280 -a "${maxage:-0}" -le 300
check "Cache-Control: public" grep -qi '^Cache-Control: .*public' "$T/hdr"
b64=$(openssl base64 -A -in "$T/req.der")
enc=$(printf %s "$b64" | sed 's/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
st=$(curl -s -D "$T/hdr" -o "$T/get.der" -w '%{http_code}' "$URL/ocsp/$enc")
check_eq "GET /ocsp/{url-encoded base64} -> 200" 200 "$st"
check "  application/ocsp-response" grep -qi '^Content-Type: application/ocsp-response' "$T/hdr"
check_out "  says good" "d1.pem: good" kept openssl ocsp -respin "$T/get.der" -issuer "$CA/ca.crt" \
    -cert "$T/d1.pem" -CAfile "$CA/root.crt" -resp_text
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"
st=$(curl -s -o "$T/get2.der" -w '%{http_code}' --path-as-is "$URL/ocsp/$b64")
check_eq "GET with the base64 not URL-encoded -> 200" 200 "$st"
check_out "  says good" "d1.pem: good" openssl ocsp -respin "$T/get2.der" -issuer "$CA/ca.crt" \
    -cert "$T/d1.pem" -CAfile "$CA/root.crt"

# --- revoked ------------------------------------------------------------------
check "revoke it (keyCompromise)" $SEC "$URL" revoke 00:1a:7d:da:72:01 --reason keyCompromise
check_out "revoked at once, without a nonce (the cached good is dropped)" "d1.pem: revoked" \
    ocsp "$T/d1.pem" -no_nonce
check_out "revoked (nonce)" "d1.pem: revoked" ocsp "$T/d1.pem"
check "  with reason keyCompromise" grep -q 'Reason: keyCompromise' "$T/o.out"
check "  and a revocation time" grep -q 'Revocation Time:' "$T/o.out"
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"
sleep 6
check_out "revoked without a nonce at the latest when the cache lifetime ends" \
    "d1.pem: revoked" ocsp "$T/d1.pem" -no_nonce

# --- superseded ---------------------------------------------------------------
new_csr "$T/d2.csr"
new_csr "$T/d3.csr"
check "issue a second certificate" provctl issue --mac 00:1a:7d:da:72:02 --csr "$T/d2.csr" --out "$T/d2.pem"
check_out "good before it is replaced" "d2.pem: good" ocsp "$T/d2.pem" -no_nonce
check "replace it" provctl issue --mac 00:1a:7d:da:72:02 --csr "$T/d3.csr" --replace --out "$T/d3.pem"
check_out "superseded -> revoked" "d2.pem: revoked" ocsp "$T/d2.pem"
check "  with reason superseded" grep -q 'Reason: superseded' "$T/o.out"
check_out "superseded -> revoked at once, without a nonce (the cached good is dropped)" \
    "d2.pem: revoked" ocsp "$T/d2.pem" -no_nonce
check_out "its replacement is good" "d3.pem: good" ocsp "$T/d3.pem"

# --- unknown ------------------------------------------------------------------
check_out "a serial the CA never issued -> unknown" ": unknown" kept openssl ocsp -issuer "$CA/ca.crt" \
    -serial 0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a -url "$URL/ocsp" -CAfile "$CA/root.crt"
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
    -subj "/CN=Other CA" -days 30 -addext basicConstraints=critical,CA:TRUE -out "$T/other.crt" 2>/dev/null
new_csr "$T/o1.csr"
openssl x509 -req -in "$T/o1.csr" -CA "$T/other.crt" -CAkey "$T/other.key" -CAcreateserial \
    -days 30 -out "$T/o1.pem" 2>/dev/null
# our responder is not delegated by that CA: a client cannot take the answer
# as authoritative, only check that our responder signed it
check_out "a certificate of another CA -> unknown" "o1.pem: unknown" kept openssl ocsp \
    -issuer "$T/other.crt" -cert "$T/o1.pem" -url "$URL/ocsp" -VAfile "$CA/ocsp.crt"
check "  signed by our responder" grep -q '^Response verify OK' "$T/o.out"
set -- 
for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16; do set -- "$@" -serial "0x$i"; done
check_out "16 certificates in one request" "Response verify OK" kept openssl ocsp -issuer "$CA/ca.crt" \
    "$@" -url "$URL/ocsp" -CAfile "$CA/root.crt"
check_eq "  16 answers" 16 "$(grep -c ': unknown' "$T/o.out")"
set -- "$@" -serial 0x17
check_out "17 certificates in one request -> malformedRequest" "Responder Error: malformedrequest" kept openssl ocsp \
    -issuer "$CA/ca.crt" "$@" -url "$URL/ocsp" -CAfile "$CA/root.crt"

# --- malformed and oversized ----------------------------------------------------
# status_of FILE: the responseStatus of a DER OCSPResponse, as openssl names it
status_of() { openssl ocsp -respin "$1" -resp_text -noverify 2>&1 | sed -n 's/.*\(OCSP Response Status\|Responder Error\): \([a-z]*\).*/\2/p' | head -n 1; }
printf 'this is not DER' > "$T/garbage"
check_eq "a garbage POST body -> 200" 200 "$(post "$T/garbage")"
check_eq "  malformedRequest" malformedrequest "$(status_of "$T/resp.der")"
check_eq "  5 bytes, unsigned" "3003 0a01 01" "$(od -An -tx1 "$T/resp.der" | tr -d ' \n' | sed 's/\(....\)\(....\)\(..\)/\1 \2 \3/')"
: > "$T/empty"
check_eq "an empty POST body -> 200" 200 "$(post "$T/empty")"
check_eq "  malformedRequest" malformedrequest "$(status_of "$T/resp.der")"
{ cat "$T/req.der"; printf '\000'; } > "$T/trailing"
post "$T/trailing" >/dev/null
check_eq "a request with a byte after it -> malformedRequest" malformedrequest "$(status_of "$T/resp.der")"
head -c 9000 /dev/urandom > "$T/9k"
check_eq "a 9000-byte body -> 200" 200 "$(post "$T/9k")"
check_eq "  malformedRequest (more than 8 KiB)" malformedrequest "$(status_of "$T/resp.der")"
head -c 1048576 /dev/zero > "$T/1m"
check_eq "a 1 MB body -> 413" 413 "$(post "$T/1m")"
st=$(curl -s -o "$T/resp.der" -w '%{http_code}' -H 'Content-Type: text/plain' --data-binary "@$T/req.der" "$URL/ocsp")
check_eq "POST as text/plain -> 415" 415 "$st"
st=$(curl -s -o "$T/resp.der" -w '%{http_code}' "$URL/ocsp/not%20base64!")
check_eq "GET with bad base64 -> 200" 200 "$st"
check_eq "  malformedRequest" malformedrequest "$(status_of "$T/resp.der")"
check_eq "the error is not cacheable" "no-store" \
    "$(curl -s -D - -o /dev/null "$URL/ocsp/AAAA" | sed -n 's/^Cache-Control: //ip' | tr -d '\r')"

# --- without a responder certificate, then renewed while provd runs -----------
stop_provd
mv "$CA/ocsp.crt" "$T/ocsp.crt.old"
check "start provd without ocsp.crt" provd_start "$T/provd.conf" "$T"
check "it warns: run provd ca ocsp-cert" grep -q 'run "provd ca ocsp-cert"' "$T/provd.log"
check_out "OCSP requests get tryLater" "Responder Error: trylater" kept openssl ocsp \
    -issuer "$CA/ca.crt" -cert "$T/d3.pem" -url "$URL/ocsp" -CAfile "$CA/root.crt"
check_out "provd ca ocsp-cert --days 2" "ocsp.crt valid until" provd ca ocsp-cert --days 2
n=0
until ocsp "$T/d3.pem" -no_nonce 2>&1 | grep -q 'd3.pem: good' || [ $n -ge 30 ]; do
	sleep 0.5
	n=$((n + 1))
done
check_out "the running provd takes the new certificate up" "d3.pem: good" ocsp "$T/d3.pem" -no_nonce
check "  and it verifies" grep -q '^Response verify OK' "$T/o.out"
na=$(date -d "$(openssl x509 -in "$CA/ocsp.crt" -noout -enddate | sed 's/notAfter=//')" +%s)
left=$(( (na - $(date +%s)) / 3600 ))
check "--days 2 (${left} h left)" test "$left" -ge 47 -a "$left" -le 48
check_fails "provd ca ocsp-cert --days 0 is refused" provd ca ocsp-cert --days 0
t_done
