#!/bin/sh
# Consumer pairing end to end (DESIGN.md flow 6, seed Fig. 9): devices made
# with certificates from a manufacturer's CA (openssl, no provd), paired on
# the sim air with --accept / --no-display and through a pseudo-terminal
# answering "y"; reconnect by certificate alone; faults, each a check: a
# user rejecting, a third device asking a paired one, a device of another
# manufacturer, and a crash (PROVD_DEVAGENT_CRASH_AT) of either side at
# every step of the two-phase store, after which both devices, started
# again, end paired or neither, with no half left.
. "$(dirname "$0")/lib.sh"

AIR=$T/air
mkdir -p "$AIR"
DA=$BIN/devagent
export PROVD_AIR="$AIR"

A=02:00:00:00:60:0a; B=02:00:00:00:60:0b; C=02:00:00:00:60:0c; D=02:00:00:00:60:0d
E=02:00:00:00:60:0e; F=02:00:00:00:60:0f; G=02:00:00:00:60:10; H=02:00:00:00:60:11
K=02:00:00:00:60:12; L=02:00:00:00:60:13

bg_pids=""
cleanup_devices() {
	for p in $bg_pids; do kill "$p" 2>/dev/null; done
	for p in $bg_pids; do wait "$p" 2>/dev/null; done
	bg_pids=""
}
trap 'cleanup_devices; t_cleanup' EXIT

wait_for() {
	_i=0
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1)); [ $_i -lt 200 ] || return 1; sleep 0.05
	done
}

# mk_ca DIR "O": a manufacturer's root CA and its (empty) CRL
mk_ca() {
	mkdir -p "$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ca.key" \
	    -out "$1/ca.crt" -days 3650 -subj "/O=$2/CN=$2 Root CA" \
	    -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || return 1
	: > "$1/index.txt"
	echo 01 > "$1/crlnumber"
	cat > "$1/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $1/index.txt
crlnumber = $1/crlnumber
certificate = $1/ca.crt
private_key = $1/ca.key
default_md = sha256
default_crl_days = 30
EOF
	openssl ca -config "$1/ca.cnf" -gencrl -out "$1/crl.pem" 2>/dev/null
}
# mk_dev NAME ADDR CADIR MODEL: $T/NAME made with the manufacturer's certificate
mk_dev() {
	_d=$T/$1 _a=$2 _c=$3
	_hex=$(echo "$_a" | tr -d ':')
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$_d.key" \
	    -out "$_d.csr" -subj "/O=$(openssl x509 -in "$_c/ca.crt" -noout -subject -nameopt multiline |
	    sed -n 's/^ *organizationName *= //p')/CN=$4/serialNumber=$_a" 2>/dev/null || return 1
	printf 'subjectAltName=URI:urn:dev:mac:%s\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\n' \
	    "$_hex" > "$_d.ext"
	openssl x509 -req -in "$_d.csr" -CA "$_c/ca.crt" -CAkey "$_c/ca.key" -CAcreateserial \
	    -days 365 -sha256 -extfile "$_d.ext" -out "$_d.crt" 2>/dev/null || return 1
	"$DA" --state "$_d" init --addr "$_a" --name "$1" --model "$4" --manufacturer-cert "$_d.crt" \
	    --manufacturer-key "$_d.key" --chain "$_c/ca.crt" --crl "$_c/crl.pem"
}
# listen NAME [args]: devagent pair on NAME in the background (button pressed)
listen() {
	_n=$1; shift
	: > "$T/$_n.pair"
	"$DA" --state "$T/$_n" pair --timeout 10 --auth-timeout 5 "$@" >"$T/$_n.pair" 2>&1 &
	eval "pid_$_n=\$!"
	bg_pids="$bg_pids $!"
	wait_for "$T/$_n.pair" 'discoverable|already|settled'
}
# result NAME: the exit status of NAME's background pair
result() { eval "_p=\$pid_$1"; wait "$_p"; }
pairwith() { _n=$1 _a=$2; shift 2; "$DA" --state "$T/$_n" pair --with "$_a" --auth-timeout 5 "$@"; }
# paired NAME ADDR: NAME holds a committed pairing with ADDR, nothing pending
paired() { grep -qx "peer=$2" "$T/$1/pairing" && [ ! -e "$T/$1/pairing.pending" ]; }
unpaired() { [ ! -e "$T/$1/pairing" ] && [ ! -e "$T/$1/pairing.pending" ]; }
same_id() { [ "$(grep '^id=' "$T/$1/pairing")" = "$(grep '^id=' "$T/$2/pairing")" ]; }
serve_once() {
	_n=$1; shift
	: > "$T/$_n.log"
	"$DA" --state "$T/$_n" serve --once --timeout 10 --auth-timeout 5 "$@" >"$T/$_n.log" 2>&1 &
	eval "pid_$_n=\$!"
	bg_pids="$bg_pids $!"
	wait_for "$T/$_n.log" 'in range'
}

