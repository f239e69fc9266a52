#!/bin/sh
# The web console's server side: accounts made with "provd admin", login
# with POST /v1/session (cookie flags over HTTP and HTTPS, one answer for a
# wrong password and an unknown name in about the same time, throttling per
# name and per address before any hashing, and back after the window),
# cookie authentication with the account's role, the CSRF header on every
# change, logout, idle and absolute expiry, passwd/remove/disable ending
# sessions at once, the audit rows, no password in the log; the static
# files with their headers, and every way out of the console directory
# refused.
PROVD_LOG_LEVEL=debug
. "$(dirname "$0")/lib.sh"

# --- the console directory -----------------------------------------------
C=$T/console
mkdir -p "$C/sub" "$T/elsewhere"
cp "$top/server/console/index.html" "$top/server/console/app.js" "$top/server/console/app.css" "$C/"
echo '{"ok":true}' > "$C/sub/data.json"
echo 'hidden' > "$C/.secret.js"
echo 'outside' > "$T/elsewhere/out.js"
echo 'outside' > "$T/outside.js"
ln -s "$T/elsewhere/out.js" "$C/link-out.js"	# a link out of the directory
ln -s ../outside.js "$C/sub/rel-out.js"		# a relative one
ln -s app.js "$C/link-in.js"			# a link that stays inside
ln -s .secret.js "$C/to-dot.js"			# to a dotfile inside
mkdir -p "$C/dir.js"
head -c 3000000 /dev/zero > "$C/big.js"

# restart: provd again with $T/provd.conf (its log kept in $T/all.log)
restart() {
	stop_provd
	cat "$T/provd.log" >> "$T/all.log"
	rm -f "$T/provd.out"	# so that the new port is read, not the old one
	start_provd
}
# console_conf IDLE MAX FAILMAX ADDRMAX WINDOW [more lines]: $T/provd.conf
console_conf() {
	write_conf
	cat >> "$T/provd.conf" <<-EOF
	[console]
	dir = $C
	session_idle_s = $1
	session_max_s = $2
	login_fail_max = $3
	login_fail_max_addr = $4
	login_window_s = $5
	EOF
}
console_conf 1800 43200 3 7 10
check_out "configuration with [console] OK" '^configuration OK$' provd -n
check "start provd" start_provd || { t_done; exit 1; }
OP=$T/operator.token

# --- accounts ------------------------------------------------------------
PW_A='alice-correct-horse-1'
PW_B='bob-battery-staple-22'
PW_C='carol-stapled-horse-333'
PW_NEW='bob-changed-password-4444'
printf '%s\n' "$PW_A" > "$T/pw_a"
printf '%s\n' "$PW_B" > "$T/pw_b"
printf '%s\n' "$PW_C" > "$T/pw_c"
printf '%s\n' "$PW_NEW" > "$T/pw_new"
printf 'short-pw\n' > "$T/pw_short"
chmod 600 "$T"/pw_*
check_out "admin add alice (admin)" 'console account alice \(admin\) added' provd admin add alice --role admin --password-file "$T/pw_a"
check_out "admin add bob (viewer), options first" 'added' provd admin add --role viewer --password-file "$T/pw_b" bob
check_out "admin add carol (operator)" 'added' provd admin add carol --role operator --password-file "$T/pw_c"
check_fails_out "a second alice is refused" 'exists' provd admin add alice --role viewer --password-file "$T/pw_b"
check_fails_out "a password under 12 bytes is refused" '12 to 1024' provd admin add dave --role viewer --password-file "$T/pw_short"
check_fails_out "the authorizer role is not a console role" 'viewer, operator, security or admin' provd admin add dave --role authorizer --password-file "$T/pw_b"
check_fails_out "add without --role" 'needed there' provd admin add dave --password-file "$T/pw_b"
check_fails_out "a name with a space is refused" 'printable ASCII' provd admin add 'da ve' --role viewer --password-file "$T/pw_b"
check_fails_out "a 56-byte name is refused" 'printable ASCII' provd admin add "$(printf 'n%.0s' $(seq 1 56))" --role viewer --password-file "$T/pw_b"
check_fails_out "no terminal and no password file" 'password-file' sh -c "setsid '$BIN/provd' -c '$T/provd.conf' admin add dave --role viewer </dev/null"
check_fails_out "remove of an unknown account" 'no such account' provd admin remove nobody
check_out "admin list" '^alice +admin +enabled' provd admin list
check_out "admin list shows bob the viewer" '^bob +viewer +enabled +0 +never' provd admin list
check_eq "only scrypt records are stored" "3" "$(sql "select count(*) from console_accounts where password_hash ~ '^scrypt[\$]32768[\$]8[\$]1[\$][A-Za-z0-9+/]{22}==[\$][A-Za-z0-9+/]{43}=\$'")"
check_eq "no password in the database" "0" "$(pg_dump -a -t console_accounts "$dbname" | grep -cF -e "$PW_A" -e "$PW_B" -e "$PW_C")"
check_eq "account.add audited three times by system" "3" "$(sql "select count(*) from audit_log where action = 'account.add' and actor = 'system'")"

