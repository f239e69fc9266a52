#!/bin/sh
# An external enterprise CA over CMP ([ca] mode = cmp): intake of a
# simulated device, POST /v1/certificates and revocation through the CA;
# provd ca status; against OpenSSL's own mock server ("openssl cmp -port"),
# which answers every request with one fixed certificate: a certificate for
# another key, for another device, with a serial provd cannot record, a
# rejection with its status string, polling, the CA down (retried, then a
# clean failure), a server that never answers (timeout), an answer from
# another transaction, a malformed and an oversized answer, an answer
# signed by a key provd does not trust. Every refusal records nothing.
#
# The mock server binds every interface, so the whole test runs in a
# private network namespace (unshare --net), with a PostgreSQL of its own
# inside it: nothing is reachable from outside.
if [ -z "${PROVD_CMP_NETNS:-}" ]; then
	exec env PROVD_CMP_NETNS=1 PGPORT= PGHOST= unshare --net sh "$0" "$@"
fi
ip link set lo up || { echo "not ok - a private network namespace (unshare --net)"; exit 1; }
unset PGPORT PGHOST
PROVD_LOG_LEVEL=info
. "$(dirname "$0")/lib.sh"

CP=7100			# the CA's CMP port, inside this namespace only
E=$T/ent		# the enterprise CA's files
mkdir -p "$E"
pids=""
mock_pid=""
trap 'for p in $pids $mock_pid; do kill "$p" 2>/dev/null; done; t_cleanup' EXIT

# wait_port PORT: until something listens on 127.0.0.1:PORT (5 s)
wait_port() {
	_i=0
	until python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" \
	    2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 50 ] || return 1; sleep 0.1
	done
}
# mock ARGS: OpenSSL's mock CMP server on $CP (PBM secret, signing key srv)
mock() {
	mock_stop
	openssl cmp -port $CP -srv_ref 1234 -srv_secret pass:s3cret \
	    -srv_cert "$E/srv.crt" -srv_key "$E/srv.key" -rsp_capubs "$E/ca.crt" "$@" \
	    >"$T/mock.log" 2>&1 &
	mock_pid=$!
	wait_port $CP
}
mock_stop() {
	[ -n "$mock_pid" ] || return 0
	kill "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null
	mock_pid=""
	_i=0
	while ss -ltn "sport = :$CP" | grep -q LISTEN && [ $_i -lt 50 ]; do _i=$((_i + 1)); sleep 0.1; done
}
# answer_with FILE: an HTTP server on $CP that answers every POST with FILE
answer_with() {
	mock_stop
	/usr/bin/python3 - "$CP" "$1" >"$T/py.log" 2>&1 <<'PY' &
import http.server, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
body = open(path, "rb").read() if path != "-" else None
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if body is None:
            time.sleep(60)      # never answer: hold the connection
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/pkixcmp")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
	mock_pid=$!
	wait_port $CP
}
# cert NAME MAC [openssl x509 args]: a key, a CSR (subject serialNumber =
# MAC) and a certificate for it from the enterprise CA (SAN urn:dev:mac:,
# a 16-byte serial), in $E/NAME.*
cert() {
	_n=$1
	_hex=$(echo "$2" | tr -d ':')
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/serialNumber=$2/CN=$_n" \
	    -keyout "$E/$_n.key" -out "$E/$_n.csr" 2>/dev/null || return 1
	printf 'subjectAltName=URI:urn:dev:mac:%s\n' "$_hex" > "$E/$_n.ext"
	shift 2
	openssl x509 -req -in "$E/$_n.csr" -CA "$E/ca.crt" -CAkey "$E/ca.key" \
	    -set_serial "0x7$(openssl rand -hex 16 | cut -c2-)" -days 30 \
	    -extfile "$E/$_n.ext" "$@" -out "$E/$_n.crt" 2>/dev/null
}
# issue NAME MAC: POST /v1/certificates with NAME's CSR; status in $code
issue() {
	printf '{"mac":"%s","csr":"%s"}' "$2" "$(awk '{printf "%s\\n", $0}' "$E/$1.csr")" > "$T/body.json"
	code=$(api POST /v1/certificates "$T/body.json")
}
ndev() { sql "select count(*) from devices"; }

