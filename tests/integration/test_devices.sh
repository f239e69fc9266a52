#!/bin/sh
# Devices, users and groups read over the REST API and provctl: keyset pages
# (no duplicates, none missing), filters, one device with its certificates;
# a device's owner changed (audited, a new policy version, seen at once by
# /v1/authorize through a rule on the user); a user deleted (refused while a
# rule names it); groups with their members and rules; names with SQL and
# LDAP metacharacters stored and returned as given; bad requests refused.
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
OP=$T/operator.token
SEC=$T/security.token
AUTH=$T/authorizer.token
ADM=$T/admin.token
A=00:1a:7d:da:75:01
B=00:1a:7d:da:75:02
C=00:1a:7d:da:75:03

# get PATH [TOKEN]: the status; body in $T/resp
get() { api GET "$1" "" "${2:-$OP}"; }
# put_owner MAC JSON [TOKEN]: the status of PUT /v1/devices/MAC/owner
put_owner() { printf '%s' "$2" > "$T/body.json"; api PUT "/v1/devices/$1/owner" "$T/body.json" "${3:-$SEC}"; }
post() { printf '%s' "$2" > "$T/body.json"; api POST "$1" "$T/body.json" "${3:-$SEC}"; }
jr() { jq -r "$1" "$T/resp"; }
uri() { jq -rn --arg v "$1" '$v | @uri'; }
ask() {	# MAC RESOURCE: "decision|reason|owner|policy_version"
	printf '{"device":{"mac":"%s"},"resource":"%s","action":"open"}' "$1" "$2" > "$T/ask.json"
	curl -s -H "Authorization: Bearer $(cat "$AUTH")" -H 'Content-Type: application/json' \
	    --data-binary "@$T/ask.json" "$URL/v1/authorize" |
	    jq -r '[.decision, .reason, (.device.owner // "null"), (.policy_version | tostring)] | join("|")'
}
version() { sql "select version from policy_version"; }
audits() { sql "select count(*) from audit_log where action = '$1'"; }
pc() { "$BIN/provctl" --url "$URL" --token-file "${PCTOK:-$SEC}" "$@"; }
# wait_cache: until this provd's decision cache has the database's policy
# version (at most 3 s)
wait_cache() {
	_w=0
	while [ "$(curl -s -H "Authorization: Bearer $(cat "$SEC")" "$URL/v1/policy" | jq -r .cache.policy_version)" != "$(version)" ]; do
		_w=$((_w + 1)); [ $_w -lt 300 ] || return 1; sleep 0.01
	done
}

new_csr "$T/a.csr"; new_csr "$T/b.csr"; new_csr "$T/c.csr"; new_csr "$T/a2.csr"
check "issue A (alice, engineering)" provctl issue --mac $A --csr "$T/a.csr" --owner alice --group engineering --out "$T/a.pem"
check "issue B (bob, finance and engineering)" provctl issue --mac $B --csr "$T/b.csr" --owner bob --group finance --group engineering --out "$T/b.pem"
check "issue C (no owner, no group)" provctl issue --mac $C --csr "$T/c.csr" --out "$T/c.pem"
check "replace A's certificate" provctl issue --mac $A --csr "$T/a2.csr" --owner alice --replace --out "$T/a2.pem"
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/serial=//' | tr 'A-F' 'a-f'; }

# --- one device ----------------------------------------------------------
check_eq "GET /v1/devices/A" 200 "$(get /v1/devices/$A)"
check_eq "A's fields" "$A|active|alice|engineering|false" \
    "$(jr '[.mac, .status, .owner, (.groups | join(",")), (.renew_requested | tostring)] | join("|")')"
check_eq "A's certificate is the active one" "$(serial_of "$T/a2.pem")|active" "$(jr '.certificate.serial + "|" + .certificate.status')"
check_eq "A's certificates, newest first" "$(serial_of "$T/a2.pem"):active:null $(serial_of "$T/a.pem"):superseded:superseded" \
    "$(jr '[.certificates[] | .serial + ":" + .status + ":" + (.revocation_reason // "null")] | join(" ")')"