# --- helpers -------------------------------------------------------------
# login NAME PASSWORD [JAR] [URL] [curl options]: the status; headers in
# $T/h, body in $T/resp, the time in $T/time
login() {
	jq -cn --arg n "$1" --arg p "$2" '{name: $n, password: $p}' > "$T/login.json"
	_jar=${3:-$T/jar}; _url=${4:-$URL}
	if [ $# -ge 4 ]; then shift 4; else set --; fi
	curl -s "$@" -o "$T/resp" -D "$T/h" -w '%{http_code} %{time_total}' -c "$_jar" \
	    -H 'Content-Type: application/json' --data-binary "@$T/login.json" "$_url/v1/session" > "$T/st"
	cut -d' ' -f2 "$T/st" > "$T/time"
	cut -d' ' -f1 "$T/st"
}
# cget JAR PATH: GET with the cookie; the status, body in $T/resp
cget() { curl -s -o "$T/resp" -D "$T/h" -w '%{http_code}' -b "$1" "$URL$2"; }
# csend JAR METHOD PATH CSRF [JSON]: a change with the cookie and (unless
# CSRF is "-") the X-CSRF-Token header
csend() {
	if [ "$4" = - ]; then set -- "$1" "$2" "$3" "" "${5:-}"; _h="X-Nothing: 1"; else _h="X-CSRF-Token: $4"; fi
	if [ -n "${5:-}" ]; then
		curl -s -o "$T/resp" -D "$T/h" -w '%{http_code}' -b "$1" -X "$2" -H "$_h" \
		    -H 'Content-Type: application/json' --data-binary "$5" "$URL$3"
	else
		curl -s -o "$T/resp" -D "$T/h" -w '%{http_code}' -b "$1" -X "$2" -H "$_h" "$URL$3"
	fi
}
jr() { jq -r "$1" "$T/resp"; }
hdr() { tr -d '\r' < "$T/h" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }
audits() { sql "select count(*) from audit_log where action = '$1'${2:+ and $2}"; }
# faster A B: 1 when the time A is under half of B (seconds, decimals)
faster() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b / 2) ? 1 : 0 }'; }
# similar A B: 1 when A and B are within 50% of the larger
similar() { awk -v a="$1" -v b="$2" 'BEGIN { m = a > b ? a : b; d = a - b; if (d < 0) d = -d; print (d <= m / 2) ? 1 : 0 }'; }

