#!/bin/sh
# Access control on a device that serves a resource (DESIGN.md flows 4 and
# 5): devices enrolled with owners and groups through a real provd, then
# devagent serve --resource printer deciding each peer's request — central
# (POST /v1/authorize: a rule added and removed, deny wins, a revocation,
# an unknown resource), provd stopped (the local policy decides; without
# one, fail closed), a stale CRL with stale_crl = closed and open, policy
# files refused with file:line. Then generated cases: the same group rules
# set in provd and in a local policy file, every device and action asked
# both ways (POST /v1/authorize/try and devagent policy-check), the answers
# must agree.
. "$(dirname "$0")/lib.sh"

AIR=$T/air
mkdir -p "$AIR"
write_conf "[radio]
backend = sim
sim_dir = $AIR
timeout_ms = 5000"
check "start provd" start_provd || { t_done; exit 1; }
CA=$T/ca
DA=$BIN/devagent
AUTH=$T/authorizer.token
printf '24681357\n' > "$T/pin"
S=02:00:00:00:21:01; A=02:00:00:00:21:02; B=02:00:00:00:21:03; C=02:00:00:00:21:04
D=02:00:00:00:21:05

dev_pids=""
cleanup_devices() {
	for p in $dev_pids; do kill "$p" 2>/dev/null; done
	for p in $dev_pids; do wait "$p" 2>/dev/null; done
	dev_pids=""
}
trap 'cleanup_devices; t_cleanup' EXIT

wait_for() {
	_i=0
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 100 ] || return 1; sleep 0.05
	done
}
# enroll NAME ADDR [provctl enroll args]: $T/NAME made and enrolled over the air
enroll() {
	_d=$T/$1 _a=$2; shift 2
	"$DA" --state "$_d" init --addr "$_a" --pin-file "$T/pin" --name "$(basename "$_d")" \
	    >/dev/null || return 1
	"$DA" --state "$_d" serve --air "$AIR" --once >"$_d.intake" 2>&1 &
	_p=$!
	wait_for "$_d.intake" 'in range' || return 1
	provctl enroll "$_a" --label-mac "$_a" --pin-file "$T/pin" "$@" >/dev/null || return 1
	wait $_p
}
# serve [args]: S serves on the air until stop_serve; its output in $T/S.log
serve() {
	: > "$T/S.log"
	"$DA" --state "$T/S" serve --air "$AIR" "$@" >>"$T/S.log" 2>&1 &
	serve_pid=$!
	dev_pids="$dev_pids $!"
	wait_for "$T/S.log" 'in range'
}
stop_serve() { [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; serve_pid=""; }
# ask NAME ACTION [RESOURCE]: devagent connect from $T/NAME to S
ask() { "$DA" --state "$T/$1" connect "$S" --air "$AIR" --provd "$URL" --auth-timeout 5 --resource "${3:-printer}" --action "$2"; }
sec() { PROVD_TOKEN_FILE=$T/security.token provctl "$@"; }
rule_id() { sed -n 's/^id \([0-9]*\),.*/\1/p' "$T/last.out"; }

# --- devices ----------------------------------------------------------------
check "S (the printer) enrolled" enroll S "$S"
check "A enrolled: alice, engineering" enroll A "$A" --owner alice --group engineering
check "B enrolled: bob, engineering and contractors" enroll B "$B" --owner bob \
    --group engineering --group contractors
check "C enrolled: carol, no group" enroll C "$C" --owner carol
check "D enrolled: dave, engineering" enroll D "$D" --owner dave --group engineering

cat > "$T/printer-policy.ini" <<'EOF'
; the printer on the second floor
[resource]
name = printer
stale_crl = closed
[allow]
print = engineering
status = *
[deny]
print = contractors
EOF
check_out "devagent policy-check: the policy file is OK" '^policy OK: resource printer' \
    "$DA" --state "$T/S" policy-check --policy "$T/printer-policy.ini"

# --- central ------------------------------------------------------------------
check "provctl resource add printer" sec resource add printer
check "rule: engineering may print" sec rule add --group engineering --resource printer \
    --action print --allow
r_eng=$(rule_id)
check "rule: contractors may not print" sec rule add --group contractors --resource printer \
    --action print --deny
r_con=$(rule_id)
check "S serves printer (central, local policy as fallback)" serve --resource printer \
    --provd "$URL" --token-file "$AUTH" --policy "$T/printer-policy.ini" --crl-refresh 1
check_out "A may print (provd: allowed by the engineering rule)" \
    "^granted: provd: allowed by rule $r_eng\$" ask A print
check "  S logged the decision" wait_for "$T/S.log" "$A asks printer/print: granted \\(provd: allowed by rule $r_eng\\)"
check_fails_out "B may not print: deny wins (contractors)" "^denied: provd: denied by rule $r_con\$" \
    ask B print
check_fails_out "C may not print: no rule" '^denied: provd: no rule allows this$' ask C print
check_fails_out "an unknown resource is denied" '^denied: provd: unknown resource$' \
    ask A print scanner
check "the engineering rule removed" sec rule del "$r_eng"
check_fails_out "A may no longer print" '^denied: provd: no rule allows this$' ask A print
check "the rule added again" sec rule add --group engineering --resource printer \
    --action print --allow
check_out "A may print again" '^granted: provd: allowed by rule' ask A print
check_out "D may print" '^granted: provd: allowed by rule' ask D print
check "D revoked" sec revoke "$D" --reason keyCompromise
check_fails_out "D is refused after its revocation" \
    'denied: provd: (certificate revoked|device revoked)|certificate revoked' ask D print
check_fails_out "connect needs --resource with --action" 'go together' \
    "$DA" --state "$T/A" connect "$S" --air "$AIR" --action print

# --- generated cases: central and local agree --------------------------------
# eight devices, one for each subset of g1 g2 g3, issued from CSRs
check "provctl resource add cmp" sec resource add cmp
i=0
while [ $i -lt 8 ]; do
	gargs=""
	[ $((i & 1)) = 0 ] || gargs="$gargs --group g1"
	[ $((i & 2)) = 0 ] || gargs="$gargs --group g2"
	[ $((i & 4)) = 0 ] || gargs="$gargs --group g3"
	new_csr "$T/x$i.csr"
	provctl issue --mac "02:00:00:00:22:0$i" --csr "$T/x$i.csr" $gargs --out "$T/x$i.pem" \
	    >/dev/null 2>&1 || not_ok "issue device x$i"
	i=$((i + 1))
done
ncases=${ACCESS_CASES:-12}
agree=0 disagree=0 n=0
c=1
while [ $c -le "$ncases" ]; do
	sec resource del cmp >/dev/null 2>&1
	sec resource add cmp >/dev/null || not_ok "case $c: resource add"
	# per group: 0 nothing, 1 allow print, 2 deny print, 3 allow any,
	# 4 deny any, 5 allow scan
	set -- $(awk -v s="$c" 'BEGIN { srand(s); for (g = 1; g <= 3; g++) print int(rand() * 6) }')
	allow="" deny=""
	g=1
	for k in "$@"; do
		case $k in
		1) sec rule add --group "g$g" --resource cmp --action print --allow; allow="$allow