check "manufacturer CA (openssl) with its CRL" mk_ca "$T/mfr" "Acme Audio"
check "another manufacturer's CA" mk_ca "$T/other" "Other Corp"
for d in "A $A Headset-H1" "B $B Phone-P7" "C $C Speaker-S2" "D $D Watch-W3" "E $E Earbuds-E4" \
    "G $G Tablet-T1" "H $H Dock-D9" "K $K Remote-R1"; do
	set -- $d
	check "device $1 made with the manufacturer's certificate" mk_dev "$1" "$2" "$T/mfr" "$3"
done
check "device F made by another manufacturer" mk_dev F "$F" "$T/other" "Knockoff-X"
check_fails_out "a certificate naming another address is refused at manufacture" \
    'does not name this device' "$DA" --state "$T/bad" init --addr "$L" \
    --manufacturer-cert "$T/A.crt" --manufacturer-key "$T/A.key" --chain "$T/mfr/ca.crt" \
    --crl "$T/mfr/crl.pem"
check_fails_out "a key that is not the certificate's is refused at manufacture" \
    'cannot install' "$DA" --state "$T/bad2" init --addr "$A" \
    --manufacturer-cert "$T/A.crt" --manufacturer-key "$T/B.key" --chain "$T/mfr/ca.crt" \
    --crl "$T/mfr/crl.pem"
check_out "show: a consumer device, unpaired" 'pairing: +none \(consumer device\)' \
    "$DA" --state "$T/A" show
check_fails_out "pair without a terminal and without --accept/--reject: refused" \
    'no terminal' sh -c "'$DA' --state '$T/A' pair </dev/null"

# --- pairing, accepted ---------------------------------------------------
check "A's button pressed (--accept)" listen A --accept
check_out "B pairs with A (no display): paired" "paired with $A \\(Headset-H1 \\(Acme Audio\\)\\)" \
    pairwith B "$A" --no-display
check "  A paired too" result A
check_out "  A's display showed B's identifier and model" "Pair with $B: Phone-P7 \\(Acme Audio\\)\\? accepted" \
    cat "$T/A.pair"
check "  A stores the pairing with B, nothing pending" paired A "$B"
check "  B stores the pairing with A, nothing pending" paired B "$A"
check "  both hold the same pairing id" same_id A B
check_out "  the pairing file names B's certificate (SHA-256)" \
    "fingerprint=$(openssl x509 -in "$T/B.crt" -outform DER | sha256sum | cut -c1-64)" cat "$T/A/pairing"
check_out "  mode 0600" '^-rw-------' ls -l "$T/A/pairing"
check_out "show: paired with B" "paired with $B" "$DA" --state "$T/A" show

# --- reconnect by certificate alone -------------------------------------
check "A serves" serve_once A
check_out "B connects to A: no prompt, the paired device, link encrypted" '^reply: hello$' \
    "$DA" --state "$T/B" connect "$A" --message hello --auth-timeout 5