# --- login ---------------------------------------------------------------
check_eq "alice logs in: 201" 201 "$(login alice "$PW_A")"
login_time=$(cat "$T/time")
check_eq "the answer names her, her role and the idle timeout" "alice|admin|1800" "$(jr '[.name, .role, (.idle_timeout_s | tostring)] | join("|")')"
check_out "the CSRF token is 43 base64url characters" '^[A-Za-z0-9_-]{43}$' jr .csrf_token
CSRF_A=$(jr .csrf_token)
check_eq "expires_at is 12 hours ahead" 1 "$(jq '((.expires_at | fromdateiso8601) - now) as $d | if $d > 43140 and $d <= 43201 then 1 else 0 end' "$T/resp")"
cookie=$(hdr Set-Cookie)
check_out "Set-Cookie: provd_session, HttpOnly, SameSite=Strict, Path=/" '^provd_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/$' echo "$cookie"
check_eq "no Secure over plain HTTP" 0 "$(echo "$cookie" | grep -c Secure)"
TOK_A=$(echo "$cookie" | sed 's/^provd_session=\([^;]*\);.*/\1/')
check_eq "the session is stored by the token's SHA-256" 1 "$(sql "select count(*) from console_sessions where token_sha256 = sha256('$TOK_A'::bytea)")"
cp "$T/jar" "$T/jar_a"
check_eq "GET /v1/session with the cookie" "200 alice admin $CSRF_A" "$(cget "$T/jar_a" /v1/session) $(jr '.name + " " + .role + " " + .csrf_token')"
check_eq "GET /v1/session without a cookie: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/session")"
check_eq "GET /v1/session with a made-up cookie: 401" "401 unauthorized" "$(curl -s -o "$T/resp" -w '%{http_code}' -b "provd_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "$URL/v1/session") $(jr .error.code)"
check_eq "... saying the session has ended" "The console session has ended or expired; log in again." "$(jr .error.message)"
check_eq "GET /v1/session with a malformed cookie: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -b "provd_session=x'; drop table x" "$URL/v1/session")"
check_eq "GET /v1/session with an API token: 401, no session" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$OP")" "$URL/v1/session")"
check_eq "a login body that is not JSON-typed: 415" 415 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' --data-binary @"$T/login.json" "$URL/v1/session")"
check_eq "a login body without a Content-Type: 415" 415 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type:' --data-binary @"$T/login.json" "$URL/v1/session")"
check_eq "a login without password: 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary '{"name":"alice"}' "$URL/v1/session")"
check_eq "a login with an unknown field: 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary '{"name":"alice","password":"x","otp":1}' "$URL/v1/session")"

# wrong password and unknown name: one answer, about the same time
check_eq "alice with a wrong password: 401" 401 "$(login alice 'wrong-password-1234' "$T/jar_x")"
t_wrong1=$(cat "$T/time"); body_wrong=$(jq -c 'del(.error.request_id)' "$T/resp")
check_eq "an unknown name: 401" 401 "$(login mallory 'wrong-password-1234' "$T/jar_x")"
t_unknown1=$(cat "$T/time"); body_unknown=$(jq -c 'del(.error.request_id)' "$T/resp")
check_eq "the same body for both" "$body_wrong" "$body_unknown"
check_eq "... which says" "unauthorized|The name or the password is wrong." "$(jr '.error.code + "|" + .error.message')"
check_eq "no cookie set on failure" "" "$(hdr Set-Cookie)"
check_eq "a malformed name (too long): 401 too" 401 "$(login "$(printf 'm%.0s' $(seq 1 80))" 'wrong-password-1234' "$T/jar_x")"
t_unknown2=$(cat "$T/time")
check_eq "alice with a password over 1024 bytes: 401" 401 "$(login alice "$(printf 'p%.0s' $(seq 1 1100))" "$T/jar_x")"
t_wrong2=$(cat "$T/time")
check_eq "bob with a wrong password: 401" 401 "$(login bob 'wrong-password-1234' "$T/jar_x")"
t_wrong3=$(cat "$T/time")
check_eq "another unknown name: 401" 401 "$(login trent 'wrong-password-1234' "$T/jar_x")"
t_unknown3=$(cat "$T/time")
echo "# login times: ok $login_time, wrong password $t_wrong1 $t_wrong2 $t_wrong3, unknown name $t_unknown1 $t_unknown2 $t_unknown3"
# the fastest of three of each, so that a busy machine's outliers do not count
min3() { printf '%s\n' "$@" | sort -g | head -n 1; }
check_eq "a wrong password and an unknown name take similar time" 1 \
    "$(similar "$(min3 $t_wrong1 $t_wrong2 $t_wrong3)" "$(min3 $t_unknown1 $t_unknown2 $t_unknown3)")"
