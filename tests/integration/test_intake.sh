#!/bin/sh
# Intake over the radio end to end: provd with the sim radio and real
# PostgreSQL, devagent devices (file and tpm2 keystores on swtpm) answering
# on the simulated air, provctl and the REST API as the operator. Checks what
# the device stores (openssl verify), what the database and the audit log
# hold, and every refusal: label mismatch, wrong PIN and lockout, a second
# operator on the same device, an enrolled device, the signer dying.
. "$(dirname "$0")/lib.sh"

AIR=$T/air
mkdir -p "$AIR"
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 5000"
check_out "configuration with a radio is OK" '^configuration OK$' provd -n
check "start provd" start_provd || { t_done; exit 1; }

dev_pids=""
# device N ADDR PIN [init args...]: makes $T/devN and serves it on the air
device() {
	_d=$1 _a=$2 _p=$3
	shift 3
	"$BIN/devagent" --state "$T/dev$_d" init --addr "$_a" --pin "$_p" --name "Printer-$_d" \
	    --model "LaserJet $_d" "$@" >/dev/null || return 1
	"$BIN/devagent" --state "$T/dev$_d" serve --air "$AIR" >"$T/dev$_d.out" 2>&1 &
	dev_pids="$dev_pids $!"
	_i=0
	until grep -q 'in range' "$T/dev$_d.out" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 100 ] || return 1; sleep 0.05
	done
}
swtpm_pid=""
cleanup_devices() {
	for p in $dev_pids $swtpm_pid; do kill "$p" 2>/dev/null; done
	for p in $dev_pids $swtpm_pid; do wait "$p" 2>/dev/null; done
	dev_pids="" swtpm_pid=""
}
jobs_of() { sql "select count(*) from enrollment_jobs where mac = '$1'"; }
printf '493817\n' > "$T/pin1"

check "device 1 on the air" device 1 00:1A:7D:DA:71:13 493817
check "device 2 on the air" device 2 00:1A:7D:DA:71:14 250611
check "device 3 on the air" device 3 00:1A:7D:DA:71:15 777123

# --- scan ----------------------------------------------------------------
check_out "provctl scan lists device 1 with its name" '00:1a:7d:da:71:13 +0x240404 +-45 +Printer-1' \
    provctl scan
check_out "provctl scan lists three devices" '^3 devices in range \(sim radio\)' provctl scan
echo '{"timeout_ms": 500}' > "$T/scan.json"
check_eq "POST /v1/intake/scan" 200 "$(api POST /v1/intake/scan "$T/scan.json")"
check_eq "scan answers JSON with three devices" 3 "$(jq '.devices | length' "$T/resp")"
echo '{"timeout_ms": -1}' > "$T/scan.json"
check_eq "scan with a bad timeout -> 400" 400 "$(api POST /v1/intake/scan "$T/scan.json")"
check_eq "scan needs a token" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    -H 'Content-Type: application/json' "$URL/v1/intake/scan")"

# --- label mismatch stops before anything happens ------------------------
before=$(counts)
check_fails_out "label mismatch refused" 'is not the one on the label' \
    provctl enroll 00:1A:7D:DA:71:13 --label-mac 00:1A:7D:DA:71:31 --pin-file "$T/pin1"
check_eq "label mismatch: nothing written" "$before|0" "$(counts)|$(jobs_of 00:1a:7d:da:71:13)"
check_out "label mismatch: the device was never contacted" 'intake:      open$' \
    "$BIN/devagent" --state "$T/dev1" show

# --- device keygen, file keystore, with provctl --------------------------
check_out "provctl enroll (device keygen)" 'enrolled 00:1a:7d:da:71:13: certificate serial [0-9a-f]{32}, fingerprint sha256 [0-9a-f]{64} \(keygen device' \
    provctl enroll 00:1A:7D:DA:71:13 --label-mac 00-1a-7d-da-71-13 --pin-file "$T/pin1" \
    --keygen device --owner alice --group engineering
cp "$T/last.out" "$T/enroll1.out"
for st in link keygen ca push record; do
	check "provctl shows step $st with its time" grep -qE "^  $st +[0-9]+ ms$" "$T/enroll1.out"
