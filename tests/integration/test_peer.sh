#!/bin/sh
# Device-to-device mutual authentication end to end (DESIGN.md flow 3):
# devices enrolled through intake on the sim air by a real provd, then
# devagent connect between them — file and tpm2 (swtpm) keystores, both
# roles; the link key and its changes; openssl s_client as an independent
# TLS client through a relay that adds the sim air's header; the CRL the
# devices fetch checked with openssl. Faults, each refused: a stolen
# certificate without its key, a spoofed link-layer address, another CA's
# certificate, an expired one, a revoked one (fresh CRL, and a stale CRL
# with and without the grace knob), a peer that stops mid-handshake (either
# side), link frames altered or replayed after the handshake, an intake
# attempt at a provisioned device.
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
DA=$BIN/devagent
BADPEER=$(dirname "$BIN")/tests/tools/badpeer
printf '24681357\n' > "$T/pin"

A=02:00:00:00:20:0a; B=02:00:00:00:20:0b; C=02:00:00:00:20:0c; D=02:00:00:00:20:0d
E=02:00:00:00:20:0e; F=02:00:00:00:20:0f; G=02:00:00:00:20:10; H=02:00:00:00:20:11
K=02:00:00:00:20:12; X=02:00:00:00:20:f1; Y=02:00:00:00:20:f2

dev_pids="" swtpm_pid=""
cleanup_devices() {
	for p in $dev_pids $swtpm_pid; do kill "$p" 2>/dev/null; done
	for p in $dev_pids $swtpm_pid; do wait "$p" 2>/dev/null; done
	dev_pids="" swtpm_pid=""
}
trap 'cleanup_devices; t_cleanup' EXIT

# wait_for FILE PATTERN: until FILE matches (5 s at most)
wait_for() {
	_i=0
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 100 ] || return 1; sleep 0.05
	done
}
# enroll NAME ADDR [init args]: $T/NAME made and enrolled over the air
enroll() {
	_d=$T/$1 _a=$2; shift 2
	"$DA" --state "$_d" init --addr "$_a" --pin-file "$T/pin" --name "$(basename "$_d")" "$@" \
	    >/dev/null || return 1
	"$DA" --state "$_d" serve --air "$AIR" --once >"$_d.intake" 2>&1 &
	_p=$!
	wait_for "$_d.intake" 'in range' || return 1
	provctl enroll "$_a" --label-mac "$_a" --pin-file "$T/pin" >/dev/null || return 1
	wait $_p
}
# serve NAME [args]: the device on the air until stop_serve NAME; its
# output in $T/NAME.log
serve() {
	_n=$1; shift
	: > "$T/$_n.log"
	"$DA" --state "$T/$_n" serve --air "$AIR" "$@" >>"$T/$_n.log" 2>&1 &
	eval "serve_$_n=\$!"
	dev_pids="$dev_pids $!"
	wait_for "$T/$_n.log" 'in range'
}
stop_serve() {
	eval "_p=\${serve_$1:-}"
	[ -n "$_p" ] || return 0
	kill "$_p" 2>/dev/null
	wait "$_p" 2>/dev/null
	eval "serve_$1="
}
# connect NAME ADDR [args]: devagent connect from $T/NAME
connect() { _n=$1 _a=$2; shift 2; "$DA" --state "$T/$_n" connect "$_a" --air "$AIR" "$@"; }
# log_has NAME PATTERN: the serving device NAME said it (waits a little)
log_has() { wait_for "$T/$1.log" "$2"; }
cert_pem() { openssl x509 -inform DER -in "$T/$1/keystore/id/cert.der" -out "$T/$1.pem"; }
serial_of() { serial32 "$(openssl x509 -in "$T/$1.pem" -noout -serial | sed 's/serial=//')"; }

# --- devices through intake -----------------------------------------------
check_fails_out "devagent connect before intake: the device needs intake first" 'intake first' \
    sh -c "'$DA' --state '$T/N' init --addr 02:00:00:00:20:99 --pin 24681357 >/dev/null &&
    '$DA' --state '$T/N' connect $B --air '$AIR'"
for d in "A $A" "B $B" "D $D" "H $H" "G $G"; do
	set -- $d
	check "device $1 enrolled through intake (file keystore)" enroll "$1" "$2"
