#!/bin/sh
# Central access control end to end: resources, rules and group membership
# over the REST API; POST /v1/authorize by address, certificate hash and
# certificate; deny overrides allow; time windows and one-time grants;
# revocation seen by a second provd sharing the database within a second;
# bad questions refused; every change audited.
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
SEC=$T/security.token
AUTH=$T/authorizer.token

# devices: alice's in engineering, bob's in finance, carol's with no group
new_csr "$T/a.csr"; new_csr "$T/b.csr"; new_csr "$T/c.csr"
check "issue device A" provctl issue --mac 00:1a:7d:da:74:01 --csr "$T/a.csr" --owner alice --group engineering --out "$T/a.pem"
check "issue device B" provctl issue --mac 00:1a:7d:da:74:02 --csr "$T/b.csr" --owner bob --group finance --out "$T/b.pem"
check "issue device C" provctl issue --mac 00:1a:7d:da:74:03 --csr "$T/c.csr" --owner carol --out "$T/c.pem"

post() {	# PATH JSON [TOKEN]: status; body in $T/resp
	printf '%s' "$2" > "$T/body.json"
	api POST "$1" "$T/body.json" "${3:-$SEC}"
}
ask() {	# JSON: "decision|reason" from POST /v1/authorize with the authorizer token
	post /v1/authorize "$1" "$AUTH" >/dev/null
	jq -r '.decision + "|" + .reason' "$T/resp"
}

check_eq "add resource ap-lobby-3" 201 "$(post /v1/resources '{"name":"ap-lobby-3","class":"access-point"}')"
check_eq "add resource printer-2f" 201 "$(post /v1/resources '{"name":"printer-2f"}')"
check_eq "a second resource of the same name -> 409" 409 "$(post /v1/resources '{"name":"ap-lobby-3"}')"
check_eq "rule: engineering may connect to ap-lobby-3" 201 \
    "$(post /v1/rules '{"subject":{"group":"engineering"},"resource":"ap-lobby-3","action":"connect","effect":"allow"}')"
check_eq "rule: bob (user) may use any action on printer-2f" 201 \
    "$(post /v1/rules '{"subject":{"user":"bob"},"resource":"printer-2f","effect":"allow"}')"
sleep 0.3

check_eq "A (engineering) connects to ap-lobby-3" "allow|allowed by rule 1" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}')"
check_eq "the answer names the device, owner and groups" "00:1a:7d:da:74:01|active|alice|engineering|30" \
    "$(jq -r '[.device.mac, .device.status, .device.owner, (.device.groups | join(",")), (.ttl_s | tostring)] | join("|")' "$T/resp")"
check_eq "A may not print (no rule)" "deny|no rule allows this" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"printer-2f","action":"print"}')"
check_eq "B prints (its owner's rule)" "allow|allowed by rule 2" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"printer-2f","action":"print"}')"
check_eq "unknown device" "deny|unknown device" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:99"},"resource":"ap-lobby-3"}')"
check_eq "unknown resource" "deny|unknown resource" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"nowhere"}')"

# by certificate
fpA=$(openssl x509 -in "$T/a.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
check_eq "by certificate SHA-256" "allow|allowed by rule 1" \
    "$(ask "{\"device\":{\"certificate_sha256\":\"$fpA\"},\"resource\":\"ap-lobby-3\",\"action\":\"connect\"}")"
check_eq "by certificate PEM" "allow|allowed by rule 1" \
    "$(ask "$(jq -n --arg p "$(cat "$T/a.pem")" '{device:{certificate_pem:$p},resource:"ap-lobby-3",action:"connect"}')")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/x.key" -subj /CN=other-ca \
    -days 2 -out "$T/x.pem" 2>/dev/null
check_eq "a certificate from another CA" "deny|certificate not issued by this CA" \
    "$(ask "$(jq -n --arg p "$(cat "$T/x.pem")" '{device:{certificate_pem:$p},resource:"ap-lobby-3"}')")"
check_eq "an unknown certificate hash" "deny|unknown certificate" \
    "$(ask '{"device":{"certificate_sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"resource":"ap-lobby-3"}')"

# deny overrides allow
check_eq "rule: deny A on ap-lobby-3" 201 \
    "$(post /v1/rules '{"subject":{"device":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","effect":"deny"}')"
