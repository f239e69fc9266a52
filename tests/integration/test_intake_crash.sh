#!/bin/sh
# provd killed (SIGKILL) in the middle of an enrollment, after the
# certificate was sent to the device and before the device acknowledged
# it: the job stays open while it could still be alive somewhere, then the
# next provd fails it and records the certificate the device may hold as
# revoked, so that it is on the CRL and never valid and unknown.
. "$(dirname "$0")/lib.sh"

TOOLS=$(dirname "$BIN")/tests/tools
AIR=$T/air
mkdir -p "$AIR"
# 500 ms a step: an enrollment lives at most 4 s, a job may be another
# provd's for 8 s
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 500"
check "start provd" start_provd || { t_done; exit 1; }

"$TOOLS/baddevice" --air "$AIR" --addr 00:1A:7D:DA:73:01 --pin 424242 \
    --mode silent-after-install --timeout 30 >"$T/bad.out" 2>&1 &
bad=$!
_i=0; until grep -q 'in range' "$T/bad.out" 2>/dev/null || [ $_i -gt 100 ]; do _i=$((_i + 1)); sleep 0.05; done
jq -n '{mac:"00:1a:7d:da:73:01", label_mac:"00:1a:7d:da:73:01", pin:"424242"}' > "$T/e.json"
check_eq "enrollment started" 202 "$(api POST /v1/intake/enrollments "$T/e.json")"
job=$(jq -r .id "$T/resp")
# the certificate is on the job before it leaves provd
_i=0
until [ "$(sql "select cert_serial is not null from enrollment_jobs where id = $job")" = t ] || [ $_i -gt 100 ]; do
	_i=$((_i + 1)); sleep 0.01
done
serial=$(sql "select cert_serial from enrollment_jobs where id = $job")
check "the certificate is noted on the job before it is sent" test -n "$serial"
# INSTALL goes out at once; the device keeps quiet; provd dies waiting
sleep 0.1
kill -KILL "$provd_pid"; wait "$provd_pid" 2>/dev/null; provd_pid=""
_i=0; until grep -q 'got INSTALL' "$T/bad.out" 2>/dev/null || [ $_i -gt 100 ]; do _i=$((_i + 1)); sleep 0.02; done
check "the device got the certificate" grep -q 'got INSTALL' "$T/bad.out"
check_eq "after the kill: the job is open, the certificate is in no table but the job" \
    "running|0" "$(sql "select status from enrollment_jobs where id = $job")|$(sql "select count(*) from certificates")"

# a provd started at once leaves a job that may belong to a live instance
check "provd starts again" start_provd
check_eq "a young open job is not taken from a possibly live instance" running \
    "$(sql "select status from enrollment_jobs where id = $job")"
stop_provd
sleep 8.5
check "provd starts after the job is surely dead" start_provd
check_eq "the job is failed as interrupted" "failed|interrupted: the provd running it stopped" \
    "$(sql "select status || '|' || error from enrollment_jobs where id = $job")"
check_eq "the certificate the device holds is recorded revoked (cessationOfOperation)" \
    "revoked|5|pending" \
    "$(sql "select c.status || '|' || c.revocation_reason || '|' || d.status from certificates c join devices d on d.id = c.device_id where c.serial = '$serial'")"
sql "select encode(cert_der, 'base64') from enrollment_jobs where id = $job" | tr -d '\n' | base64 -d > "$T/orphan.der" 2>/dev/null
[ -s "$T/orphan.der" ] || sql "select encode(der, 'base64') from certificates where serial = '$serial'" | tr -d '\n' | base64 -d > "$T/orphan.der"
openssl x509 -inform DER -in "$T/orphan.der" -out "$T/orphan.pem" 2>/dev/null
provctl crl --pem --out "$T/crl.pem" >/dev/null 2>&1
# openssl prints the serial without its leading zero bytes
check_out "the CRL lists it" "Serial Number: *$(serial_ossl "$serial")\$" \
    openssl crl -in "$T/crl.pem" -noout -text
check_fails "openssl verify -crl_check refuses it" openssl verify -crl_check -CAfile "$T/ca/root.crt" \
    -CRLfile "$T/crl.pem" "$T/orphan.pem"
check_out "audit: the revocation and the failure" 'certificate.revoke enrollment.fail' \
    sql "select string_agg(action, ' ' order by seq) from audit_log where seq > (select max(seq) - 2 from audit_log)"
check_out "audit chain verifies" '^audit chain OK' provctl --token-file "$T/security.token" audit verify

kill "$bad" 2>/dev/null; wait "$bad" 2>/dev/null
t_done