done
serial=$(sed -n 's/.*certificate serial \([0-9a-f]*\),.*/\1/p' "$T/enroll1.out")
check_out "the device is provisioned" 'intake:      closed \(provisioned\)' "$BIN/devagent" --state "$T/dev1" show
check_out "the device holds the certificate" "certificate: serial $(serial_ossl "$serial")\$" "$BIN/devagent" --state "$T/dev1" show
# the installed identity: keystore/id -> id.<hex>/ with cert.der, key.pem, chain.pem
devcert=$T/dev1.crt
openssl x509 -inform DER -in "$T/dev1/keystore/id/cert.der" -out "$devcert" 2>/dev/null
check "the device's certificate verifies against the CA (openssl)" openssl verify -CAfile "$T/ca/root.crt" "$devcert"
check "the device's CA chain is the CA's" cmp "$T/dev1/keystore/id/chain.pem" "$T/ca/chain.pem"
check_out "the certificate names the device" 'URI:urn:dev:mac:001a7dda7113' openssl x509 -in "$devcert" -noout -ext subjectAltName
devkey=$T/dev1/keystore/id/key.pem
check_eq "the device's key matches its certificate" \
    "$(openssl x509 -in "$devcert" -noout -pubkey | openssl sha256)" \
    "$(openssl pkey -in "$devkey" -pubout 2>/dev/null | openssl sha256)"
check_eq "database: device active with model, owner and certificate" \
    "active|LaserJet 1|alice|$serial|active" \
    "$(sql "select d.status, d.model, u.name, c.serial, c.status from devices d join users u on u.id = d.owner_id join certificates c on c.device_id = d.id where d.mac = '00:1a:7d:da:71:13'")"
check_eq "database: the job succeeded, keygen device, with its certificate" "succeeded|device|done|t" \
    "$(sql "select j.status, j.keygen, j.step, j.certificate_id = c.id from enrollment_jobs j join certificates c on c.serial = '$serial' where j.mac = '00:1a:7d:da:71:13'")"
check_eq "audit: start, each step, issue, success" \
    "enrollment.start enrollment.link enrollment.keygen enrollment.ca enrollment.push certificate.issue enrollment.succeed" \
    "$(sql "select string_agg(action, ' ' order by seq) from audit_log where action like 'enrollment.%' or action = 'certificate.issue'")"
check_eq "directory outbox row for the device" 1 "$(sql "select count(*) from directory_outbox where key = '00:1a:7d:da:71:13'")"
job1=$(sql "select id from enrollment_jobs where mac = '00:1a:7d:da:71:13'")
check_eq "GET the job (REST)" "200 succeeded" "$(api GET "/v1/intake/enrollments/$job1") $(jq -r .status "$T/resp")"
check_eq "the job shows four timed steps and the record" "link keygen ca push record" "$(jq -r '[.steps[].step] | join(" ")' "$T/resp")"
check_eq "the job shows serial and fingerprint" "$serial" "$(jq -r .serial "$T/resp")"
check_eq "no job 999999 -> 404" 404 "$(api GET /v1/intake/enrollments/999999)"
check_eq "job id not a number -> 400" 400 "$(api GET /v1/intake/enrollments/abc)"

# --- an enrolled device --------------------------------------------------
check_fails_out "enrolling it again without replace: clear conflict" 'already has an active certificate' \
    provctl enroll 00:1A:7D:DA:71:13 --label-mac 00:1A:7D:DA:71:13 --pin-file "$T/pin1"
check_fails_out "with replace the device itself refuses (intake closed)" 'failed at link: the device refused the PIN exchange' \
    provctl enroll 00:1A:7D:DA:71:13 --label-mac 00:1A:7D:DA:71:13 --pin-file "$T/pin1" --replace
check_eq "its certificate is untouched" "active" "$(sql "select status from certificates where serial = '$serial'")"

# --- server keygen over the REST API -------------------------------------
jq -n '{mac:"00:1a:7d:da:71:14", label_mac:"00:1A:7D:DA:71:14", pin:"250611", keygen:"server", owner:"bob"}' > "$T/e2.json"
check_eq "POST /v1/intake/enrollments -> 202" 202 "$(api POST /v1/intake/enrollments "$T/e2.json")"
job2=$(jq -r .id "$T/resp")
check_eq "the new job is running" running "$(jq -r .status "$T/resp")"
check_eq "a PIN is never echoed" "" "$(grep -o 250611 "$T/resp")"
api GET "/v1/intake/enrollments/$job2?wait_ms=20000&version=999" >/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ "$(jq -r .status "$T/resp")" = running ] || break
	api GET "/v1/intake/enrollments/$job2?wait_ms=20000&version=$(jq -r .version "$T/resp")" >/dev/null