sleep 0.3
check_eq "deny overrides the group's allow" "deny|denied by rule 3" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}')"
check_eq "delete the deny rule" 200 "$(api DELETE /v1/rules/3 "" "$SEC")"
sleep 0.3
check_eq "allowed again" allow "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}' | cut -d'|' -f1)"

# group membership changes reach the cache
check_eq "add C to engineering" 201 "$(post /v1/groups/engineering/devices '{"mac":"00:1a:7d:da:74:03"}')"
sleep 0.3
check_eq "C connects now" allow "$(ask '{"device":{"mac":"00:1a:7d:da:74:03"},"resource":"ap-lobby-3","action":"connect"}' | cut -d'|' -f1)"
check_eq "remove C from engineering" 200 "$(api DELETE /v1/groups/engineering/devices/00:1a:7d:da:74:03 "" "$SEC")"
sleep 0.3
check_eq "C is refused again" deny "$(ask '{"device":{"mac":"00:1a:7d:da:74:03"},"resource":"ap-lobby-3","action":"connect"}' | cut -d'|' -f1)"

# time windows (UTC) and one-time grants
now_h=$(date -u +%-H)
in_from=$(printf '%02d:00' "$now_h"); in_until=$(printf '%02d:00' $(( (now_h + 1) % 24 )))
out_from=$(printf '%02d:00' $(( (now_h + 2) % 24 ))); out_until=$(printf '%02d:00' $(( (now_h + 3) % 24 )))
check_eq "add resource door-7" 201 "$(post /v1/resources '{"name":"door-7"}')"
check_eq "rule: carol at door-7 in another hour" 201 \
    "$(post /v1/rules "{\"subject\":{\"user\":\"carol\"},\"resource\":\"door-7\",\"effect\":\"allow\",\"time_from\":\"$out_from\",\"time_until\":\"$out_until\"}")"
sleep 0.3
check_eq "outside its window: no" "deny|no rule allows this" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:03"},"resource":"door-7","action":"open"}')"
check_eq "rule: carol at door-7 this hour" 201 \
    "$(post /v1/rules "{\"subject\":{\"user\":\"carol\"},\"resource\":\"door-7\",\"effect\":\"allow\",\"time_from\":\"$in_from\",\"time_until\":\"$in_until\"}")"
sleep 0.3
check_eq "inside its window: yes" allow "$(ask '{"device":{"mac":"00:1a:7d:da:74:03"},"resource":"door-7","action":"open"}' | cut -d'|' -f1)"
check_eq "rule: one-time grant for B at door-7" 201 \
    "$(post /v1/rules '{"subject":{"device":"00:1a:7d:da:74:02"},"resource":"door-7","effect":"allow","one_time":true}')"
sleep 0.3
check_out "the one-time grant allows once" '^allow\|allowed once by rule' ask '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"door-7","action":"open"}'
sleep 0.3
check_eq "and not twice" "deny|no rule allows this" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"door-7","action":"open"}')"

# batch
check_eq "batch of three" 200 "$(post /v1/authorize/batch '{"questions":[{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"},{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"ap-lobby-3","action":"connect"},{"device":{"mac":"00:1a:7d:da:74:99"},"resource":"ap-lobby-3"}]}' "$AUTH")"
check_eq "batch answers in order" "allow deny deny" "$(jq -r '[.answers[].decision] | join(" ")' "$T/resp")"

# revocation reaches a second provd sharing the database within a second
cp "$T/provd.conf" "$T/provd2.conf"
mkdir -p "$T/p2"
first_pid=$provd_pid first_url=$URL
check "second provd" provd_start "$T/provd2.conf" "$T/p2"
second_pid=$provd_pid URL2=$URL
provd_pid=$first_pid URL=$first_url
sleep 0.5
ask2() { printf '%s' "$1" > "$T/b2.json"; curl -s -H "Authorization: Bearer $(cat "$AUTH")" -H 'Content-Type: application/json' --data-binary "@$T/b2.json" "$URL2/v1/authorize" | jq -r .decision; }
check_eq "the second instance allows A" allow "$(ask2 '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}')"
t0=$(date +%s%N)
PROVD_TOKEN_FILE=$SEC provctl revoke 00:1a:7d:da:74:01 --reason keyCompromise >/dev/null
while [ "$(ask2 '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}')" != deny ]; do
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || break
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the second instance denies the revoked device within 1 s (${ms} ms)" test "$ms" -lt 1000
check_eq "the first instance says why" "deny|device revoked" \
    "$(ask '{"device":{"mac":"00:1a:7d:da:74:01"},"resource":"ap-lobby-3","action":"connect"}')"