print = g$g" ;;
		2) sec rule add --group "g$g" --resource cmp --action print --deny; deny="$deny
print = g$g" ;;
		3) sec rule add --group "g$g" --resource cmp --allow; allow="$allow
* = g$g" ;;
		4) sec rule add --group "g$g" --resource cmp --deny; deny="$deny
* = g$g" ;;
		5) sec rule add --group "g$g" --resource cmp --action scan --allow; allow="$allow
scan = g$g" ;;
		esac >/dev/null
		g=$((g + 1))
	done
	printf '[resource]\nname = cmp\nstale_crl = closed\n[allow]%s\n[deny]%s\n' "$allow" "$deny" \
	    > "$T/cmp.ini"
	i=0
	while [ $i -lt 8 ]; do
		for act in print scan; do
			central=$(curl -s -H "Authorization: Bearer $(cat "$T/operator.token")" \
			    -H 'Content-Type: application/json' \
			    --data "{\"device\":{\"mac\":\"02:00:00:00:22:0$i\"},\"resource\":\"cmp\",\"action\":\"$act\"}" \
			    "$URL/v1/authorize/try" | jq -r .decision)
			local_=$("$DA" --state "$T/S" policy-check --policy "$T/cmp.ini" --cert "$T/x$i.pem" \
			    --action "$act" | cut -d: -f1)
			n=$((n + 1))
			if [ "$central" = "$local_" ]; then
				agree=$((agree + 1))
			else
				disagree=$((disagree + 1))
				echo "# case $c ($*), device x$i, $act: central $central, local $local_"
			fi
		done
		i=$((i + 1))
	done
	c=$((c + 1))
done
check_eq "central and local agree on $n generated questions ($ncases cases)" "$n/0" "$agree/$disagree"

# --- provd stopped: the local policy decides -----------------------------------
stop_provd
check_out "provd stopped: A may print by the local policy" \
    '^granted: local policy \(provd cannot be reached\): allowed by policy line 6$' ask A print