done
check_eq "server keygen enrollment succeeded" "succeeded|server" "$(jq -r '.status + "|" + .keygen' "$T/resp")"
cert2=$T/dev2.crt
openssl x509 -inform DER -in "$T/dev2/keystore/id/cert.der" -out "$cert2" 2>/dev/null
check "device 2's certificate verifies (openssl)" openssl verify -CAfile "$T/ca/root.crt" "$cert2"
check_eq "database: job keygen server" "succeeded|server" \
    "$(sql "select status, keygen from enrollment_jobs where id = $job2")"
check "provd never logs a PIN" sh -c "! grep -qE '250611|493817|777123' '$T/provd.log' '$T/provd.out'"

# --- wrong PIN, lockout --------------------------------------------------
printf '000000\n' > "$T/badpin"
before=$(counts)
check_fails_out "a wrong PIN fails closed" 'failed at link: the device refused the PIN exchange' \
    provctl enroll 00:1A:7D:DA:71:15 --label-mac 00:1A:7D:DA:71:15 --pin-file "$T/badpin"
check_eq "wrong PIN: no device or certificate, one failed job" "$(echo "$before" | cut -d'|' -f1,2)|failed|link" \
    "$(counts | cut -d'|' -f1,2)|$(sql "select status || '|' || step from enrollment_jobs where mac = '00:1a:7d:da:71:15'")"
check_out "wrong PIN: audited" 'enrollment.fail' sql "select action from audit_log order by seq desc limit 1"
for i in 2 3 4 5; do
	provctl enroll 00:1A:7D:DA:71:15 --label-mac 00:1A:7D:DA:71:15 --pin-file "$T/badpin" >/dev/null 2>&1
done
printf '777123\n' > "$T/pin3"
check_fails "the sixth attempt with the right PIN is refused (locked)" \
    provctl enroll 00:1A:7D:DA:71:15 --label-mac 00:1A:7D:DA:71:15 --pin-file "$T/pin3"
check_out "the device counts the failures" 'intake:      locked|5 failed' "$BIN/devagent" --state "$T/dev3" show
check_eq "six failed jobs, nothing else" "6|0" \
    "$(sql "select count(*) from enrollment_jobs where mac = '00:1a:7d:da:71:15' and status = 'failed'")|$(sql "select count(*) from devices where mac = '00:1a:7d:da:71:15'")"

# --- two operators, one device -------------------------------------------
# The device answers hello and then thinks for as long as provd lets it
# (baddevice, silent after HELLO): the first job is surely still running
# when the second operator asks.
"$(dirname "$BIN")/tests/tools/baddevice" --air "$AIR" --addr 00:1A:7D:DA:71:16 --pin 112233 \
    --mode silent-after-hello --timeout 30 >"$T/dev4.out" 2>&1 &
dev_pids="$dev_pids $!"
_i=0; until grep -q 'in range' "$T/dev4.out" 2>/dev/null || [ $_i -gt 100 ]; do _i=$((_i + 1)); sleep 0.05; done
jq -n '{mac:"00:1a:7d:da:71:16", label_mac:"00:1a:7d:da:71:16", pin:"112233"}' > "$T/e4.json"
st1=$(api POST /v1/intake/enrollments "$T/e4.json"); j4=$(jq -r .id "$T/resp")
st2=$(api POST /v1/intake/enrollments "$T/e4.json"); cp "$T/resp" "$T/resp2"
check_eq "first operator starts, second gets 409" "202 409" "$st1 $st2"
check_out "the conflict says the device is being enrolled" "being enrolled already \\(job $j4\\)" cat "$T/resp2"
api GET "/v1/intake/enrollments/$j4?wait_ms=20000" >/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ "$(jq -r .status "$T/resp")" = running ] || break
	api GET "/v1/intake/enrollments/$j4?wait_ms=20000&version=$(jq -r .version "$T/resp")" >/dev/null
done
check_eq "the first job ends on its own (the device went silent)" "failed|keygen" \
    "$(jq -r '.status + "|" + .step' "$T/resp")"
check_eq "one job for the device" 1 "$(jobs_of 00:1a:7d:da:71:16)"