check_out "times are RFC 3339 UTC" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' jr '.certificate.not_after'
check_eq "any spelling of the address" 200 "$(get /v1/devices/001A.7DDA.7502)"
check_eq "B in two groups, sorted" "engineering,finance" "$(jr '.groups | join(",")')"
check_eq "C has no owner and no group" "null|0" "$(get /v1/devices/$C >/dev/null; jr '(.owner | tostring) + "|" + (.groups | length | tostring)')"
check_eq "unknown device -> 404" 404 "$(get /v1/devices/00:1a:7d:da:75:99)"
check_eq "... saying so" "No such device." "$(jr .error.message)"
check_eq "not an address -> 400" 400 "$(get /v1/devices/nonsense)"
check_eq "a group address -> 400 bad_mac" "400 bad_mac" "$(get /v1/devices/01:00:5e:00:00:01) $(jr .error.code)"

# --- pages ---------------------------------------------------------------
# 250 more devices straight into the table, with every status; 25 of them
# with 25 old certificates each
sql "insert into devices (mac, status) select ('02:00:00:00:' || lpad(to_hex(i / 256), 2, '0') || ':' || lpad(to_hex(i % 256), 2, '0'))::macaddr, (array['pending','active','revoked','retired'])[1 + i % 4] from generate_series(1, 250) i" >/dev/null
sql "insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der, revoked_at, revocation_reason) select d.id, md5(d.mac::text || k), sha256((d.mac::text || k)::bytea), 'superseded', now() - interval '2 days', now() + make_interval(days => k), '\\x30'::bytea, now(), 4 from devices d, generate_series(1, 25) k where d.mac between '02:00:00:00:00:01' and '02:00:00:00:00:19'" >/dev/null
total=$(sql "select count(*) from devices")
check_eq "253 devices" 253 "$total"
: > "$T/macs"; pages=0; after=""; bad_page=0
while :; do
	pages=$((pages + 1))
	st=$(get "/v1/devices?limit=100${after:+&after=$after}")
	[ "$st" = 200 ] || { bad_page=1; break; }
	jr '.devices[].mac' >> "$T/macs"
	nx=$(jr '.next // empty')
	[ -n "$nx" ] || break
	[ "$(jr '.devices | length')" = 100 ] || bad_page=1
	[ "$nx" = "$(jr '.devices[-1].mac')" ] || bad_page=1
	after=$nx
	[ $pages -lt 10 ] || break
done
check_eq "limit=100 over 253 devices: 3 pages, the last with next null" "3 0" "$pages $bad_page"
check_eq "no device twice" "$total" "$(sort -u "$T/macs" | wc -l)"
check_eq "none missing" "$total" "$(wc -l < "$T/macs")"
check_eq "in address order" "$(sort "$T/macs" | tr '\n' ' ')" "$(tr '\n' ' ' < "$T/macs")"
check_eq "the default page is 100" "200 100" "$(get /v1/devices) $(jr '.devices | length')"
check_eq "limit=1000: one page, next null" "200 253 null" "$(get '/v1/devices?limit=1000') $(jr '.devices | length') $(jr .next)"
check_eq "a page past the end is empty" "200 0 null" "$(get '/v1/devices?after=fe:ff:ff:ff:ff:fe') $(jr '.devices | length') $(jr .next)"
check_eq "a device's certificate list stops at 20" "200 20" "$(get /v1/devices/02:00:00:00:00:05) $(jr '.certificates | length')"
check_eq "... newest first" "$(sql "select string_agg(serial, ' ' order by id desc) from (select * from certificates c where device_id = (select id from devices where mac = '02:00:00:00:00:05') order by id desc limit 20) x")" \
    "$(jr '[.certificates[].serial] | join(" ")')"
check_eq "the list shows the newest certificate when none is active" "$(sql "select serial from certificates where device_id = (select id from devices where mac = '02:00:00:00:00:05') order by id desc limit 1")|superseded" \
    "$(jr '.certificate.serial + "|" + .certificate.status')"

