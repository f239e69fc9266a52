#!/bin/sh
# Intake against devices that break the protocol: baddevice (tests/tools)
# answers on the simulated air, runs the PIN exchange properly and then
# misbehaves in one way per run — another address in HELLO or in the CSR, a
# CSR that fails proof of possession or carries another challenge, a
# malformed frame, an ACK of another certificate, silence after HELLO. Each
# enrollment must fail at the right step with a sentence that says what was
# wrong, record no device and no certificate, and be audited; provd must
# stay healthy and still enroll a well-behaved device afterwards.
. "$(dirname "$0")/lib.sh"

TOOLS=$(dirname "$BIN")/tests/tools
AIR=$T/air
PIN=314159
mkdir -p "$AIR"
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 2000"
check "baddevice is built (make check-build)" test -x "$TOOLS/baddevice" || { t_done; exit 1; }
check "start provd" start_provd || { t_done; exit 1; }

bad_pids=""
dev_pids=""
cleanup_devices() {
	for p in $bad_pids $dev_pids; do kill "$p" 2>/dev/null; done
	for p in $bad_pids $dev_pids; do wait "$p" 2>/dev/null; done
	bad_pids="" dev_pids=""
}
# in_range FILE: waits until the device writing FILE is on the air
in_range() {
	_i=0
	until grep -q 'in range' "$1" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 200 ] || return 1; sleep 0.05
	done
}
lower() { echo "$1" | tr A-F a-f; }

# fault MODE ADDR STEP PATTERN [HEARD [PUSHED]]: baddevice at ADDR
# misbehaves as MODE; the enrollment must fail at STEP with an error
# matching PATTERN (grep -E), write no device or certificate and be audited
# as failed. HEARD, when given, is what the device must have heard from the
# server (a pattern against baddevice's report, see docs/protocol.md,
# "Errors"). PUSHED=1: the certificate reached the device before the
# failure, so it must instead be recorded revoked (on the CRL), with the
# device pending.
fault() {
	_m=$1 _a=$2 _s=$3 _p=$4 _h=${5:-} _pushed=${6:-0}
	_mac=$(lower "$_a")
	"$TOOLS/baddevice" --air "$AIR" --addr "$_a" --pin "$PIN" --mode "$_m" --timeout 30 \
	    >"$T/bad-$_m.out" 2>&1 &
	_pid=$!
	bad_pids="$bad_pids $_pid"
	check "$_m: baddevice on the air" in_range "$T/bad-$_m.out"
	_before=$(counts | cut -d'|' -f1,2)
	check_fails_out "$_m: provctl enroll fails at $_s, saying what was wrong" \
	    "failed at $_s: .*($_p)" \
	    provctl enroll "$_a" --label-mac "$_a" --pin "$PIN"
	check_eq "$_m: the job is failed at $_s" "failed|$_s" \
	    "$(sql "select status || '|' || step from enrollment_jobs where mac = '$_mac'")"
	check_out "$_m: the job's error says what was wrong" "$_p" \
	    sql "select error from enrollment_jobs where mac = '$_mac'"
	if [ "$_pushed" = 1 ]; then
		check_eq "$_m: the pushed certificate is recorded revoked, the device pending" \
		    "pending|revoked|5" \
		    "$(sql "select d.status || '|' || c.status || '|' || c.revocation_reason from certificates c join devices d on d.id = c.device_id where d.mac = '$_mac'")"
		_serial=$(sql "select c.serial from certificates c join devices d on d.id = c.device_id where d.mac = '$_mac'")
		provctl crl --pem --out "$T/crl-$_m.pem" >/dev/null 2>&1
		check_out "$_m: the pushed certificate is on the CRL" "Serial Number: *$(serial_ossl "$_serial")\$" \
		    openssl crl -in "$T/crl-$_m.pem" -noout -text
	else
		check_eq "$_m: no device and no certificate recorded" "$_before|0|0" \
		    "$(counts | cut -d'|' -f1,2)|$(sql "select count(*) from devices where mac = '$_mac'")|$(sql "select count(*) from certificates c join devices d on d.id = c.device_id where d.mac = '$_mac'")"
	fi
	_job=$(sql "select id from enrollment_jobs where mac = '$_mac'")
	check_eq "$_m: enrollment.fail audited for job $_job at $_s" "1|$_s" \
	    "$(sql "select count(*) || '|' || min(detail->>'step') from audit_log where action = 'enrollment.fail' and object = '$_job'")"
	wait "$_pid"
	check_eq "$_m: baddevice did its misbehaviour (exit status)" 0 "$?"
	bad_pids=$(echo "$bad_pids" | sed "s/ $_pid//")
	if [ -n "$_h" ]; then
		check_out "$_m: the device heard: $_h" "$_h" cat "$T/bad-$_m.out"
	fi
	check "$_m: baddevice ran clean under the sanitizers" \
	    sh -c "! grep -qE 'Sanitizer|runtime error' '$T/bad-$_m.out'"
	check "$_m: provd is still running" kill -0 "$provd_pid"
}