# --- the enterprise CA, its CMP signing key, provd's RA certificate ----------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Example/CN=Enterprise CA" \
    -keyout "$E/ca.key" -out "$E/ca.crt" -days 60 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
for n in srv other; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=CMP $n" \
	    -keyout "$E/$n.key" -out "$E/$n.crt" -days 30 2>/dev/null
done
printf 's3cret\n' > "$E/secret"
chmod 600 "$E/secret"
AIR=$T/air
mkdir -p "$AIR"
cmp_conf() {	# cmp_conf [extra [ca] lines]
	write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 8000
[ca]
mode = cmp
cmp_url = http://127.0.0.1:$CP/pkix/
cmp_timeout_s = 2
cmp_retries = 1
$*"
}

# --- configuration -------------------------------------------------------------
cmp_conf ""
check_fails_out "mode cmp without credentials: refused" "needs one of ca.cmp_secret_file" provd -n
cmp_conf "cmp_secret_file = $E/secret"
check_fails_out "a secret without a reference: refused" "cmp_secret_file needs ca.cmp_ref" provd -n
cmp_conf "cmp_cert = $E/srv.crt
cmp_key = $E/srv.key"
check_fails_out "a client certificate without trusted signers: refused" "needs ca.cmp_trusted" provd -n
write_conf "[ca]
mode = external"
check_fails_out "an unknown mode: refused" 'is not builtin or cmp' provd -n
cmp_conf "cmp_ref = 1234
cmp_secret_file = $E/secret"
check_out "mode cmp with a reference and a secret: OK" '^configuration OK$' provd -n

check_fails_out "ca init --chain with --keystore: refused" "goes alone" \
    provd ca init --chain "$E/ca.crt" --keystore tpm2
check_out "ca init --chain: the enterprise CA's chain, no key" "external CA signs" \
    provd ca init --chain "$E/ca.crt"
check_eq "chain.pem is the enterprise CA, no ca.key" "$(cat "$E/ca.crt") no" \
    "$(cat "$T/ca/chain.pem") $([ -e "$T/ca/ca.key" ] && echo yes || echo no)"

# --- a CA that signs what it is asked (OpenSSL's CMP server API) -----------------
"$BIN/../tests/tools/cmpca" $CP "$E/ca.crt" "$E/ca.key" 1234 s3cret >"$T/cmpca.out" 2>&1 &
cmpca_pid=$!
pids="$pids $cmpca_pid"
check "the test CA (tests/tools/cmpca) listens" wait_port $CP
check "start provd with mode cmp" start_provd || { t_done; exit 1; }
check_out "the log names the external CA" "external CA at http://127.0.0.1:$CP/pkix/" cat "$T/provd.log"
check_out "provd ca status: external, answers" "the CA answers" provd ca status
check_out "... names the CMP server" "CA: external, CMP at http://127.0.0.1:$CP/pkix/" provd ca status
check_eq "GET /v1/health: the signer is external" external "$(curl -s "$URL/v1/health" | jq -r .signer)"

# intake of a simulated device, the certificate from the enterprise CA
MAC1=02:00:5e:20:00:01
"$BIN/devagent" --state "$T/dev1" init --addr $MAC1 --pin 24681357 >/dev/null
"$BIN/devagent" --state "$T/dev1" serve --air "$AIR" >"$T/dev1.out" 2>&1 &
pids="$pids $!"
i=0; until grep -q 'in range' "$T/dev1.out" 2>/dev/null || [ $i -gt 100 ]; do i=$((i + 1)); sleep 0.05; done
printf '24681357\n' > "$T/pin"
check_out "intake through the external CA" "serial" \
    provctl enroll $MAC1 --label-mac $MAC1 --pin-file "$T/pin" --owner alice