check_fails_out "  B may not (contractors, deny wins)" \
    '^denied: local policy \(provd cannot be reached\): denied by policy line 9$' ask B print
check_fails_out "  C may not print (no rule)" 'no rule allows this$' ask C print
check_out "  C may ask for status (*)" '^granted: local policy .*line 7$' ask C status
stop_serve
check "S serves printer centrally only (no --policy)" serve --resource printer \
    --provd "$URL" --token-file "$AUTH"
check_fails_out "provd stopped, no local policy: denied (fail closed)" \
    '^denied: provd cannot be reached: .*\(no local policy: fail closed\)$' ask A print
stop_serve

# --- a stale CRL ------------------------------------------------------------------
cat > "$T/ca.cnf" <<EOF
[ca]
default_ca = x
[x]
database = $T/index.txt
crlnumber = $T/crlnumber.txt
default_md = sha256
EOF
: > "$T/index.txt"
echo 1000 > "$T/crlnumber.txt"
openssl ca -config "$T/ca.cnf" -cert "$CA/ca.crt" -keyfile "$CA/ca.key" -gencrl -crlsec 1 \
    -out "$T/stale.pem" >/dev/null 2>&1
check "a CRL valid for one second, made with openssl ca" \
    openssl crl -in "$T/stale.pem" -outform DER -out "$T/S/crl.der"
sleep 2
sed 's/^stale_crl = closed/stale_crl = open/' "$T/printer-policy.ini" > "$T/open.ini"
check "S serves printer from the policy, the CRL stale (stale_crl = closed)" serve \
    --resource printer --policy "$T/printer-policy.ini"
check_fails_out "  A is denied: the CRL is stale" \
    '^denied: local policy: the cached CRL is stale \(stale_crl = closed\)$' ask A print
stop_serve
check "S serves with stale_crl = open" serve --resource printer --policy "$T/open.ini"
check_out "  A may print (decided by groups)" '^granted: local policy: allowed by policy line 6$' \
    ask A print
check_fails_out "  C may not" '^denied: local policy: no rule allows this$' ask C print
stop_serve

# --- malformed policy files: serve refuses to start -------------------------------
bad() {	# bad NAME TEXT PATTERN
	printf '%b' "$2" > "$T/$1.ini"
	check_fails_out "malformed policy ($1): serve refuses, naming the line" \
	    "the policy is refused: .*$1.ini$3" \
	    "$DA" --state "$T/S" serve --air "$AIR" --resource printer --policy "$T/$1.ini" --once
}
H='[resource]\nname = printer\nstale_crl = closed\n'
bad unknown-key "${H}stale = open\n" ':4: unknown key "stale"'
bad stale-value '[resource]\nname = printer\nstale_crl = maybe\n' ':3: \[resource\] stale_crl must be open or closed'
bad unknown-section "${H}[alow]\nprint = lab\n" ':4: unknown section \[alow\]'
bad empty-list "${H}[allow]\nprint =\n" ':5: \[allow\] print lists nobody'
bad bad-action "${H}[deny]\npr!nt = lab\n" ':5: \[deny\] "pr!nt" is not an action'
bad bad-device "${H}[allow]\nprint = device:01:00:5e:00:00:01\n" ':5: device:01:00:5e:00:00:01 is not'
bad long-name "${H}[allow]\nprint = owner:$(printf '%0130d' 0)\n" ':5: a name longer than 128 bytes'
bad long-line "${H}[allow]\nprint = $(printf '%0200d' 0)\n" ':5: line longer than 190 bytes'
bad syntax "${H}print lab\n" ':4: syntax error'
bad no-name '[resource]\nstale_crl = open\n' ': no \[resource\] name'
check_fails_out "a policy of another resource: serve refuses" 'is the policy of printer, not of door' \
    "$DA" --state "$T/S" serve --air "$AIR" --resource door --policy "$T/printer-policy.ini" --once
check_fails_out "a policy file that does not exist: serve refuses" 'the policy is refused: .*nothing.ini: No such file' \
    "$DA" --state "$T/S" serve --air "$AIR" --resource printer --policy "$T/nothing.ini" --once
check_fails_out "--resource alone: usage error" '--resource needs --policy' \
    "$DA" --state "$T/S" serve --air "$AIR" --resource printer --once

for f in "$T"/S.log; do
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
		not_ok "devagent ran clean under the sanitizers"; grep -A 20 Sanitizer "$f" | head -40
	fi
done
cleanup_devices
t_done