done
for d in A B D H G; do cert_pem $d; done
check "the devices' certificates verify against the CA (openssl)" \
    openssl verify -CAfile "$CA/root.crt" "$T/A.pem" "$T/B.pem" "$T/D.pem" "$T/H.pem" "$T/G.pem"
check_out "B's certificate names B (SAN urn:dev:mac)" 'URI:urn:dev:mac:02000000200b' \
    openssl x509 -in "$T/B.pem" -noout -ext subjectAltName

# --- mutual authentication, file keystores ---------------------------------
check "B serves" serve B --provd "$URL" --crl-refresh 1 --auth-timeout 3
check_out "A connects to B: authenticated, link encrypted" \
    "devagent $A: authenticated $B \\(certificate serial $(serial_of B), valid until .*\\), link encrypted" \
    connect A "$B" --provd "$URL" --message hello --message "a second message"
cp "$T/last.out" "$T/ab.out"
check_out "  B echoes over the encrypted link" '^reply: hello$' cat "$T/ab.out"
check_out "  both messages" '^reply: a second message$' cat "$T/ab.out"
check "  B authenticated A" log_has B "authenticated $A \\(certificate serial $(serial_of A)\\)"
check "  and saw the link closed" log_has B "link with $A closed \\(2 messages, 0 key changes\\)"
check "A fetched provd's CRL into its state directory" test -s "$T/A/crl.der"
check_out "  the cached CRL verifies against the CA (openssl crl)" 'verify OK' \
    openssl crl -inform DER -in "$T/A/crl.der" -CAfile "$CA/chain.pem" -noout
curl -s -o "$T/provd-crl.der" "$URL/v1/crl"
check_eq "  and is provd's CRL (same number)" \
    "$(openssl crl -inform DER -in "$T/provd-crl.der" -noout -crlnumber)" \
    "$(openssl crl -inform DER -in "$T/A/crl.der" -noout -crlnumber)"
check_fails_out "a device not in range: clear error" 'cannot reach 02:00:00:00:20:98: not in range' \
    connect A 02:00:00:00:20:98 --provd "$URL"

# --- key changes on a live link --------------------------------------------
check_out "key change by time: 20 messages over 2 s with a 300 ms key lifetime" \
    '^20 messages echoed, ([3-9]|[1-9][0-9]) key changes$' \
    connect A "$B" --provd "$URL" --count 20 --interval-ms 100 --rekey-after-ms 300
check "  B saw the same traffic and key changes" \
    log_has B "link with $A closed \\(20 messages, ([3-9]|[1-9][0-9]) key changes\\)"
check_out "key change by frames: every 5 frames, 60 messages" \
    '^60 messages echoed, ([6-9]|[1-9][0-9]) key changes$' \
    connect A "$B" --provd "$URL" --count 60 --rekey-frames 5

# --- openssl s_client as an independent TLS client --------------------------
# a relay on 127.0.0.1 that opens the device's socket on the air, sends the
# sim baseband header with a chosen address, and copies bytes both ways
cat > "$T/relay.py" <<'EOF'
import os, select, socket, sys
air, to, frm = sys.argv[1], sys.argv[2], sys.argv[3]
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
u = socket.socket(socket.AF_UNIX); u.connect(os.path.join(air, to.replace(":", "") + ".sock"))
u.sendall(b"pvsb\x01\x00" + bytes.fromhex(frm.replace(":", "")))
while True:
    r, _, _ = select.select([c, u], [], [], 10)
    if not r: break
    for s in r:
        d = s.recv(65536)
        if not d: sys.exit(0)
        (u if s is c else c).sendall(d)
EOF
# s_client_as ADDR CERT KEY: s_client through the relay, showing ADDR
s_client_as() {
	/usr/bin/python3 "$T/relay.py" "$AIR" "$B" "$1" > "$T/relay.port" &
	_rp=$!
	wait_for "$T/relay.port" '^[0-9]+$' || return 1
	# stdin open for a second: s_client reads what B says after the handshake
	sleep 1 | openssl s_client -connect "127.0.0.1:$(cat "$T/relay.port")" -tls1_3 \
	    -cert "$2" -key "$3" -CAfile "$CA/chain.pem" -verify_return_error -verify 4 -brief 2>&1
	echo "s_client exit status $?"
	kill $_rp 2>/dev/null; wait $_rp 2>/dev/null
	return 0
}
check_out "openssl s_client with A's certificate and key: TLS 1.3, B's certificate verified" \
    'Protocol version: TLSv1.3' s_client_as "$A" "$T/A.pem" "$T/A/keystore/id/key.pem"