openssl x509 -inform DER -in "$T/dev1/keystore/id/cert.der" -out "$T/dev1.pem" 2>/dev/null
check_out "the device holds a certificate of the enterprise CA" "issuer=O = Example, CN = Enterprise CA" \
    openssl x509 -in "$T/dev1.pem" -noout -issuer
check_out "openssl verify: it chains to the enterprise CA" ": OK$" \
    openssl verify -CAfile "$E/ca.crt" "$T/dev1.pem"
check_eq "the device received the enterprise chain" "$(cat "$E/ca.crt")" "$(cat "$T/dev1/keystore/id/chain.pem")"
check_eq "recorded: active, with its owner and the CA's serial" \
    "active alice $(openssl x509 -in "$T/dev1.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f)" \
    "$(sql "select c.status || ' ' || u.name || ' ' || ltrim(c.serial, '0') from certificates c join devices d on d.id = c.device_id join users u on u.id = d.owner_id where d.mac = '$MAC1'")"

# renewal: the device renews with its current certificate, the CA issues
old_serial=$(sql "select serial from certificates c join devices d on d.id = c.device_id where d.mac = '$MAC1' and c.status = 'active'")
check_out "devagent renew through the external CA" "renewed|serial" \
    "$BIN/devagent" --state "$T/dev1" renew --url "$URL"
check_eq "the old certificate superseded, a new one active" "superseded 1" \
    "$(sql "select status from certificates where serial = '$old_serial'") $(sql "select count(*) from certificates c join devices d on d.id = c.device_id where d.mac = '$MAC1' and c.status = 'active' and c.serial <> '$old_serial'")"
openssl x509 -inform DER -in "$T/dev1/keystore/id/cert.der" -out "$T/dev1b.pem" 2>/dev/null
check_out "... issued by the enterprise CA" ": OK$" openssl verify -CAfile "$E/ca.crt" "$T/dev1b.pem"

# POST /v1/certificates and a revocation through the CA
cert d2 02:00:5e:20:00:02
issue d2 02:00:5e:20:00:02
check_eq "POST /v1/certificates through the CA -> 201" 201 "$code"
jq -r .certificate "$T/resp" > "$T/d2.pem"
check_out "... it verifies" ": OK$" openssl verify -CAfile "$E/ca.crt" "$T/d2.pem"
check "revoke: the CA confirms (rr), then provd records" env PROVD_TOKEN_FILE="$T/security.token" \
    "$BIN/provctl" --url "$URL" revoke 02:00:5e:20:00:02 --reason keyCompromise
check_eq "... revoked" revoked "$(sql "select status from devices where mac = '02:00:5e:20:00:02'")"
check_eq "GET /v1/crl: 404, the external CA's" "404" "$(curl -s -o "$T/resp" -w '%{http_code}' "$URL/v1/crl")"
check_out "... says why" "external CA" jq -r .error.message "$T/resp"
check_eq "POST /ocsp: 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/ocsp-request' --data-binary x "$URL/ocsp")"
kill "$cmpca_pid"; wait "$cmpca_pid" 2>/dev/null
pids=$(echo "$pids" | sed "s/\b$cmpca_pid\b//")

# --- OpenSSL's mock server ---------------------------------------------------------
cert d3 02:00:5e:20:00:03
mock -rsp_cert "$E/d3.crt"
issue d3 02:00:5e:20:00:03
check_eq "the mock's certificate for the request -> 201" 201 "$code"
check_eq "... recorded" 1 "$(sql "select count(*) from devices where mac = '02:00:5e:20:00:03'")"

