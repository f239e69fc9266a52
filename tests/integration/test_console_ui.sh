#!/bin/sh
# The web console in a real browser (Debian's Chromium driven by
# playwright-core, tests/console/ui.test.mjs): logging in and out, intake of
# a simulated device through the page, the device search, revocation with
# its dialog, forced renewal, rule editing and the decision tester, what a
# viewer cannot do, the CSRF token, the end of a session, accessibility
# basics and the page weight. Each step is checked against the REST API and
# the database as well as on the page. provd runs with the sim radio and
# the console pages of this tree ([console] dir = server/console).
. "$(dirname "$0")/lib.sh"

NODE=/usr/bin/node
NPM=/usr/bin/npm
CHROMIUM=/usr/bin/chromium
UI=$top/tests/console
# the pages under test (another copy of them may be named, to check the checks)
PAGES=${PROVD_UI_PAGES:-$top/server/console}
# full-page screenshots, one per scenario; kept after the test (build/ is
# not tracked)
SHOTS=${PROVD_UI_SHOTS:-$top/build/test-console-ui}

for prog in "$NODE" "$NPM" "$CHROMIUM"; do
	[ -x "$prog" ] || { not_ok "$prog is installed (make deps)"; t_done; exit 1; }
done

# The test's node modules (playwright-core only), from the committed lock
# file: installed when missing or older than the lock.
if [ ! -d "$UI/node_modules/playwright-core" ] ||
    [ -n "$(find "$UI/package-lock.json" -newer "$UI/node_modules" 2>/dev/null)" ]; then
	# node trusts only its own CA list; also trust the system's (a proxy's
	# CA installed with update-ca-certificates, as apt and curl do)
	_cas=${NODE_EXTRA_CA_CERTS:-}
	[ -z "$_cas" ] && [ -f /etc/ssl/certs/ca-certificates.crt ] && _cas=/etc/ssl/certs/ca-certificates.crt
	if (cd "$UI" && { [ -z "$_cas" ] || export NODE_EXTRA_CA_CERTS="$_cas"; } &&
	    "$NPM" ci --no-audit --no-fund --loglevel=error) >"$T/npm.out" 2>&1; then
		touch "$UI/node_modules"
		ok "npm ci in tests/console"
	else
		not_ok "npm ci in tests/console"
		tail -n 20 "$T/npm.out" | sed 's/^/    /'
		t_done; exit 1
	fi
fi

AIR=$T/air
mkdir -p "$AIR"
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 5000
[console]
dir = $PAGES
login_fail_max = 5"
check_out "configuration with the console and the sim radio is OK" '^configuration OK$' provd -n
check "start provd" start_provd || { t_done; exit 1; }
SEC=$T/security.token

dev_pids=""
# device N ADDR PIN NAME: makes $T/devN and serves it on the air
device() {
	"$BIN/devagent" --state "$T/dev$1" init --addr "$2" --pin "$3" --name "$4" \
	    --model "Model $1" >/dev/null || return 1
	"$BIN/devagent" --state "$T/dev$1" serve --air "$AIR" >"$T/dev$1.out" 2>&1 &
	dev_pids="$dev_pids $!"
	_i=0
	until grep -q 'in range' "$T/dev$1.out" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 100 ] || return 1; sleep 0.05
	done
}
stop_devices() {
	for p in $dev_pids; do kill "$p" 2>/dev/null; done
	for p in $dev_pids; do wait "$p" 2>/dev/null; done
	dev_pids=""
}
# the devices go before provd and the database (lib.sh's t_cleanup)
trap 'stop_devices; t_cleanup' EXIT

