#!/bin/sh
# HTTPS from provd itself (libmicrohttpd over GnuTLS): a server certificate
# issued under the provd CA, checked by curl and by openssl s_client; plain
# HTTP to the TLS port gets nothing.
. "$(dirname "$0")/lib.sh"

write_conf
"$BIN/provd" -c "$T/provd.conf" ca init --cn "provd Test Root CA" >/dev/null
# a server certificate for 127.0.0.1, signed with the test CA's key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/server.key" 2>/dev/null
openssl req -new -key "$T/server.key" -subj "/CN=provd.test" -out "$T/server.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" -CAcreateserial \
    -days 1 -extfile "$T/ext" -out "$T/server.crt" 2>/dev/null
write_conf "[server]" "tls_cert = $T/server.crt" "tls_key = $T/server.key"
# write_conf appends to [log]; move the [server] keys into place
sed -i '/^\[log\]/,$ { /^\[server\]/d; /^tls_/d }' "$T/provd.conf"
sed -i "s|^threads = 2|threads = 2\ntls_cert = $T/server.crt\ntls_key = $T/server.key|" "$T/provd.conf"
check_out "TLS configuration OK" '^configuration OK$' provd -n
check "start provd with TLS" start_provd || { t_done; exit 1; }
HTTPS=$(echo "$URL" | sed 's|^http:|https:|')
check_out "curl over HTTPS, CA from provd" '"status":"ok"' curl -sS --cacert "$T/ca/root.crt" "$HTTPS/v1/health"
check_fails "curl without the CA refuses the server" curl -sS "$HTTPS/v1/health"
check_out "openssl s_client verifies the chain" 'Verify return code: 0' \
    sh -c "openssl s_client -connect 127.0.0.1:${URL##*:} -CAfile '$T/ca/root.crt' -verify_return_error </dev/null 2>&1"
new_csr "$T/d.csr"
check "provctl issue over HTTPS" "$BIN/provctl" --url "$HTTPS" --cacert "$T/ca/root.crt" issue \
    --mac 02:00:00:00:00:01 --csr "$T/d.csr" --out "$T/d.pem"
check "issued certificate verifies" openssl verify -CAfile "$T/ca/root.crt" "$T/d.pem"
check_fails "plain HTTP to the TLS port gets no answer" curl -sS -m 5 "$URL/v1/health"
t_done