cert d4 02:00:5e:20:00:04
n0=$(ndev)
issue d4 02:00:5e:20:00:04		# the mock still holds d3's certificate
check_eq "the mock refuses a request for another key itself -> 503" 503 "$code"
check_out "... with its status" "CA answered PKIStatus: rejection" jq -r .error.message "$T/resp"
check_eq "... nothing recorded" "$n0" "$(ndev)"
mock_stop
"$BIN/../tests/tools/cmpca" $CP "$E/ca.crt" "$E/ca.key" 1234 s3cret wrong-key >"$T/cmpca2.out" 2>&1 &
mock_pid=$!
check "cmpca wrong-key listens" wait_port $CP
issue d4 02:00:5e:20:00:04
check_eq "a CA that returns a certificate for another key -> 503" 503 "$code"
check_out "... refused in the certConf (OpenSSL's own check comes first), said so" \
    "rejecting newly enrolled cert.*public key" jq -r .error.message "$T/resp"
check_eq "... nothing recorded" "$n0" "$(ndev)"

cp "$E/d4.csr" "$E/d5.csr"; cp "$E/d4.key" "$E/d5.key"
printf 'subjectAltName=URI:urn:dev:mac:02005e2000ff\n' > "$E/d5.ext"
openssl x509 -req -in "$E/d5.csr" -CA "$E/ca.crt" -CAkey "$E/ca.key" -set_serial 0x7a010203040506070809101112131415 \
    -days 30 -extfile "$E/d5.ext" -out "$E/d5.crt" 2>/dev/null
mock -rsp_cert "$E/d5.crt"
issue d4 02:00:5e:20:00:04
check_out "a certificate naming another device -> refused" "does not name the device 02:00:5e:20:00:04" \
    jq -r .error.message "$T/resp"
printf 'subjectAltName=URI:urn:dev:mac:02005e200004\n' > "$E/d6.ext"
openssl x509 -req -in "$E/d4.csr" -CA "$E/ca.crt" -CAkey "$E/ca.key" \
    -set_serial 0x7a0102030405060708091011121314151617181920 -days 30 -extfile "$E/d6.ext" \
    -out "$E/d6.crt" 2>/dev/null
mock -rsp_cert "$E/d6.crt"
issue d4 02:00:5e:20:00:04
check_out "a 20-byte serial -> refused with what to change" "16-byte serial numbers" jq -r .error.message "$T/resp"
check_eq "... nothing recorded" "$n0" "$(ndev)"

cert d7 02:00:5e:20:00:07
mock -rsp_cert "$E/d7.crt" -pkistatus 2 -failure 2 -statusstring "refused by the enterprise policy"
issue d7 02:00:5e:20:00:07
check_eq "a rejection -> 503" 503 "$code"
check_out "... with the CA's status string for the operator" "refused by the enterprise policy" \
    jq -r .error.message "$T/resp"
check_eq "... asked once, not retried" 0 "$(grep -c 'trying again' "$T/provd.log")"

mock -rsp_cert "$E/d7.crt" -poll_count 2 -check_after 1
t0=$(date +%s)
issue d7 02:00:5e:20:00:07
check_eq "the CA asks to wait (polling): enrolled once ready" 201 "$code"
check_eq "... after waiting" yes "$([ $(( $(date +%s) - t0 )) -ge 1 ] && echo yes)"

# --- the CA down, hanging, answering nonsense -----------------------------------------
mock_stop
cert d8 02:00:5e:20:00:08
n0=$(ndev)
issue d8 02:00:5e:20:00:08
check_eq "the CA down -> 503" 503 "$code"
check_out "... not reached, said plainly" "CMP enrollment failed" jq -r .error.message "$T/resp"
check_out "... retried with a pause" "trying again in 500 ms" cat "$T/provd.log"
check_eq "... nothing recorded" "$n0" "$(ndev)"
check_fails_out "provd ca status: does not answer, exit 1" "does not answer" provd ca status