# --- filters -------------------------------------------------------------
for s in pending active revoked retired; do
	want=$(sql "select string_agg(mac::text, ' ' order by mac) from devices where status = '$s'")
	get "/v1/devices?status=$s&limit=1000" >/dev/null
	check_eq "status=$s lists exactly those" "$want" "$(jr '[.devices[].mac] | join(" ")')"
done
check_eq "status=retired in pages of 20: all of them" "$(sql "select count(*) from devices where status = 'retired'")" \
    "$(after=""; while :; do get "/v1/devices?status=retired&limit=20${after:+&after=$after}" >/dev/null; jr '.devices[].mac'; after=$(jr '.next // empty'); [ -n "$after" ] || break; done | sort -u | wc -l)"
check_eq "owner=alice" "$A" "$(get /v1/devices?owner=alice >/dev/null; jr '[.devices[].mac] | join(" ")')"
check_eq "group=engineering" "$A $B" "$(get /v1/devices?group=engineering >/dev/null; jr '[.devices[].mac] | join(" ")')"
check_eq "group=engineering and owner=bob" "$B" "$(get '/v1/devices?group=engineering&owner=bob' >/dev/null; jr '[.devices[].mac] | join(" ")')"
check_eq "status=revoked and owner=alice: none" "0" "$(get '/v1/devices?status=revoked&owner=alice' >/dev/null; jr '.devices | length')"
check_eq "an unknown owner: an empty list" "200 0 null" "$(get /v1/devices?owner=nobody) $(jr '.devices | length') $(jr .next)"
check_eq "an unknown group: an empty list" "200 0" "$(get /v1/devices?group=nowhere) $(jr '.devices | length')"
check_eq "group filter in pages of 1" "$A|$B" "$(get '/v1/devices?group=engineering&limit=1' >/dev/null; m1=$(jr '.devices[0].mac'); nx=$(jr .next); get "/v1/devices?group=engineering&limit=1&after=$nx" >/dev/null; echo "$m1|$(jr '.devices[0].mac')")"

# --- bad queries ---------------------------------------------------------
for q in 'limit=0' 'limit=1001' 'limit=abc' 'limit=' 'limit' 'status=lost' 'status=' 'after=nonsense' \
    'owner=' 'group=' 'foo=1' 'limit=10&limit=20' 'status=active&x=1' '%FF%FE=1' "$(printf 'k%.0s' $(seq 1 100))=1" 'owner=%FF' 'owner=a%00b' "owner=$(printf 'a%.0s' $(seq 1 129))"; do
	check_eq "GET /v1/devices?$q -> 400" 400 "$(get "/v1/devices?$q")"
done
check_out "an unknown argument is named" 'Unknown query argument \\"foo\\"' sh -c "curl -s -H 'Authorization: Bearer $(cat "$OP")' '$URL/v1/devices?foo=1'"
check_eq "GET /v1/devices/A?x=1 -> 400" 400 "$(get "/v1/devices/$A?x=1")"
check_eq "GET /v1/users?status=active -> 400" 400 "$(get "/v1/users?status=active")"
check_eq "GET /v1/groups?owner=x -> 400" 400 "$(get "/v1/groups?owner=x")"
check_eq "GET /v1/groups/engineering?limit=1 -> 400" 400 "$(get "/v1/groups/engineering?limit=1")"
check_eq "GET /v1/users?limit=0 -> 400" 400 "$(get "/v1/users?limit=0")"
check_eq "GET /v1/groups?after= -> 400" 400 "$(get "/v1/groups?after=")"

# --- who may --------------------------------------------------------------
check_eq "no token -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/devices")"
check_eq "a wrong token -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer pvd_nope' "$URL/v1/users")"
check_eq "authorizer may not list devices -> 403" 403 "$(get /v1/devices "$AUTH")"
check_eq "authorizer may not read a group -> 403" 403 "$(get /v1/groups/engineering "$AUTH")"
check_eq "security may list devices" 200 "$(get /v1/devices "$SEC")"
check_eq "admin may list users" 200 "$(get /v1/users "$ADM")"
check_eq "operator may not change an owner -> 403" 403 "$(put_owner $C '{"owner":"zed"}' "$OP")"
check_eq "authorizer may not change an owner -> 403" 403 "$(put_owner $C '{"owner":"zed"}' "$AUTH")"
check_eq "operator may not delete a user -> 403" 403 "$(api DELETE /v1/users/bob "" "$OP")"
check_eq "no token may not delete a user -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/v1/users/bob")"
check_eq "nothing was written" 0 "$(sql "select count(*) from users where name = 'zed'")"