check_eq "session.login_failed audited (6), the unknown names without their name" "6 3" \
    "$(audits session.login_failed) $(audits session.login_failed "object = '' and actor = 'client:127.0.0.1'")"
check_eq "the failed logins' reasons" "malformed_name unknown_name unknown_name wrong_password wrong_password wrong_password" \
    "$(sql "select string_agg(detail->>'reason', ' ' order by detail->>'reason') from audit_log where action = 'session.login_failed'")"
sleep 10	# the window of those failures ends

# --- throttling: per name, then per address ------------------------------
seq0=$(sql "select max(seq) from audit_log")
for i in 1 2 3; do login bob "wrong-password-$i$i$i$i" "$T/jar_x" >/dev/null; done
t_fail=$(cat "$T/time")
check_eq "bob's 4th attempt, with the right password: 429" 429 "$(login bob "$PW_B" "$T/jar_x")"
t_429=$(cat "$T/time")
check_eq "... too_many_requests" too_many_requests "$(jr .error.code)"
check_out "... with Retry-After of at most the window" '^([1-9]|10)$' hdr Retry-After
echo "# a failed login took $t_fail s, a throttled one $t_429 s"
check_eq "... refused before any hashing (in under half a login's time)" 1 "$(faster "$t_429" "$t_fail")"
check_eq "alice is not throttled by bob's failures" 201 "$(login alice "$PW_A" "$T/jar_a2")"
# bob's 3 and these 4 failures make 7 from 127.0.0.1 (alice's success gave hers back)
for i in 1 2 3 4; do login "nobody$i" "wrong-password-xxxx" "$T/jar_x" >/dev/null; done
check_eq "after 7 failures from one address, alice too gets 429" 429 "$(login alice "$PW_A" "$T/jar_x")"
check_eq "throttled attempts are not audited" "7 1" "$(audits session.login_failed "seq > $seq0") $(audits session.login "seq > $seq0")"
sleep 11
check_eq "after the window bob logs in" 201 "$(login bob "$PW_B" "$T/jar_b")"
CSRF_B=$(jr .csrf_token)
check_eq "... and carol" 201 "$(login carol "$PW_C" "$T/jar_c")"
CSRF_C=$(jr .csrf_token)
check_eq "a success clears the name's counter" "0" "$(sql "select count(*) from console_login_throttle where kind = 'name' and key = 'bob'")"
# six attempts at once for one (unknown) name: the limit holds, 3 counted and 3 refused
pids=""
for i in 1 2 3 4 5 6; do
	jq -cn --arg p "wrong-password-$i$i$i$i" '{name: "dave", password: $p}' > "$T/par$i.json"
	curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
	    --data-binary "@$T/par$i.json" "$URL/v1/session" > "$T/par$i.st" &
	pids="$pids $!"
done
wait $pids	# (not provd, which runs in the background too)
check_eq "six logins at once: three 401, three 429" "401 401 401 429 429 429" "$(cat "$T"/par*.st | sort | tr '\n' ' ' | sed 's/ $//')"