answer_with -
# three issuances waiting for the silent CA (provd has 2 HTTP threads here):
# the waiting happens in threads of its own, and provd keeps answering
waiting=""
for k in 1 2 3; do
	curl -s -o /dev/null -H "Authorization: Bearer $(cat "$T/operator.token")" \
	    -H 'Content-Type: application/json' --data-binary "@$T/body.json" "$URL/v1/certificates" &
	waiting="$waiting $!"
done
sleep 0.5
t0=$(date +%s%N)
check_out "while the CA is silent, GET /v1/health still answers" '"status"' curl -s -m 2 "$URL/v1/health"
check_eq "... at once (under a second)" yes "$([ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ] && echo yes)"
for p in $waiting; do wait "$p"; done
t0=$(date +%s)
issue d8 02:00:5e:20:00:08
t1=$(date +%s)
check_eq "a CA that never answers -> 503" 503 "$code"
check_eq "... within the timeouts (2 tries of 2 s and a pause)" yes "$([ $((t1 - t0)) -le 8 ] && echo yes)"
check_out "... a timeout" "timeout" jq -r .error.message "$T/resp"

# an answer of another transaction: recorded from a real exchange with the mock
mock -rsp_cert "$E/d3.crt"
openssl cmp -server 127.0.0.1:$CP -path pkix/ -ref 1234 -secret pass:s3cret -cmd p10cr \
    -csr "$E/d3.csr" -certout "$T/ignored.pem" -rspout "$T/rsp1.der,$T/rsp2.der" -unprotected_errors \
    >"$T/client.log" 2>&1
answer_with "$T/rsp1.der"
issue d8 02:00:5e:20:00:08
check_eq "an answer of another transaction -> refused" 503 "$code"
check_out "... named" "transaction|nonce|recipNonce" jq -r .error.message "$T/resp"
printf 'not a CMP message' > "$T/junk"
answer_with "$T/junk"
issue d8 02:00:5e:20:00:08
check_eq "a malformed answer -> refused" 503 "$code"
head -c 3000000 /dev/zero > "$T/big"
answer_with "$T/big"
issue d8 02:00:5e:20:00:08
check_eq "an oversized answer -> refused" 503 "$code"
check_eq "... nothing recorded by any of them" "$n0" "$(ndev)"
check_out "provd still answers" '"status"' curl -s "$URL/v1/health"
mock_stop
stop_provd

# --- signed answers: trusted, then from a key provd does not trust ---------------------
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=provd RA" \
    -keyout "$E/ra.key" -out "$E/ra.csr" 2>/dev/null
openssl x509 -req -in "$E/ra.csr" -CA "$E/ca.crt" -CAkey "$E/ca.key" -set_serial 77 -days 30 \
    -out "$E/ra.crt" 2>/dev/null
cmp_conf "cmp_cert = $E/ra.crt
cmp_key = $E/ra.key
cmp_trusted = $E/srv.crt"
check "start provd with a client certificate" start_provd
cert d9 02:00:5e:20:00:09
mock_stop
openssl cmp -port $CP -srv_cert "$E/srv.crt" -srv_key "$E/srv.key" -srv_trusted "$E/ca.crt" \
    -rsp_cert "$E/d9.crt" >"$T/mock.log" 2>&1 &
mock_pid=$!
wait_port $CP
issue d9 02:00:5e:20:00:09
check_eq "signed both ways, the CA's signer trusted -> 201" 201 "$code"
mock_stop
cert d10 02:00:5e:20:00:0a
openssl cmp -port $CP -srv_cert "$E/other.crt" -srv_key "$E/other.key" -srv_trusted "$E/ca.crt" \
    -rsp_cert "$E/d10.crt" >"$T/mock.log" 2>&1 &
mock_pid=$!
wait_port $CP
n0=$(ndev)
issue d10 02:00:5e:20:00:0a
check_eq "an answer signed by a key provd does not trust -> refused" 503 "$code"
check_eq "... nothing recorded" "$n0" "$(ndev)"
mock_stop

t_done