# --- ownership, seen by /v1/authorize at once -----------------------------
check_eq "resource door-9" 201 "$(post /v1/resources '{"name":"door-9"}')"
check_eq "rule: dave may open door-9" 201 "$(post /v1/rules '{"subject":{"user":"dave"},"resource":"door-9","effect":"allow"}')"
rule_dave=$(jr .id)
check "the cache has the new policy" wait_cache
check_eq "A (alice's) may not open door-9" "deny|no rule allows this|alice" "$(ask $A door-9 | cut -d'|' -f1-3)"
v0=$(version)
a0=$(audits device.owner)
check_eq "PUT A's owner dave -> 200" 200 "$(put_owner $A '{"owner":"dave"}')"
v1=$(jr .policy_version)
check_eq "the answer" "$A|dave|alice|true" "$(jr '[.mac, .owner, .previous_owner, (.changed | tostring)] | join("|")')"
check "the policy version grew" test "$v1" -gt "$v0"
t0=$(date +%s%N)
while :; do
	ans=$(ask $A door-9)
	case $ans in allow*) break;; esac
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ] || break
	sleep 0.01
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "A opens door-9 now, through dave's rule" "allow|allowed by rule $rule_dave|dave" "$(echo "$ans" | cut -d'|' -f1-3)"
check "... within a second (${ms} ms)" test "$ms" -lt 1000
check "... under the new policy version" test "$(echo "$ans" | cut -d'|' -f4)" -ge "$v1"
check_eq "one audit row device.owner" "$((a0 + 1))" "$(audits device.owner)"
check_eq "its object and detail" "$A|dave|alice|false" \
    "$(sql "select object || '|' || (detail->>'owner') || '|' || (detail->>'previous') || '|' || (detail->>'user_created') from audit_log where action = 'device.owner' order by seq desc limit 1")"
check_eq "the actor is the token's name" "test-security" "$(sql "select actor from audit_log where action = 'device.owner' order by seq desc limit 1")"
check_eq "a directory outbox row for A" 1 "$(sql "select count(*) from directory_outbox where entity = 'device' and key = '$A' and payload->>'owner' = 'dave'")"
check_eq "GET shows the new owner" "dave" "$(get /v1/devices/$A >/dev/null; jr .owner)"
check_eq "the same owner again: 200, unchanged, same version" "200 false $v1" "$(put_owner $A '{"owner":"dave"}') $(jr .changed) $(jr .policy_version)"
check_eq "... and no audit row" "$((a0 + 1))" "$(audits device.owner)"
check_eq "a new user as owner is created" "200 1 true" \
    "$(put_owner $C '{"owner":"erin"}') $(sql "select count(*) from users where name = 'erin'") $(sql "select detail->>'user_created' from audit_log where action = 'device.owner' order by seq desc limit 1")"
check_eq "clear A's owner -> 200" "200 null dave" "$(put_owner $A '{"owner":null}') $(jr .owner) $(jr .previous_owner)"
v2=$(jr .policy_version)
check "the policy version grew again" test "$v2" -gt "$v1"
t0=$(date +%s%N)
while :; do
	ans=$(ask $A door-9)
	case $ans in deny*) break;; esac
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ] || break
	sleep 0.01