check "  A took B as its paired device" wait_for "$T/A.log" "$B is the paired device"
result A

# --- a third device ------------------------------------------------------
check_fails_out "A (paired) refuses to pair again: already paired" "already paired with $B; unpair first" \
    "$DA" --state "$T/A" pair --accept
check "A serves" serve_once A
check_fails_out "C asks A (paired) to pair: refused" "already paired with $B; unpair first" \
    pairwith C "$A" --accept
result A
check "  C stored nothing" unpaired C
check "  A still paired with B only" paired A "$B"
check "A serves" serve_once A
check_fails_out "C connects to A: refused (not paired)" "not paired with $A" \
    "$DA" --state "$T/C" connect "$A" --message hi --auth-timeout 5
check "  A refused C: not its peer" wait_for "$T/A.log" "$C refused: $C is not this device's peer \\(paired with $B\\)"
result A

# --- the user rejects ----------------------------------------------------
check "D's button pressed (--reject)" listen D --reject
check_fails_out "E pairs with D: rejected on the other device" 'rejected on the other device; nothing stored' \
    pairwith E "$D" --no-display
check_fails "  D's pair ends in failure" result D
check_out "  D says it rejected" 'rejected here' cat "$T/D.pair"
check "  neither D nor E stores anything" sh -c "[ ! -e '$T/D/pairing' ] && [ ! -e '$T/D/pairing.pending' ] && [ ! -e '$T/E/pairing' ] && [ ! -e '$T/E/pairing.pending' ]"

# --- another manufacturer ------------------------------------------------
check "D's button pressed (--accept)" listen D --accept
check_fails_out "F (another manufacturer's CA) pairs with D: refused in the handshake" \
    'mutual authentication with .* failed' pairwith F "$D" --no-display
check_fails "  D's pair ends in failure" result D
check_out "  D was told its CA is unknown to F" 'unknown CA|not issued by this' cat "$T/D.pair"
check "  neither stores anything" sh -c "[ ! -e '$T/D/pairing' ] && [ ! -e '$T/F/pairing' ] && [ ! -e '$T/D/pairing.pending' ]"

# --- unpair, then pair with another -------------------------------------
check_fails_out "unpair of a device that is not the peer" "not paired with $C" "$DA" --state "$T/A" unpair "$C"
check_out "A unpairs B" "unpaired from $B" "$DA" --state "$T/A" unpair "$B"
check_out "B unpairs A" "unpaired from $A" "$DA" --state "$T/B" unpair "$A"
check "  both unpaired" sh -c "[ ! -e '$T/A/pairing' ] && [ ! -e '$T/B/pairing' ]"
check "A's button pressed" listen A --accept
check_out "C pairs with A (new owner)" "paired with $A" pairwith C "$A" --accept
check "  A paired too" result A
check "  A paired with C" paired A "$C"
check "  C paired with A" paired C "$A"
check "A serves" serve_once A
check_fails_out "B (unpaired by A) can no longer connect to A" "not paired with $A" \
    "$DA" --state "$T/B" connect "$A" --auth-timeout 5
result A

# --- interactive, through a pseudo-terminal ------------------------------
cat > "$T/ptyrun.py" <<'EOF'
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
deadline = time.time() + 20
answered = False
while time.time() < deadline:
    try:
        b = os.read(fd, 1024)
    except OSError:
        break
    if not b:
        break
    out += b
    if not answered and b"[y/N]" in out:
        os.write(fd, b"y\n")
        answered = True
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
check "K's button pressed (no display)" listen K --no-display
check_out "E pairs with K through a terminal, the user types y" "Pair with $K: Remote-R1 \\(Acme Audio\\)\\? \\[y/N\\]" \
    python3 "$T/ptyrun.py" "$DA" --state "$T/E" pair --with "$K" --auth-timeout 5