# --- accounts, one per role, and one to be throttled ---------------------
# account NAME ROLE PASSWORD: the password in $T/pw_NAME (the browser tests
# read it there)
account() {
	printf '%s\n' "$3" > "$T/pw_$1"
	chmod 600 "$T/pw_$1"
	provd admin add "$1" --role "$2" --password-file "$T/pw_$1"
}
check "account olivia (operator)" account olivia operator 'olivia-desk-password-1'
check "account sam (security)" account sam security 'sam-security-password-2'
check "account vera (viewer)" account vera viewer 'vera-viewer-password-3'
check "account ada (admin)" account ada admin 'ada-admin-password-4444'
check "account tess (viewer, to be throttled)" account tess viewer 'tess-throttled-password-5'
check_eq "five accounts" 5 "$(sql "select count(*) from console_accounts")"

# --- devices on the simulated air ----------------------------------------
D1=00:1a:7d:da:71:13	# enrolled now; the browser revokes it
D2=00:1a:7d:da:71:14	# enrolled now; renewal, the viewer, CSRF, the rules
D3=00:1a:7d:da:71:15	# enrolled by the browser
D4=00:1a:7d:da:71:16	# wrong label and wrong PIN in the browser
check "device 1 on the air" device 1 00:1A:7D:DA:71:13 493817 Headset-1
check "device 2 on the air" device 2 00:1A:7D:DA:71:14 250611 Printer-2
check "device 3 on the air" device 3 00:1A:7D:DA:71:15 777123 Scanner-3
check "device 4 on the air" device 4 00:1A:7D:DA:71:16 601928 Tablet-4
# enroll ADDR PIN NAME OWNER GROUP: intake over the radio through the REST
# API (which, unlike provctl with --label-mac, records the device's name)
enroll() {
	jq -n --arg mac "$1" --arg pin "$2" --arg name "$3" --arg owner "$4" --arg group "$5" \
	    '{mac: $mac, label_mac: $mac, pin: $pin, name: $name, owner: $owner, groups: [$group]}' > "$T/enroll.json"
	[ "$(api POST /v1/intake/enrollments "$T/enroll.json")" = 202 ] || { cat "$T/resp"; return 1; }
	_job=$(jq -r .id "$T/resp")
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(jq -r .status "$T/resp")" = running ] || break
		api GET "/v1/intake/enrollments/$_job?wait_ms=20000&version=$(jq -r .version "$T/resp")" >/dev/null
	done
	jq -e '.status == "succeeded"' "$T/resp" >/dev/null || { cat "$T/resp"; return 1; }
}
check "device 1 enrolled over the radio (owner alice, group engineering)" \
    enroll $D1 493817 Headset-1 alice engineering
check "device 2 enrolled over the radio (owner bob, group lab)" \
    enroll $D2 250611 Printer-2 bob lab

# three more issued from CSRs, for the searches
for n in 1 2 3; do
	owner=dora; [ $n = 3 ] && owner=erin
	new_csr "$T/c$n.csr"
	check "device 0a:00:5e:00:00:0$n issued from a CSR (owner $owner)" \
	    provctl issue --mac 0a:00:5e:00:00:0$n --csr "$T/c$n.csr" --owner $owner --out "$T/c$n.pem"
done
# and 240 more straight into the table, so that the list has several pages
sql "insert into devices (mac, status, name, model)
    select ('02:00:00:00:' || lpad(to_hex(i / 256), 2, '0') || ':' || lpad(to_hex(i % 256), 2, '0'))::macaddr,
      (array['pending','retired'])[1 + i % 2], 'bulk-' || lpad(i::text, 3, '0'), 'model-' || (i % 5)
    from generate_series(1, 240) i" >/dev/null
check_eq "245 devices" 245 "$(sql "select count(*) from devices")"

# --- a resource and an access rule ---------------------------------------
check_out "resource ap-lobby" '^id [0-9]+' provctl --token-file "$SEC" resource add ap-lobby
check_out "engineering may connect to ap-lobby" '^id [0-9]+' \
    provctl --token-file "$SEC" rule add --group engineering --resource ap-lobby --action connect --allow