done
check_eq "A may not open door-9 any more" "deny|no rule allows this|null" "$(echo "$ans" | cut -d'|' -f1-3)"
check_eq "GET shows no owner" "null" "$(get /v1/devices/$A >/dev/null; jr .owner)"
check_eq "unknown device -> 404" "404 No such device." "$(put_owner 00:1a:7d:da:75:99 '{"owner":"dave"}') $(jr .error.message)"
check_eq "a bad address -> 400" 400 "$(put_owner zz '{"owner":"dave"}')"
for body in '{}' '{"owner":""}' '{"owner":5}' '{"owner":["a"]}' '{"owner":"dave","x":1}' '[]' '{"owner":"a\u0000b"}' '{"owner":"tab\there"}' \
    "{\"owner\":\"$(printf 'a%.0s' $(seq 1 129))\"}" '{"owner":'; do
	check_eq "PUT owner $(printf '%.40s' "$body") -> 400" 400 "$(put_owner $C "$body")"
done
check_eq "a 128-byte name is fine" 200 "$(put_owner $C "{\"owner\":\"$(printf 'b%.0s' $(seq 1 128))\"}")"
check_eq "a name in UTF-8" "200 Zoë Åström" "$(put_owner $C '{"owner":"Zoë Åström"}') $(jr .owner)"
head -c 1048576 /dev/zero | tr '\0' 'a' > "$T/big.json"
check_eq "a 1 MB body -> 413" 413 "$(api PUT /v1/devices/$C/owner "$T/big.json" "$SEC")"
printf '{"owner":"dave"}' > "$T/body.json"
check_eq "a body that is not JSON's media type -> 415" 415 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $(cat "$SEC")" -H 'Content-Type: text/plain' --data-binary "@$T/body.json" "$URL/v1/devices/$C/owner")"
check_eq "PUT owner?x=1 -> 400" 400 "$(api PUT "/v1/devices/$C/owner?x=1" "$T/body.json" "$SEC")"

# --- names with metacharacters ---------------------------------------------
M1="o'hara *()\\,=+<>#;\"'"
M2="x'); drop table users; --"
printf '%s' "$M1" | jq -Rs '{owner: .}' > "$T/m1.json"
check_eq "owner named $M1" 200 "$(api PUT /v1/devices/$B/owner "$T/m1.json" "$SEC")"
check_eq "... returned as given" "$M1" "$(jr .owner)"
check_eq "... stored as given" "$M1" "$(sql "select u.name from devices d join users u on u.id = d.owner_id where d.mac = '$B'")"
check_eq "GET /v1/devices/B shows it" "$M1" "$(get /v1/devices/$B >/dev/null; jr .owner)"
check_eq "owner=$M1 (percent-encoded) finds B" "$B" "$(get "/v1/devices?owner=$(uri "$M1")" >/dev/null; jr '[.devices[].mac] | join(" ")')"
check_eq "group named $M2" 201 "$(post "/v1/groups/$(uri "$M2")/devices" "{\"mac\":\"$C\"}")"
check_eq "group=$M2 finds C" "$C" "$(get "/v1/devices?group=$(uri "$M2")" >/dev/null; jr '[.devices[].mac] | join(" ")')"
check_eq "GET /v1/groups/$M2" "200 $M2 $C" "$(get "/v1/groups/$(uri "$M2")") $(jr .name) $(jr '.members.devices | join(" ")')"
check_eq "the tables are intact" "253 1" "$(sql "select count(*) from devices") $(sql "select count(*) from users where name = 'alice'")"

# --- users ------------------------------------------------------------------
check_eq "GET /v1/users" 200 "$(get /v1/users)"
check_eq "alice owns none now, bob none, dave none" "0 0 0" "$(jr '[.users[] | select(.name == "alice" or .name == "bob" or .name == "dave") | .devices | tostring] | join(" ")')"
check_eq "$M1 owns one" 1 "$(jq --arg m "$M1" '.users[] | select(.name == $m) | .devices' "$T/resp")"
check_eq "a user's groups" 201 "$(post /v1/groups/night-shift/users '{"name":"dave"}')"
post /v1/groups/engineering/users '{"name":"dave"}' >/dev/null
check_eq "... listed in name order" "engineering,night-shift" "$(get /v1/users >/dev/null; jr '.users[] | select(.name == "dave") | .groups | join(",")')"
sql "insert into users (name) select 'u' || lpad(i::text, 4, '0') from generate_series(1, 1200) i" >/dev/null
utotal=$(sql "select count(*) from users")
: > "$T/users"; pages=0; after=""
while :; do
	pages=$((pages + 1))
	[ "$(get "/v1/users?limit=100${after:+&after=$(uri "$after")}")" = 200 ] || break
	jr '.users[].name' >> "$T/users"
	after=$(jr '.next // empty')
	[ -n "$after" ] && [ $pages -lt 50 ] || break