# --- roles through the cookie --------------------------------------------
MAC=02:00:00:00:cc:01
new_csr "$T/d.csr"
check "issue a device with an operator token" provctl issue --mac $MAC --csr "$T/d.csr" --out "$T/d.pem"
check_eq "bob (viewer) lists devices" 200 "$(cget "$T/jar_b" /v1/devices)"
check_eq "... and sees the device" "$MAC" "$(jr '.devices[0].mac')"
check_eq "bob may not revoke, even with his CSRF token: 403 forbidden" "403 forbidden" \
    "$(csend "$T/jar_b" POST /v1/devices/$MAC/revoke "$CSRF_B" '{"reason":"keyCompromise"}') $(jr .error.code)"
check_eq "carol (operator) revoking without X-CSRF-Token: 403 csrf" "403 csrf" \
    "$(csend "$T/jar_c" POST /v1/devices/$MAC/revoke - '{"reason":"keyCompromise"}') $(jr .error.code)"
check_eq "... with an empty one: 403 csrf" "403 csrf" \
    "$(csend "$T/jar_c" POST /v1/devices/$MAC/revoke "" '{"reason":"keyCompromise"}') $(jr .error.code)"
check_eq "... with bob's: 403 csrf" "403 csrf" \
    "$(csend "$T/jar_c" POST /v1/devices/$MAC/revoke "$CSRF_B" '{"reason":"keyCompromise"}') $(jr .error.code)"
check_eq "... with a wrong one of the right length: 403 csrf" "403 csrf" \
    "$(csend "$T/jar_c" POST /v1/devices/$MAC/revoke "$(echo "$CSRF_C" | tr 'A-Za-z' 'B-ZAb-za')" '{"reason":"keyCompromise"}') $(jr .error.code)"
check_eq "none of those changed anything" "active 0" "$(sql "select status from devices where mac = '$MAC'") $(audits certificate.revoke)"
check_eq "with her token: 200" 200 "$(csend "$T/jar_c" POST /v1/devices/$MAC/revoke "$CSRF_C" '{"reason":"keyCompromise"}')"
check_eq "revoked, audited as console:carol" "revoked 1" "$(sql "select status from devices where mac = '$MAC'") $(audits certificate.revoke "actor = 'console:carol'")"
check_eq "an Authorization header decides alone (a bad token with a good cookie: 401)" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' -b "$T/jar_c" -H 'Authorization: Bearer pvd_nope' "$URL/v1/devices")"
check_eq "the authorizer-only route refuses a session: 403" 403 \
    "$(csend "$T/jar_c" POST /v1/authorize "$CSRF_C" '{"device":{"mac":"02:00:00:00:cc:01"},"resource":"x","action":"open"}')"
check_eq "alice (admin) may resync the directory route's role check (503 without LDAP, not 403)" 503 \
    "$(csend "$T/jar_a" POST /v1/directory/resync "$CSRF_A")"

# --- logout --------------------------------------------------------------
check_eq "DELETE /v1/session without the CSRF header: 403 csrf" "403 csrf" "$(csend "$T/jar_a" DELETE /v1/session -) $(jr .error.code)"
check_eq "... the session still works" 200 "$(cget "$T/jar_a" /v1/session)"
check_eq "logout with the header: 204" 204 "$(csend "$T/jar_a" DELETE /v1/session "$CSRF_A")"
check_out "... the cookie is cleared" '^provd_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0$' hdr Set-Cookie
check_eq "the old cookie is refused at once" "401 401" "$(cget "$T/jar_a" /v1/session) $(cget "$T/jar_a" /v1/devices)"
check_eq "session.logout audited as console:alice" 1 "$(audits session.logout "actor = 'console:alice'")"
check_eq "alice's other session is still there" 200 "$(cget "$T/jar_a2" /v1/session)"