kill -TERM "$second_pid"; wait "$second_pid" 2>/dev/null

# bad questions: clear errors, nothing changes
before=$(sql "select count(*) from audit_log")
check_eq "malformed JSON -> 400" 400 "$(post /v1/authorize '{"device":' "$AUTH")"
check_eq "unknown field -> 400" 400 "$(post /v1/authorize '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"r","x":1}' "$AUTH")"
check_eq "two ways to name the device -> 400" 400 "$(post /v1/authorize '{"device":{"mac":"00:1a:7d:da:74:02","certificate_sha256":"00"},"resource":"r"}' "$AUTH")"
check_eq "garbage certificate -> 400" 400 "$(post /v1/authorize '{"device":{"certificate_pem":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},"resource":"r"}' "$AUTH")"
check_eq "bad address -> 400" 400 "$(post /v1/authorize '{"device":{"mac":"01:00:5e:00:00:01"},"resource":"r"}' "$AUTH")"
head -c 1048576 /dev/zero | tr '\0' 'a' > "$T/big.json"
check_eq "1 MB body -> 413" 413 "$(api POST /v1/authorize "$T/big.json" "$AUTH")"
check_eq "operator token may not ask -> 403" 403 "$(post /v1/authorize '{"device":{"mac":"00:1a:7d:da:74:02"},"resource":"ap-lobby-3"}' "$T/operator.token")"
check_eq "authorizer token may not change rules -> 403" 403 "$(post /v1/resources '{"name":"x"}' "$AUTH")"
check_eq "SQL metacharacters are just a name" "deny|unknown resource" \
    "$(ask "{\"device\":{\"mac\":\"00:1a:7d:da:74:02\"},\"resource\":\"x'; drop table devices; --\"}")"
check_eq "a resource named with SQL metacharacters" 201 "$(post /v1/resources "{\"name\":\"o'hara \\\"*)(;--\"}")"
check_eq "questions wrote nothing (only the resource add)" "$((before + 1))" "$(sql "select count(*) from audit_log")"
check_eq "devices table intact" 3 "$(sql "select count(*) from devices")"

check_out "policy lists resources and rules" '"name": "ap-lobby-3"' sh -c "curl -s -H 'Authorization: Bearer $(cat "$SEC")' $URL/v1/policy | jq ."
check_eq "every change is audited" "6 4 2" "$(sql "select count(*) filter (where action like 'rule.add') || ' ' || count(*) filter (where action like 'resource.add') || ' ' || count(*) filter (where action like 'group.%') from audit_log")"
# the same through provctl
pc() { "$BIN/provctl" --url "$URL" --token-file "$SEC" "$@"; }
check_out "provctl resource add" '^id [0-9]+, policy version [0-9]+$' pc resource add lab-9 --class room
check_out "provctl rule add" '^id [0-9]+, policy version' pc rule add --group finance --resource lab-9 --action enter --allow --weekdays mon,tue,wed,thu,fri,sat,sun
check_out "provctl group add" '^policy version' pc group add finance --device 00:1a:7d:da:74:03
sleep 0.3
check_out "provctl authorize: allow, exit 0" '^allow: allowed by rule' "$BIN/provctl" --url "$URL" --token-file "$AUTH" authorize 00:1a:7d:da:74:03 lab-9 enter
"$BIN/provctl" --url "$URL" --token-file "$AUTH" authorize 00:1a:7d:da:74:03 lab-9 leave >/dev/null 2>&1
check_eq "provctl authorize: deny exits 3" 3 "$?"
check_out "provctl group remove" '^policy version' pc group remove finance --device 00:1a:7d:da:74:03
check_out "provctl policy lists the rule" 'rule +[0-9]+ +allow +enter +\{"group": ?"finance"\}' pc policy
check_fails_out "provctl rule add without an effect is a usage error" 'rule add --device' pc rule add --group finance --resource lab-9
check_out "provctl resource del" '^policy version' pc resource del lab-9

check_out "audit chain verifies" '^audit chain OK' provctl --token-file "$SEC" audit verify
t_done