cp "$T/last.out" "$T/sclient.out"
check_out "  ECDSA signatures" 'Signature type: ECDSA' cat "$T/sclient.out"
check_out "  X25519 key exchange" 'Temp Key: X25519' cat "$T/sclient.out"
check_out "  s_client ended normally" 's_client exit status 0' cat "$T/sclient.out"
check_out "  B's certificate was verified" 'Verification: OK' cat "$T/sclient.out"
check "  B authenticated A (s_client's certificate)" log_has B "authenticated $A"
check_out "openssl s_client with H's certificate, showing A's address: refused" \
    'alert bad certificate' s_client_as "$A" "$T/H.pem" "$T/H/keystore/id/key.pem"
check "  B says why" log_has B "names $H but the link-layer peer is $A"

# --- the tpm2 keystore -------------------------------------------------------
if command -v swtpm >/dev/null && swtpm_start "$T/tpm"; then
	check "device C enrolled (tpm2 keystore on swtpm)" enroll C "$C" --keystore tpm2 \
	    --tcti "$swtpm_tcti"
	check_out "  its key is a TPM blob" 'TSS2 PRIVATE KEY' cat "$T/C/keystore/id/key.pem"
	check_out "C (tpm2) connects to B" "authenticated $B" \
	    connect C "$B" --provd "$URL" --message "from the TPM"
	check "  B authenticated C" log_has B "authenticated $C"
	stop_serve B
	check "C (tpm2) serves" serve C --provd "$URL"
	check_out "A connects to C (tpm2 signs as responder)" '^reply: to the TPM$' \
	    connect A "$C" --provd "$URL" --message "to the TPM"
	check_out "B connects to C with key changes" '^10 messages echoed, [1-9][0-9]* key changes$' \
	    connect B "$C" --provd "$URL" --count 10 --rekey-frames 3
	check "  C saw both" log_has C "link with $B closed \\(10 messages"
	stop_serve C
else
	not_ok "a private swtpm starts (swtpm from make deps)"
fi
stop_serve B
check "B serves again" serve B --provd "$URL" --crl-refresh 1 --auth-timeout 3

# --- one process: intake, then mutual authentication ----------------------
"$DA" --state "$T/K" init --addr "$K" --pin-file "$T/pin" --name K >/dev/null
check "K serves before intake" serve K --provd "$URL"
check_out "provctl enrolls K" "enrolled $K" provctl enroll "$K" --label-mac "$K" --pin-file "$T/pin"
check "  K says it is provisioned" log_has K "devagent $K: provisioned"
check_out "  the same K process then answers mutual authentication" "authenticated $K" \
    connect A "$K" --provd "$URL" --message ping
check_fails_out "  and refuses intake (provctl enroll --replace)" 'refused the PIN exchange' \
    provctl enroll "$K" --label-mac "$K" --pin-file "$T/pin" --replace
check "  saying the device is provisioned" log_has K "intake from .* refused: this device is provisioned"
stop_serve K

# --- faults ------------------------------------------------------------------
curl -s -o "$T/crl.der" "$URL/v1/crl"
check_out "stolen certificate (A's) without its key: refused" '^badpeer: refused' \
    "$BADPEER" --air "$AIR" --mode stolen-cert --cert "$T/A/keystore/id/cert.der" \
    --chain "$CA/chain.pem" --crl "$T/crl.der" --to "$B"
check "  B: the signature does not verify with the certificate's key" \
    log_has B "$A refused: its signature does not verify with its certificate's key"
check_out "H's own valid certificate with A's address on the air: refused" '^badpeer: refused' \
    "$BADPEER" --air "$AIR" --mode spoof --state "$T/H" --as "$A" --crl "$T/crl.der" --to "$B"
check "  B: the certificate names H, the link-layer peer is A" \
    log_has B "$A refused: the certificate names $H but the link-layer peer is $A"