# --- passwd, remove, disable -----------------------------------------------
check_out "admin passwd bob ends his session" '1 session' provd admin passwd bob --password-file "$T/pw_new"
check_eq "bob's cookie is refused at once" 401 "$(cget "$T/jar_b" /v1/devices)"
check_eq "his old password fails" 401 "$(login bob "$PW_B" "$T/jar_x")"
check_eq "his new one works" 201 "$(login bob "$PW_NEW" "$T/jar_b")"
check_out "admin remove carol" 'removed; 1 session' provd admin remove carol
check_eq "carol's cookie is refused at once" 401 "$(cget "$T/jar_c" /v1/session)"
check_eq "carol cannot log in" 401 "$(login carol "$PW_C" "$T/jar_x")"
check_out "admin disable alice" 'disabled; 1 session' provd admin disable alice
check_eq "alice's cookie is refused" 401 "$(cget "$T/jar_a2" /v1/session)"
check_eq "a disabled account cannot log in (the same 401)" "401 The name or the password is wrong." "$(login alice "$PW_A" "$T/jar_x") $(jr .error.message)"
check_out "disabling again says so" 'already disabled' provd admin disable alice
check_out "admin enable alice" 'enabled' provd admin enable alice
check_eq "alice logs in again" 201 "$(login alice "$PW_A" "$T/jar_a")"
check_eq "account changes audited" "1 1 1 1" "$(audits account.password) $(audits account.remove) $(audits account.disable) $(audits account.enable)"
check_eq "session.login audited for each login, as the account" 6 "$(audits session.login "actor = 'console:' || object")"
check "the audit chain verifies" provd audit verify

# --- static files --------------------------------------------------------
# get_static PATH [curl options]: the status; headers in $T/h, body in $T/resp
get_static() { _p=$1; shift; curl -s --path-as-is "$@" -o "$T/resp" -D "$T/h" -w '%{http_code}' "$URL$_p"; }
check_eq "GET /console redirects, with the console's headers" "301 /console/ DENY" "$(get_static /console) $(hdr Location) $(hdr X-Frame-Options)"
check_eq "GET /console/ is index.html" 200 "$(get_static /console/)"
check "... the same bytes" cmp "$T/resp" "$C/index.html"
check_eq "... text/html" "text/html; charset=utf-8" "$(hdr Content-Type)"
check_eq "... the Content-Security-Policy" "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" "$(hdr Content-Security-Policy)"
check_eq "... nosniff, no-referrer, DENY, no-cache" "nosniff no-referrer DENY no-cache" \
    "$(hdr X-Content-Type-Options) $(hdr Referrer-Policy) $(hdr X-Frame-Options) $(hdr Cache-Control)"
etag=$(hdr ETag)
check_eq "an unchanged file: 304" 304 "$(get_static /console/ -H "If-None-Match: $etag")"
check_eq "app.js" "200 text/javascript; charset=utf-8" "$(get_static /console/app.js) $(hdr Content-Type)"
check_eq "app.css" "200 text/css; charset=utf-8" "$(get_static /console/app.css) $(hdr Content-Type)"
check_eq "a file in a subdirectory" "200 application/json" "$(get_static /console/sub/data.json) $(hdr Content-Type)"
check_eq "a link that stays inside is followed" 200 "$(get_static /console/link-in.js)"
check_eq "the page has no inline script, style or handler" 0 "$(grep -cE '<script>|<script [^>]*>[^<]|<style| style=| on[a-z]+=' "$top/server/console/index.html")"
for p in '/console/../provd.conf' '/console/%2e%2e/outside.js' '/console/%2E%2E%2Foutside.js' '/console/sub/../app.js' \
    '/console/..%2f..%2fprovd.conf' '/console/.secret.js' '/console/%2esecret.js' '/console/sub/.%2e/app.js' \
    '/console/link-out.js' '/console/sub/rel-out.js' '/console/to-dot.js' '/console/dir.js' '/console/sub' \
    '/console/big.js' '/console/app.exe' '/console/nothing.js' '/console//app.js' '/console/app.js%00.css' \
    '/console/%252e%252e/outside.js' '/console/sub%5c..%5capp.js'; do
	st=$(get_static "$p")
	if grep -qE 'outside|hidden' "$T/resp"; then st="$st, with the file's content"; fi
	case $st in 404|500) ok "$p refused ($st)";; *) not_ok "$p refused: got $st";; esac
