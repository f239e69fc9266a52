#!/bin/sh
# The CA key in a TPM (swtpm): "provd ca init --keystore tpm2" makes the
# signing key inside the TPM and stores only the TPM-wrapped blob, which
# OpenSSL cannot read without the TPM and another TPM does not load; provd
# issues, signs CRLs and the OCSP responder certificate with it, and the
# certificates verify with openssl; one- and two-tier; refused options
# change nothing; the TPM going away while provd runs makes issuance fail
# with a clear answer, and provd recovers by itself when it is back.
PROVD_LOG_LEVEL=info
. "$(dirname "$0")/lib.sh"

tpm_pids=""
tpm_stop_all() { for p in $tpm_pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; tpm_pids=""; }
trap 'tpm_stop_all; t_cleanup' EXIT

if ! command -v swtpm >/dev/null || ! swtpm_start "$T/tpmA"; then
	not_ok "a private swtpm starts (swtpm from make deps)"
	t_done
	exit 1
fi
tpm_pids="$swtpm_pid"
TA=$swtpm_tcti
TA_PID=$swtpm_pid
TA_PORT=$(echo "$TA" | sed 's/.*port=//')
swtpm_start "$T/tpmB" || { not_ok "a second swtpm"; t_done; exit 1; }
tpm_pids="$tpm_pids $swtpm_pid"
TB=$swtpm_tcti

# tpm_pubkey TCTI KEYFILE: the public key of a TPM key, through OpenSSL's
# own command line and the tpm2 provider (an independent reader)
tpm_pubkey() {
	TPM2OPENSSL_TCTI=$1 openssl pkey -provider tpm2 -provider default -in "$2" -pubout 2>&1
}

write_conf "[ca]
tcti = $TA"

# --- refused before anything is made --------------------------------------------
check_fails_out "--keystore other: refused" 'keystore is "file" or "tpm2"' \
    provd ca init --keystore pkcs11
check_fails_out "--keystore tpm2 with an import: refused" "cannot be put into the TPM" \
    sh -c "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=x \
        -keyout '$T/imp.key' -out '$T/imp.crt' 2>/dev/null; \
        '$BIN/provd' -c '$T/provd.conf' ca init --keystore tpm2 --import-cert '$T/imp.crt' --import-key '$T/imp.key'"
check_fails_out "a TPM that does not answer: refused, named" "cannot reach the TPM" \
    provd ca init --keystore tpm2 --tcti "swtpm:host=127.0.0.1,port=1"
check_eq "... and no CA was written" "" "$(ls "$T/ca" 2>/dev/null)"

# --- one tier ------------------------------------------------------------------------
check_out "ca init --keystore tpm2" "CA ready in" provd ca init --keystore tpm2 --cn "TPM Test CA"
check_eq "ca.key is the TPM's blob, mode 600" "-----BEGIN TSS2 PRIVATE KEY----- 600" \
    "$(head -n 1 "$T/ca/ca.key") $(stat -c %a "$T/ca/ca.key")"
check_fails "openssl cannot read ca.key without the TPM" openssl pkey -in "$T/ca/ca.key" -noout
openssl x509 -in "$T/ca/ca.crt" -pubkey -noout > "$T/ca.pub"
check_eq "through the tpm2 provider, this TPM's key is the certificate's" "$(cat "$T/ca.pub")" \
    "$(tpm_pubkey "$TA" "$T/ca/ca.key")"
check_fails_out "another TPM does not load it" "Could not read key" tpm_pubkey "$TB" "$T/ca/ca.key"
check_out "the CA certificate is self-signed by it" ": OK$" \
    openssl verify -CAfile "$T/ca/ca.crt" "$T/ca/ca.crt"
check_out "the OCSP responder certificate is signed by it" ": OK$" \
    openssl verify -CAfile "$T/ca/ca.crt" "$T/ca/ocsp.crt"
check_fails_out "a second ca init is refused" "refusing to overwrite" provd ca init --keystore tpm2

check "start provd with the CA key in the TPM" start_provd || { t_done; exit 1; }
check_out "the log says where the key is" "the CA key is in the TPM" cat "$T/provd.log"

issue() {	# issue MAC NAME: a certificate in $T/NAME.pem
	new_csr "$T/$2.csr" && provctl issue --mac "$1" --csr "$T/$2.csr" --out "$T/$2.pem"
}
check "issue a device certificate" issue 02:00:5e:10:00:01 dev1
check_out "openssl verify: it chains to the CA" ": OK$" \
    openssl verify -CAfile "$T/ca/ca.crt" "$T/dev1.pem"
check "revoke it" env PROVD_TOKEN_FILE="$T/security.token" "$BIN/provctl" --url "$URL" \
    revoke 02:00:5e:10:00:01 --reason keyCompromise