done
check_eq "users in pages of 100: every user once" "$utotal $utotal" "$(sort -u "$T/users" | wc -l) $(wc -l < "$T/users")"
check_eq "... in $(( (utotal + 99) / 100 )) pages" "$(( (utotal + 99) / 100 ))" "$pages"

a0=$(audits user.delete)
check_eq "delete dave while rule $rule_dave names him -> 409" 409 "$(api DELETE /v1/users/dave "" "$SEC")"
check_eq "... saying which rule" "Rule $rule_dave names this user; delete it first." "$(jr .error.message)"
check_eq "... and nothing happened" "1 $a0" "$(sql "select count(*) from users where name = 'dave'") $(audits user.delete)"
post /v1/rules '{"subject":{"user":"dave"},"resource":"door-9","effect":"deny","action":"close"}' >/dev/null
rule_dave2=$(jr .id)
check_eq "two rules: both named" "Rules $rule_dave, $rule_dave2 name this user; delete them first." \
    "$(api DELETE /v1/users/dave "" "$SEC" >/dev/null; jr .error.message)"
api DELETE /v1/rules/$rule_dave "" "$SEC" >/dev/null
api DELETE /v1/rules/$rule_dave2 "" "$SEC" >/dev/null
: > "$T/gina_rules"
for i in $(seq 1 22); do
	post /v1/rules '{"subject":{"user":"gina"},"resource":"door-9","effect":"allow"}' >/dev/null
	jr .id >> "$T/gina_rules"
done
check_eq "22 rules: 20 named, and the rest counted" \
    "409 Rules $(head -n 20 "$T/gina_rules" | paste -sd, | sed 's/,/, /g') and 2 more name this user; delete them first." \
    "$(api DELETE /v1/users/gina "" "$SEC") $(jr .error.message)"
for i in $(cat "$T/gina_rules"); do api DELETE "/v1/rules/$i" "" "$SEC" >/dev/null; done
check_eq "then gina goes" 200 "$(api DELETE /v1/users/gina "" "$SEC")"
a0=$(audits user.delete)
check_eq "dave owns A again" 200 "$(put_owner $A '{"owner":"dave"}')"
v3=$(version)
check_eq "delete dave -> 200" 200 "$(api DELETE /v1/users/dave "" "$SEC")"
check "... with a new policy version" test "$(jr .policy_version)" -gt "$v3"
check_eq "dave is gone, A has no owner, his memberships went" "0 null 0" \
    "$(sql "select count(*) from users where name = 'dave'") $(get /v1/devices/$A >/dev/null; jr .owner) $(sql "select count(*) from group_members m join groups g on g.id = m.group_id where g.name = 'night-shift'")"
check_eq "one audit row user.delete" "$((a0 + 1))|dave|1|$A|engineering,night-shift" \
    "$(audits user.delete)|$(sql "select object || '|' || (detail->>'devices_disowned') || '|' || (detail->'devices'->>0) || '|' || (select string_agg(x, ',') from json_array_elements_text(detail->'groups') x) from audit_log where action = 'user.delete' order by seq desc limit 1")"
udel=$(sql "select max(id) from directory_outbox where entity = 'user' and key = 'dave' and op = 'delete'")
check_eq "directory rows for the user, the device and both groups" "1 1 2" \
    "$(sql "select count(*) from directory_outbox where entity = 'user' and key = 'dave' and op = 'delete'") $(sql "select count(*) from directory_outbox where entity = 'device' and key = '$A' and id > $udel") $(sql "select count(*) from directory_outbox where entity = 'group' and key in ('engineering', 'night-shift') and id > $udel")"