done
check_eq "POST on a console file: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/console/app.js")"
check_eq "the static files need no login" 200 "$(get_static /console/app.js -b "provd_session=garbage")"

# --- idle and absolute expiry --------------------------------------------
console_conf 2 6 3 8 5
check "restart provd with idle 2 s and at most 6 s" restart
check_eq "alice logs in" 201 "$(login alice "$PW_A" "$T/jar_a")"
check_eq "idle_timeout_s is 2" 2 "$(jr .idle_timeout_s)"
sleep 3
check_eq "idle for 3 s: 401" 401 "$(cget "$T/jar_a" /v1/session)"
check_eq "alice logs in again" 201 "$(login alice "$PW_A" "$T/jar_a")"
busy=""
for i in 1 2 3 4; do sleep 1; busy="$busy$(cget "$T/jar_a" /v1/session) "; done
check_eq "a session in use lives past the idle time" "200 200 200 200 " "$busy"
sleep 2.5
check_eq "... but not past its absolute expiry, in use or not" 401 "$(cget "$T/jar_a" /v1/session)"

# --- over HTTPS: Secure ----------------------------------------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/server.key" 2>/dev/null
openssl req -new -key "$T/server.key" -subj "/CN=provd.test" -out "$T/server.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" -CAcreateserial \
    -days 1 -extfile "$T/ext" -out "$T/server.crt" 2>/dev/null
console_conf 1800 43200 3 8 5
sed -i "s|^threads = 2|threads = 2\ntls_cert = $T/server.crt\ntls_key = $T/server.key|" "$T/provd.conf"
check "restart provd with TLS" restart
HTTPS=$(echo "$URL" | sed 's|^http:|https:|')
check_eq "login over HTTPS" 201 "$(login alice "$PW_A" "$T/jar_s" "$HTTPS" --cacert "$T/ca/root.crt")"
check_out "Set-Cookie carries Secure" '^provd_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/; Secure$' hdr Set-Cookie
check_eq "the cookie works over HTTPS" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/ca/root.crt" -b "$T/jar_s" "$HTTPS/v1/session")"

# --- configuration ----------------------------------------------------------
stop_provd
cat "$T/provd.log" >> "$T/all.log"
console_conf 100 50 3 8 5
check_fails_out "idle longer than the absolute expiry is refused" 'session_idle_s \(100\) must not exceed' provd -n
console_conf 1800 43200 3 8 5
sed -i "s|^dir = $C\$|dir = $T/no-such-dir|" "$T/provd.conf"
check_fails_out "a console.dir that does not exist is refused by -n" 'console.dir' provd -n
console_conf 1800 43200 0 8 5
check_fails_out "login_fail_max 0 is refused" 'login_fail_max' provd -n

# --- secrets --------------------------------------------------------------
for pw in "$PW_A" "$PW_B" "$PW_C" "$PW_NEW" wrong-password-1234; do
	check_eq "the password $(echo "$pw" | cut -c1-6)... is nowhere in provd's log" 0 \
	    "$(cat "$T/all.log" "$T/provd.out" | grep -cF -- "$pw")"
done
check_eq "nor is an unknown name tried" 0 "$(grep -cF mallory "$T/all.log")"
check_eq "nor is a session token" 0 "$(grep -cF -- "$TOK_A" "$T/all.log")"
check_eq "the log is a debug log of every run" 3 "$(grep -c 'console_start: web console files from' "$T/all.log")"
check_eq "nor in the audit log" 0 "$(sql "select count(*) from audit_log where detail::text like '%' || '$PW_A' || '%' or detail::text like '%$TOK_A%'")"
cp "$T/all.log" "$T/provd.log"	# t_done looks for sanitizer reports in every run
t_done