check "  E paired with K" paired E "$K"
check "  K paired with E" result K
check "  same pairing on both" same_id E K

# --- crashes at every step of the two-phase store ------------------------
# crash SIDE STEP EXPECT: G (initiator) pairs with H (responder); SIDE
# (G or H) dies at STEP; both start again (a command each, then the two
# meet: H serves, G connects); both end as EXPECT (both|neither), never
# one-sided, and no pending half is left
crash_case() {
	_side=$1 _step=$2 _expect=$3
	"$DA" --state "$T/G" unpair "$H" >/dev/null 2>&1
	"$DA" --state "$T/H" unpair "$G" >/dev/null 2>&1
	if [ "$_side" = H ]; then
		PROVD_DEVAGENT_CRASH_AT=$_step listen H --accept || return 1
		pairwith G "$H" --no-display >"$T/G.pair" 2>&1
	else
		listen H --accept || return 1
		PROVD_DEVAGENT_CRASH_AT=$_step pairwith G "$H" --no-display >"$T/G.pair" 2>&1
		_rc=$?
		[ $_rc = 86 ] || { echo "G did not crash at $_step (exit $_rc)"; return 1; }
	fi
	result H
	_rc=$?
	if [ "$_side" = H ] && [ $_rc != 86 ]; then echo "H did not crash at $_step (exit $_rc)"; return 1; fi
	# the next start of each
	"$DA" --state "$T/G" show >/dev/null 2>"$T/G.start" || return 1
	"$DA" --state "$T/H" show >/dev/null 2>"$T/H.start" || return 1
	[ ! -e "$T/G/pairing.pending" ] || { echo "the initiator kept a pending half"; return 1; }
	# and they meet
	serve_once H || return 1
	"$DA" --state "$T/G" connect "$H" --auth-timeout 5 >"$T/G.meet" 2>&1
	result H
	if [ -e "$T/G/pairing.pending" ] || [ -e "$T/H/pairing.pending" ]; then
		echo "a pending half is left"; ls "$T/G" "$T/H"; return 1
	fi
	if [ -e "$T/G/pairing" ] && [ -e "$T/H/pairing" ]; then
		same_id G H || { echo "different pairings"; return 1; }
		got=both
	elif [ ! -e "$T/G/pairing" ] && [ ! -e "$T/H/pairing" ]; then
		got=neither
	else
		echo "one-sided: G $(ls "$T/G" | tr '\n' ' ') / H $(ls "$T/H" | tr '\n' ' ')"
		cat "$T/G.pair" "$T/H.pair" "$T/G.meet" "$T/H.log"
		return 1
	fi
	[ "$got" = "$_expect" ] || { echo "expected $_expect, got $got"; cat "$T/G.pair" "$T/H.pair"; return 1; }
}
for c in "G decided neither" "G pending neither" "G prepared neither" "G committed both" \
    "G sent both" "H decided neither" "H pending neither" "H prepared both" \
    "H committed both" "H sent both"; do
	set -- $c
	check "crash of the $([ "$1" = G ] && echo initiator || echo responder) at \"$2\": after restart $3 paired" \
	    crash_case "$1" "$2" "$3"
done
# a pending half of an initiator goes at its next start
check "  (a pending initiator half written by hand)" sh -c "
    '$DA' --state '$T/G' unpair '$H' >/dev/null &&
    printf 'peer=$H\nfingerprint=%064d\nid=%032d\nrole=initiator\nmodel=x\n' 0 0 > '$T/G/pairing.pending'"
check_out "  is dropped at the next start" 'abandoned' "$DA" --state "$T/G" show
check "  and gone" test ! -e "$T/G/pairing.pending"

# --- every devagent ran clean under the sanitizers -----------------------
check_fails "no sanitizer report in any devagent output" \
    grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T"/*.pair "$T"/*.log "$T"/*.meet "$T"/last.out

cleanup_devices
t_done