check_out "lab may connect to ap-lobby" '^id [0-9]+' \
    provctl --token-file "$SEC" rule add --group lab --resource ap-lobby --action connect --allow

# --- the browser -----------------------------------------------------------
mkdir -p "$SHOTS" "$T/tmp"
rm -f "$SHOTS"/*.png
jq -n --arg url "$URL" --arg shots "$SHOTS" --arg t "$T" \
    --arg d1 "$D1" --arg d2 "$D2" --arg d3 "$D3" --arg d4 "$D4" '{
	url: $url, shots: $shots,
	tokens: {operator: ($t + "/operator.token"), security: ($t + "/security.token"),
	    authorizer: ($t + "/authorizer.token"), admin: ($t + "/admin.token")},
	accounts: {
	    operator: {name: "olivia", role: "operator", password_file: ($t + "/pw_olivia")},
	    security: {name: "sam", role: "security", password_file: ($t + "/pw_sam")},
	    viewer: {name: "vera", role: "viewer", password_file: ($t + "/pw_vera")},
	    admin: {name: "ada", role: "admin", password_file: ($t + "/pw_ada")},
	    throttled: {name: "tess", role: "viewer", password_file: ($t + "/pw_tess")}},
	login_fail_max: 5,
	revoke: {mac: $d1, name: "Headset-1", owner: "alice"},
	renew: {mac: $d2, name: "Printer-2", model: "Model 2", owner: "bob"},
	enroll: {mac: $d3, label: "00-1A-7D-DA-71-15", pin: "777123", name: "Scanner-3",
	    owner: "carol", groups: ["desk", "lab"]},
	failing: {mac: $d4, wrong_label: "00:1A:7D:DA:71:61", label: "00:1A:7D:DA:71:16", wrong_pin: "000000"},
	in_range: 4,
	resource: "ap-lobby",
	search: {prefix: "00:1a:7d:da:71", owner: "dora", none: "zz-no-such-device"}
    }' > "$T/ui.json"

# Playwright makes its browser profile (a fresh --user-data-dir) under TMPDIR
TMPDIR=$T/tmp UI_FIXTURE=$T/ui.json timeout 240 "$NODE" "$UI/ui.test.mjs" >"$T/ui.out" 2>"$T/ui.err"
ui_rc=$?
cat "$T/ui.out"
nfail=$((nfail + $(grep -c '^not ok ' "$T/ui.out")))
if ! grep -q '^# screenshots:' "$T/ui.out" || { [ $ui_rc != 0 ] && ! grep -q '^not ok ' "$T/ui.out"; }; then
	not_ok "the browser tests ran to the end (exit $ui_rc)"
fi
if [ -s "$T/ui.err" ]; then
	echo "# what the browser tests wrote on stderr:"
	tail -n 20 "$T/ui.err" | sed 's/^/#   /'
fi

# --- afterwards, from the shell ------------------------------------------
api GET "/v1/devices/$D3" >/dev/null
check_out "device 3 holds the certificate it got through the page" \
    "certificate: serial $(serial_ossl "$(jq -r '.certificate.serial // "none"' "$T/resp")")\$" \
    "$BIN/devagent" --state "$T/dev3" show
check_eq "device 4 was never enrolled" 0 "$(sql "select count(*) from devices where mac = '$D4'")"
check_fails_out "provctl authorize: the revoked device is denied" '^deny: device revoked' \
    provctl --token-file "$T/authorizer.token" authorize "$D1" ap-lobby connect
check_out "provctl authorize: device 2 is still allowed" '^allow: ' \
    provctl --token-file "$T/authorizer.token" authorize "$D2" ap-lobby connect
check_out "the audit chain verifies" '^audit chain OK' provctl --token-file "$SEC" audit verify
check_out "changes made in the browser are audited as console:NAME" 'console:sam' \
    sql "select actor from audit_log where action = 'certificate.revoke'"
echo "# screenshots in ${SHOTS#"$top"/}"

stop_devices
t_done