# another enterprise's CA: a certificate of the profile for E, installed by
# hand (E trusts our CA, so only B's check of E's certificate stops it)
install_identity() {	# NAME ADDR KEY CERTPEM: $T/NAME's keystore holds KEY and CERT
	"$DA" --state "$T/$1" init --addr "$2" --pin-file "$T/pin" >/dev/null &&
	mkdir -p -m 700 "$T/$1/keystore/id.0123456789abcdef" &&
	cp "$3" "$T/$1/keystore/id.0123456789abcdef/key.pem" &&
	openssl x509 -in "$4" -outform DER -out "$T/$1/keystore/id.0123456789abcdef/cert.der" &&
	cp "$CA/chain.pem" "$T/$1/keystore/id.0123456789abcdef/chain.pem" &&
	ln -s id.0123456789abcdef "$T/$1/keystore/id"
}
ext_for() {	# ADDR: the device certificate profile's extensions, for openssl
	_h=$(echo "$1" | tr -d :)
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=URI:urn:dev:mac:%s\n' "$_h"
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evilca.key" \
    -subj "/CN=Other Enterprise Root CA" -days 30 -out "$T/evilca.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/E.key" 2>/dev/null
openssl req -new -key "$T/E.key" -subj "/serialNumber=$E" -out "$T/E.csr" 2>/dev/null
ext_for "$E" > "$T/E.ext"
openssl x509 -req -in "$T/E.csr" -CA "$T/evilca.pem" -CAkey "$T/evilca.key" -CAcreateserial \
    -days 30 -extfile "$T/E.ext" -out "$T/E.pem" 2>/dev/null
check "a device certificate of the profile from another CA (openssl)" \
    install_identity E "$E" "$T/E.key" "$T/E.pem"
check_fails "  it does not verify against our CA (openssl)" openssl verify -CAfile "$CA/root.crt" "$T/E.pem"
check_fails_out "E connects to B: refused (unknown CA)" 'refused this device .*unknown CA' \
    connect E "$B" --provd "$URL"
check "  B: not issued by this enterprise's CA" log_has B "$E refused: .*not issued by this enterprise's CA"

# expired: our CA's own key signs a certificate that ended in 2020
cat > "$T/ca.cnf" <<EOF
[ca]
default_ca = x
[x]
database = $T/index.txt
new_certs_dir = $T
serial = $T/serial.txt
crlnumber = $T/crlnumber.txt
default_md = sha256
default_crl_days = 1
policy = p
copy_extensions = none
[p]
serialNumber = supplied
EOF
: > "$T/index.txt"; echo 01 > "$T/serial.txt"; echo 01 > "$T/crlnumber.txt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/F.key" 2>/dev/null
openssl req -new -key "$T/F.key" -subj "/serialNumber=$F" -out "$T/F.csr" 2>/dev/null
ext_for "$F" > "$T/F.ext"
openssl ca -batch -config "$T/ca.cnf" -cert "$CA/ca.crt" -keyfile "$CA/ca.key" -in "$T/F.csr" \
    -startdate 20200101000000Z -enddate 20200201000000Z -extfile "$T/F.ext" -out "$T/F.pem" \
    >/dev/null 2>&1
check_out "an expired certificate of our CA (openssl ca)" 'certificate has expired' \
    sh -c "openssl verify -CAfile '$CA/root.crt' '$T/F.pem' 2>&1; true"
check "  installed in device F" install_identity F "$F" "$T/F.key" "$T/F.pem"
check_fails_out "F connects to B: refused (expired)" 'refused this device .*certificate expired' \
    connect F "$B" --provd "$URL"
check "  B: certificate has expired" log_has B "$F refused: the certificate is refused: certificate has expired"

# revoked, with a fresh CRL: B asks provd every second
check_out "D connects to B before revocation" "authenticated $B" connect D "$B" --provd "$URL"
check "provctl revokes D" provctl revoke "$D" --reason keyCompromise
sleep 1.5
check_fails_out "D connects to B: refused (revoked)" 'refused this device .*certificate revoked' \
    connect D "$B" --provd "$URL"
check "  B: D's certificate is revoked" log_has B "$D refused: the certificate is revoked"
check "D serves" serve D --provd "$URL" --auth-timeout 3
check_fails_out "A connects to the revoked D: A refuses it" "$D refused: the certificate is revoked" \
    connect A "$D" --provd "$URL"
stop_serve D

# revoked, with a stale CRL: G's cached CRL is one openssl ca made, listing
# D, valid for one second; G does not ask provd
openssl x509 -inform DER -in "$T/D/keystore/id/cert.der" -out "$T/D.pem"
openssl ca -config "$T/ca.cnf" -cert "$CA/ca.crt" -keyfile "$CA/ca.key" -revoke "$T/D.pem" \
    >/dev/null 2>&1
openssl ca -config "$T/ca.cnf" -cert "$CA/ca.crt" -keyfile "$CA/ca.key" -gencrl -crlsec 1 \
    -out "$T/stale.pem" >/dev/null 2>&1
openssl crl -in "$T/stale.pem" -outform DER -out "$T/G/crl.der"
check_out "the stale CRL lists D (openssl crl)" "Serial Number: $(openssl x509 -in "$T/D.pem" -noout -serial | sed 's/serial=//')" \
    openssl crl -in "$T/stale.pem" -noout -text
sleep 2
check "G serves with that CRL, now stale" serve G --auth-timeout 3
check_fails_out "A connects to G: refused (G cannot check revocation)" \
    'refused this device .*certificate unknown' connect A "$G" --provd "$URL"
check "  G: the cached CRL is stale" log_has G "$A refused: the cached CRL is stale"
stop_serve G
check "G serves with --crl-grace any" serve G --auth-timeout 3 --crl-grace any
check_out "  A is taken (not on the stale CRL)" "authenticated $G" connect A "$G" --provd "$URL"
check_fails_out "  D is refused (on the stale CRL)" 'certificate revoked' connect D "$G" --provd "$URL"
check "  G: D's certificate is revoked" log_has G "$D refused: the certificate is revoked"
stop_serve G
cp "$T/crl.der" "$T/G/crl.der"
check "G serves with provd's CRL and provd's URL" serve G --provd "$URL" --auth-timeout 3
check_out "  A is taken" "authenticated $G" connect A "$G" --provd "$URL"
stop_serve G

# a peer that stops in the middle of the handshake
t0=$(date +%s)
check_out "a peer sends part of a ClientHello and goes silent: B closes the link" \
    'the responder gave up and closed the link' \
    "$BADPEER" --air "$AIR" --mode stall --as "$X" --to "$B" --bytes 20 --hold 8
check "  within B's 3 s handshake limit" test $(($(date +%s) - t0)) -le 6
check "  B: the peer stopped answering" log_has B "$X stopped answering \\(handshake\\)"
check_out "  and B serves the next device" "authenticated $B" connect A "$B" --provd "$URL"
"$BADPEER" --air "$AIR" --mode serve-stall --as "$Y" --hold 8 > "$T/stall.out" 2>&1 &
stall_pid=$!
sleep 0.3
t0=$(date +%s)
check_fails_out "a responder that stops after the ClientHello: A gives up" \
    "$Y stopped answering" connect A "$Y" --provd "$URL" --auth-timeout 2
check "  within A's 2 s limit" test $(($(date +%s) - t0)) -le 4
wait $stall_pid
check_out "  and closed the link" 'the initiator gave up' cat "$T/stall.out"

# link frames altered or replayed after the handshake
check_out "a frame altered after the handshake: B closes the link" \
    'the other side closed the link' \
    "$BADPEER" --air "$AIR" --mode tamper --state "$T/H" --chain "$CA/chain.pem" \
    --crl "$T/crl.der" --to "$B"
check "  B: the frame failed authentication" log_has B "link with $H ended: a frame failed authentication"
check_out "a frame sent twice: B closes the link" 'the other side closed the link' \
    "$BADPEER" --air "$AIR" --mode replay --state "$T/H" --crl "$T/crl.der" --to "$B"
check "  B: out of sequence" log_has B "link with $H ended: a frame out of sequence"
check_out "B is still serving" "authenticated $B" connect A "$B" --provd "$URL" --message still

# --- nothing secret in the logs, sanitizers --------------------------------
stop_serve B
check "no device printed a key or a PIN" sh -c "! grep -qiE 'key=|24681357|BEGIN PRIVATE' $T/*.log $T/*.intake"
check "the devices ran clean under the sanitizers" \
    sh -c "! grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' $T/*.log $T/*.intake $T/last.out"
cleanup_devices
t_done