# HELLO with another address: refused before any key is made (ERROR 6)
fault hello-other-addr 00:1A:7D:DA:72:01 hello \
    'says it is 00:1a:7d:da:72:02, which is not the address on the label' \
    'sent HELLO as 00:1a:7d:da:72:02; the server sent ERROR 6 '
# a good CSR naming another device: the CA refuses (ERROR 6)
fault csr-other-addr 00:1A:7D:DA:72:03 ca \
    'request names another device than 00:1a:7d:da:72:03' \
    'the server sent ERROR 6 '
# a CSR whose signature is not made by its key: proof of possession fails
fault csr-bad-signature 00:1A:7D:DA:72:05 ca \
    'the CA refused the device.s request: the CSR signature does not verify' \
    'the server sent ERROR 6 '
# a CSR with another challenge (a replayed or foreign CSR): ERROR 2
fault csr-wrong-challenge 00:1A:7D:DA:72:07 keygen \
    'not a CSR with our challenge' \
    'the server sent ERROR 2 '
# a malformed frame (next version, 4 GiB length) instead of HELLO; the
# protocol answers a frame of another version with ERROR 3
fault garbage-frame 00:1A:7D:DA:72:09 hello \
    'speaks another protocol version' \
    'the server sent ERROR 3 '
# the right certificate installed, another acknowledged: no DONE for the
# device (ERROR 2), and the certificate it holds is recorded revoked
fault ack-wrong-hash 00:1A:7D:DA:72:0B push \
    'acknowledged something other than its certificate' \
    'acknowledged another hash; the server sent ERROR 2' 1
# HELLO, then silence: the server gives up at the key request once [radio]
# timeout_ms (2 s) has passed. The link did not drop: the device stopped
# answering, and the error must say so.
fault silent-after-hello 00:1A:7D:DA:72:0D keygen \
    'stopped answering|did not answer|timed out' \
    'sent HELLO and then nothing; the server sent KEYGEN_REQ; the link closed after (19[5-9][0-9]|2[0-9]{3}) ms'
check_eq "seven failed jobs; only the pushed certificate, revoked, and its device" "7|1|1" \
    "$(sql "select count(*) from enrollment_jobs where status = 'failed'")|$(counts | cut -d'|' -f1,2)"

# --- provd is not harmed: a well-behaved device enrolls ------------------
"$BIN/devagent" --state "$T/good" init --addr 00:1A:7D:DA:72:20 --pin 271828 --name Printer-good \
    --model "LaserJet good" >/dev/null
"$BIN/devagent" --state "$T/good" serve --air "$AIR" >"$T/good.out" 2>&1 &
dev_pids="$dev_pids $!"
check "a well-behaved device on the air" in_range "$T/good.out"
check_out "a well-behaved device still enrolls" 'enrolled 00:1a:7d:da:72:20: certificate serial [0-9a-f]{32}' \
    provctl enroll 00:1A:7D:DA:72:20 --label-mac 00:1A:7D:DA:72:20 --pin 271828
check_eq "its job succeeded with its certificate" "succeeded|t" \
    "$(sql "select status, certificate_id is not null from enrollment_jobs where mac = '00:1a:7d:da:72:20'")"
check_eq "two devices and two certificates in all" "2|2" "$(counts | cut -d'|' -f1,2)"
check_out "the device is provisioned" 'intake:      closed \(provisioned\)' \
    "$BIN/devagent" --state "$T/good" show

check_out "audit chain verifies" '^audit chain OK' provctl --token-file "$T/security.token" audit verify
check_out "metrics count the failed enrollments" 'provd_enrollments_total\{outcome="failed"\} 7' \
    curl -s "$URL/metrics"

cleanup_devices
t_done