check "fetch the CRL" provctl crl --pem --out "$T/crl.pem"
check_out "the CRL is signed by the TPM key" "verify OK" \
    openssl crl -in "$T/crl.pem" -CAfile "$T/ca/ca.crt" -noout
check_fails_out "openssl verify -crl_check refuses the revoked certificate" "certificate revoked" \
    openssl verify -crl_check -CAfile "$T/ca/ca.crt" -CRLfile "$T/crl.pem" "$T/dev1.pem"
check "issue a second one" issue 02:00:5e:10:00:02 dev2
check_out "OCSP: good, the responder chains to the TPM-signed CA" "dev2.pem: good" \
    openssl ocsp -issuer "$T/ca/ca.crt" -cert "$T/dev2.pem" -url "$URL/ocsp" \
        -CAfile "$T/ca/ca.crt" -no_nonce

# --- the TPM goes away while provd runs ----------------------------------------------
kill "$TA_PID"; wait "$TA_PID" 2>/dev/null
tpm_pids=$(echo "$tpm_pids" | sed "s/\b$TA_PID\b//")
code=$(new_csr "$T/dev3.csr"; printf '{"mac":"02:00:5e:10:00:03","csr":"%s"}' \
    "$(awk '{printf "%s\\n", $0}' "$T/dev3.csr")" > "$T/body.json"; api POST /v1/certificates "$T/body.json")
check_eq "TPM stopped: issuing answers 503" 503 "$code"
check_out "... with a sentence" "^The CA cannot sign now: the TPM" jq -r .error.message "$T/resp"
check_eq "... and nothing was recorded" 0 "$(sql "select count(*) from devices where mac = '02:00:5e:10:00:03'")"
check_out "the log names the TPM" "TPM" cat "$T/provd.log"
check_out "provd still answers" '"status"' curl -s "$URL/v1/health"

# the same TPM back on its port, with its state
swtpm socket --tpm2 --tpmstate dir="$T/tpmA" \
    --server type=tcp,port=$TA_PORT,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((TA_PORT + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear >"$T/tpmA/swtpm2.log" 2>&1 &
tpm_pids="$tpm_pids $!"
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $TA_PORT), 0.2).close()" 2>/dev/null ||
    [ $i -gt 50 ]; do i=$((i + 1)); sleep 0.1; done
check_eq "TPM back: issuing works again, without a restart of provd" 201 \
    "$(api POST /v1/certificates "$T/body.json")"
jq -r .certificate "$T/resp" > "$T/dev3.pem"
check_out "... and the certificate verifies" ": OK$" openssl verify -CAfile "$T/ca/ca.crt" "$T/dev3.pem"
check_out "the log says it answers again" "answers again" cat "$T/provd.log"
stop_provd

# --- provd with the other TPM does not start -------------------------------------------
write_conf "[ca]
tcti = $TB"
check_fails "provd run with another TPM: does not start" start_provd
check_out "... and says why" "does not load this key|TPM" cat "$T/provd.log"

# --- two tiers: the issuing CA's key in the TPM, the root's kept offline ----------------
write_conf "[ca]
tcti = $TA"
sed -i "s|^dir = $T/ca\$|dir = $T/ca2|" "$T/provd.conf"
check_out "ca init --two-tier --keystore tpm2" "CA ready in" \
    provd ca init --two-tier --keystore tpm2 --root-key-out "$T/root.key"
check_eq "ca.key in the TPM, the root key a file" "-----BEGIN TSS2 PRIVATE KEY----- -----BEGIN PRIVATE KEY-----" \
    "$(head -n 1 "$T/ca2/ca.key") $(head -n 1 "$T/root.key")"
check_out "the issuing CA chains to the root" ": OK$" \
    openssl verify -CAfile "$T/ca2/root.crt" "$T/ca2/ca.crt"
check_out "the OCSP certificate chains (issued in the TPM)" ": OK$" \
    openssl verify -CAfile "$T/ca2/root.crt" -untrusted "$T/ca2/ca.crt" "$T/ca2/ocsp.crt"
check "start provd (two tiers)" start_provd
check "issue a device certificate" issue 02:00:5e:10:00:04 dev4
check_out "it verifies against the root" ": OK$" \
    openssl verify -CAfile "$T/ca2/root.crt" -untrusted "$T/ca2/ca.crt" "$T/dev4.pem"
check_out "provd ca ocsp-cert renews the responder with the TPM key" "valid until" \
    provd ca ocsp-cert --days 7
check_out "... and it verifies" ": OK$" \
    openssl verify -CAfile "$T/ca2/root.crt" -untrusted "$T/ca2/ca.crt" "$T/ca2/ocsp.crt"

t_done