t0=$(date +%s%N)
while [ "$(ask $A door-9 | cut -d'|' -f3)" != null ] && [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ]; do sleep 0.01; done
check_eq "the authorization cache has no owner for A" "null" "$(ask $A door-9 | cut -d'|' -f3)"
check_eq "delete dave again -> 404" "404 No such user." "$(api DELETE /v1/users/dave "" "$SEC") $(jr .error.message)"
check_eq "delete a user named $M1 (percent-encoded)" 200 "$(api DELETE "/v1/users/$(uri "$M1")" "" "$SEC")"
check_eq "... B has no owner now" "null" "$(get /v1/devices/$B >/dev/null; jr .owner)"
check_eq "delete ?x=1 -> 400" 400 "$(api DELETE "/v1/users/alice?x=1" "" "$SEC")"
check_eq "a name too long -> 400" 400 "$(api DELETE "/v1/users/$(printf 'a%.0s' $(seq 1 129))" "" "$SEC")"

# --- groups -----------------------------------------------------------------
check_eq "cap engineering's validity" 200 "$(printf '{"max_validity_days":30}' > "$T/v.json"; api PUT /v1/groups/engineering/validity "$T/v.json" "$SEC")"
post /v1/resources '{"name":"lab-1"}' >/dev/null
post /v1/rules '{"subject":{"group":"engineering"},"resource":"lab-1","effect":"allow"}' >/dev/null
rule_eng=$(jr .id)
check_eq "GET /v1/groups" 200 "$(get /v1/groups)"
check_eq "engineering: 2 devices, 0 users, 30 days" "2 0 30" "$(jr '.groups[] | select(.name == "engineering") | [.devices, .users, .max_validity_days] | map(tostring) | join(" ")')"
check_eq "finance: 1 device, no cap" "1 0 null" "$(jr '.groups[] | select(.name == "finance") | [.devices, .users, .max_validity_days] | map(tostring) | join(" ")')"
check_eq "GET /v1/groups/engineering" 200 "$(get /v1/groups/engineering)"
check_eq "its members and rules" "$A $B||false|$rule_eng|30" \
    "$(jr '[(.members.devices | join(" ")), (.members.users | join(" ")), (.members.truncated | tostring), (.rules | map(tostring) | join(" ")), (.max_validity_days | tostring)] | join("|")')"
check_eq "unknown group -> 404" "404 No such group." "$(get /v1/groups/nowhere) $(jr .error.message)"
sql "insert into groups (name) values ('big')" >/dev/null
sql "insert into group_members (group_id, user_id) select (select id from groups where name = 'big'), id from users where name like 'u%'" >/dev/null
sql "insert into group_members (group_id, device_id) select (select id from groups where name = 'big'), id from devices where mac::text like '02:%' and status = 'active'" >/dev/null
check_eq "a group of 1200 users: 1000 listed, truncated" "200 1200 1000 true" \
    "$(get /v1/groups/big) $(jr .users) $(jr '.members.users | length') $(jr .members.truncated)"
check_eq "... the first 1000 by name" "u0001 u1000" "$(jr '.members.users[0] + " " + .members.users[-1]')"
check_eq "... and its devices" "$(sql "select count(*) from devices where mac::text like '02:%' and status = 'active'")" "$(jr '.members.devices | length')"
sql "insert into groups (name) select 'g' || lpad(i::text, 3, '0') from generate_series(1, 150) i" >/dev/null
gtotal=$(sql "select count(*) from groups")
: > "$T/groups"; pages=0; after=""
while :; do
	pages=$((pages + 1))
	[ "$(get "/v1/groups?limit=50${after:+&after=$(uri "$after")}")" = 200 ] || break
	jr '.groups[].name' >> "$T/groups"
	after=$(jr '.next // empty')
	[ -n "$after" ] && [ $pages -lt 50 ] || break
done
check_eq "groups in pages of 50: every group once" "$gtotal $gtotal $(( (gtotal + 49) / 50 ))" "$(sort -u "$T/groups" | wc -l) $(wc -l < "$T/groups") $pages"