# --- the signer dies mid-enrollment --------------------------------------
check "device 5 on the air" device 5 00:1A:7D:DA:71:17 445566
printf '445566\n' > "$T/pin5"
signer=$(pgrep -P "$provd_pid" -f "provd signer" | head -n 1)
check "the signer runs" test -n "$signer"
kill -KILL "$signer" 2>/dev/null
before=$(counts)
check_fails_out "with the signer gone the enrollment fails at the CA" 'failed at ca' \
    provctl enroll 00:1A:7D:DA:71:17 --label-mac 00:1A:7D:DA:71:17 --pin-file "$T/pin5"
check_eq "nothing recorded" "$(echo "$before" | cut -d'|' -f1,2)" "$(counts | cut -d'|' -f1,2)"
check_out "the device is not provisioned and has no identity" 'certificate: none' \
    "$BIN/devagent" --state "$T/dev5" show
check_out "a retry succeeds with a new signer" 'enrolled 00:1a:7d:da:71:17' \
    provctl enroll 00:1A:7D:DA:71:17 --label-mac 00:1A:7D:DA:71:17 --pin-file "$T/pin5"

# --- tpm2 keystore on swtpm ----------------------------------------------
if command -v swtpm >/dev/null && swtpm_start "$T/tpm"; then
	check "device 6 (tpm2) on the air" device 6 00:1A:7D:DA:71:18 918273 --keystore tpm2 \
	    --tcti "$swtpm_tcti"
	printf '918273\n' > "$T/pin6"
	check_fails_out "server keygen for a tpm2 device is refused" 'cannot store a delivered key' \
	    provctl enroll 00:1A:7D:DA:71:18 --label-mac 00:1A:7D:DA:71:18 --pin-file "$T/pin6" --keygen server
	check_out "tpm2 device enrolls with device keygen (auto)" 'enrolled 00:1a:7d:da:71:18: .*keygen device' \
	    provctl enroll 00:1A:7D:DA:71:18 --label-mac 00:1A:7D:DA:71:18 --pin-file "$T/pin6"
	check_out "its identity is in the TPM keystore" 'keystore:    tpm2' "$BIN/devagent" --state "$T/dev6" show
else
	not_ok "a private swtpm starts (swtpm from make deps)"
fi

# --- bad requests: clear error, nothing written ---------------------------
before=$(counts)
badreq() {	# NAME JSON
	echo "$2" > "$T/bad.json"
	check_eq "$1 -> 400" 400 "$(api POST /v1/intake/enrollments "$T/bad.json")"
}
badreq "no label" '{"mac":"00:1a:7d:da:71:19","pin":"123456"}'
badreq "short PIN" '{"mac":"00:1a:7d:da:71:19","label_mac":"00:1a:7d:da:71:19","pin":"12345"}'
badreq "PIN with letters" '{"mac":"00:1a:7d:da:71:19","label_mac":"00:1a:7d:da:71:19","pin":"12345a"}'
badreq "bad keygen" '{"mac":"00:1a:7d:da:71:19","label_mac":"00:1a:7d:da:71:19","pin":"123456","keygen":"tpm"}'
badreq "multicast address" '{"mac":"01:00:5e:00:00:01","label_mac":"01:00:5e:00:00:01","pin":"123456"}'
badreq "unknown key" '{"mac":"00:1a:7d:da:71:19","label_mac":"00:1a:7d:da:71:19","pin":"123456","x":1}'
jq -n '{mac:"00:1a:7d:da:71:19", label_mac:"00:1a:7d:da:71:19", pin:"123456"}' > "$T/e9.json"
check_eq "security role may not enroll -> 403" 403 "$(api POST /v1/intake/enrollments "$T/e9.json" "$T/security.token")"
check_eq "bad requests wrote nothing" "$before|0" "$(counts)|$(jobs_of 00:1a:7d:da:71:19)"
check_fails_out "a device not in range: the job fails at link" 'failed at link: 00:1a:7d:da:71:19 is not in range' \
    provctl enroll 00:1A:7D:DA:71:19 --label-mac 00:1A:7D:DA:71:19 --pin 123456

check_out "audit chain verifies" '^audit chain OK' provctl --token-file "$T/security.token" audit verify
check_out "metrics count enrollments" 'provd_enrollments_total\{outcome="succeeded"\} [3-9]' curl -s "$URL/metrics"

cleanup_devices
t_done