# --- provctl ------------------------------------------------------------------
PCTOK=$OP
check_out "provctl device list: a table" '^ADDRESS +STATUS +OWNER' pc device list
check_eq "provctl device list follows next to the end" "$(sql "select count(*) from devices")" "$(pc device list | tail -n +2 | wc -l)"
check_eq "provctl device list --limit 5: one page" 5 "$(pc device list --limit 5 | tail -n +2 | wc -l)"
check_eq "provctl device list --status retired" "$(sql "select count(*) from devices where status = 'retired'")" "$(pc device list --status retired | tail -n +2 | wc -l)"
check_out "provctl device list --group engineering" "^$B +active +- " pc device list --group engineering
check_eq "provctl device list --owner bob --group finance: none (bob no longer owns B)" 0 "$(pc device list --owner bob --group finance | tail -n +2 | wc -l)"
check_fails_out "provctl device list --status lost: the API's message" 'status must be pending, active, revoked or retired' pc device list --status lost
check_fails_out "provctl device list --limit 0: usage" 'limit is 1 to 1000' pc device list --limit 0
check_out "provctl device show" "^owner +-" pc device show $A
check_out "provctl device show lists certificates" "$(serial_of "$T/a.pem") +superseded .* superseded" pc device show $A
check_fails_out "provctl device show of an unknown device" 'No such device' pc device show 00:1a:7d:da:75:99
check_fails_out "provctl device owner with an operator token: 403" 'HTTP 403' pc device owner $A frank
PCTOK=$SEC
check_out "provctl device owner ADDR NAME" "^$A: owner frank \\(was none\\), policy version [0-9]+$" pc device owner $A frank
check_out "provctl device owner ADDR none" "^$A: owner none \\(was frank\\), policy version" pc device owner $A none
check_out "provctl device owner, unchanged" "unchanged" pc device owner $A none
check_out "provctl device owner with metacharacters" 'drop table users; -- \(was none\)' pc device owner $A "$M2"
check_out "provctl user list" "^frank +0 +-$" pc user list
check_eq "provctl user list follows next to the end" "$(sql "select count(*) from users")" "$(pc user list | tail -n +2 | wc -l)"
post /v1/rules '{"subject":{"user":"frank"},"resource":"lab-1","effect":"allow"}' >/dev/null
rule_frank=$(jr .id)
check_fails_out "provctl user delete while a rule names the user" "Rule $rule_frank names this user" pc user delete frank
pc rule del "$rule_frank" >/dev/null
check_out "provctl user delete" '^policy version [0-9]+$' pc user delete frank
check_fails_out "provctl user delete again: 404" 'No such user' pc user delete frank
check_out "provctl user delete with metacharacters" '^policy version' pc user delete "$M2"
check_out "provctl group list" '^engineering +2 +0 +30$' pc group list
check_eq "provctl group list follows next to the end" "$(sql "select count(*) from groups")" "$(pc group list | tail -n +2 | wc -l)"
check_out "provctl group show" "^rules +$rule_eng$" pc group show engineering
check_out "provctl group show lists members" "^  $B$" pc group show engineering
check_out "provctl group show of a big group says it is cut" 'up to 1000' pc group show big
check_fails_out "provctl group show of an unknown group" 'No such group' pc group show nowhere
check_out "provctl group add still works" '^policy version' pc group add finance --device $C
check_fails_out "provctl device owner without a name: usage" 'device owner ADDR NAME' pc device owner $A

# "%00" in a path does not cut a name short
check_eq "GET /v1/groups/engineering%00junk -> 400, not the group engineering" 400 \
    "$(get /v1/groups/engineering%00junk)"
check_eq "GET /v1/devices/$A%00 -> 400" 400 "$(get "/v1/devices/$A%00")"
check_eq "GET /v1/users?after=alice%00x -> 400" 400 "$(get "/v1/users?after=alice%00x")"

check_out "audit chain verifies" '^audit chain OK' pc audit verify
t_done
