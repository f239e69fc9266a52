#!/bin/sh
# The directory mirror end to end: certificates issued and revoked over REST
# show in slapd (ldapsearch) through the outbox; slapd stopped in the middle
# of 1,000 issuances loses nothing and duplicates nothing once it is back;
# provctl directory resync repairs entries deleted or added by hand; the
# status route; an entry slapd refuses is retried without holding back the
# others.
#
# This test stops slapd, so it always runs its own (scripts/services.sh),
# whatever LDAP_URI says; its entries live under their own ou all the same.
. "$(dirname "$0")/lib.sh"

sh "$top/scripts/services.sh" start "$T/ldap" ldap >/dev/null || { not_ok "slapd"; exit 1; }
trap 'sh "$top/scripts/services.sh" stop "$T/ldap" >/dev/null 2>&1; t_cleanup' EXIT
LDAP_URI=$(sed -n 's/^LDAP_URI=//p' "$T/ldap/services.env")
LDAP_BASE=$(sed -n 's/^LDAP_BASE=//p' "$T/ldap/services.env")
LDAP_BIND_DN=$(sed -n 's/^LDAP_BIND_DN=//p' "$T/ldap/services.env")
LDAP_PASSWORD_FILE=$(sed -n 's/^LDAP_PASSWORD_FILE=//p' "$T/ldap/services.env")
BASE="ou=it-directory-$$,$LDAP_BASE"

write_conf "[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
password_file = $LDAP_PASSWORD_FILE
base_dn = $BASE
retry_max_s = 2"
check_out "configuration OK" '^configuration OK$' provd -n
check "start provd" start_provd || { t_done; exit 1; }

# ldap SUB FILTER [ATTR...]: entries under SUB,$BASE, LDIF without wrapping
ldap() {
	_sub=$1; _f=$2; shift 2
	ldapsearch -x -LLL -o ldif-wrap=no -H "$LDAP_URI" -D "$LDAP_BIND_DN" -y "$LDAP_PASSWORD_FILE" \
	    -b "$_sub,$BASE" -s one "$_f" "$@"
}
pending() { sql "select count(*) from directory_outbox where done_at is null"; }
# wait_synced SECONDS: until no outbox row is pending
wait_synced() {
	_i=0
	while [ "$(pending)" != 0 ]; do
		_i=$((_i + 1)); [ $_i -gt $(($1 * 10)) ] && return 1
		sleep 0.1
	done
}

# --- issuance and revocation reach the directory ------------------------
new_csr "$T/d1.csr"
check "issue with provctl" provctl issue --mac 00:1A:7D:DA:71:13 --csr "$T/d1.csr" \
    --owner alice --group engineering --out "$T/d1.pem"
serial=$(sql "select serial from certificates limit 1")
check "outbox drained" wait_synced 10
check "the base ou was created" sh -c "ldapsearch -x -LLL -H '$LDAP_URI' -D '$LDAP_BIND_DN' -y '$LDAP_PASSWORD_FILE' -b '$BASE' -s base dn | grep -q '^dn: $BASE'"
ldap ou=devices "(macAddress=00:1a:7d:da:71:13)" > "$T/e1.ldif"
check_eq "one entry for the device" 1 "$(grep -c '^dn: ' "$T/e1.ldif")"
check "entry has userCertificate;binary" grep -q '^userCertificate;binary:: ' "$T/e1.ldif"
check "the certificate is the one issued" sh -c "sed -n 's/^userCertificate;binary:: //p' '$T/e1.ldif' | openssl base64 -d -A | openssl x509 -inform DER -noout -serial | sed 's/serial=//' | grep -qx '$(serial_ossl "$serial")'"
check "objectClasses device, ieee802Device, pkiUser" sh -c "grep -q '^objectClass: device' '$T/e1.ldif' && grep -q '^objectClass: ieee802Device' '$T/e1.ldif' && grep -q '^objectClass: pkiUser' '$T/e1.ldif'"
check "serialNumber" grep -q "^serialNumber: $serial" "$T/e1.ldif"
check "status active" grep -q '^description: status: active$' "$T/e1.ldif"
check "owner is the user's entry" grep -q "^owner: cn=alice,ou=people,$BASE" "$T/e1.ldif"
check_eq "user entry" 1 "$(ldap ou=people "(&(objectClass=inetOrgPerson)(cn=alice)(sn=alice))" dn | grep -c '^dn: ')"
check "group entry with the device as member" sh -c "ldapsearch -x -LLL -o ldif-wrap=no -H '$LDAP_URI' -D '$LDAP_BIND_DN' -y '$LDAP_PASSWORD_FILE' -b 'ou=groups,$BASE' '(cn=engineering)' member | grep -q '^member: cn=00:1a:7d:da:71:13,ou=devices,$BASE'"

check "revoke with provctl" provctl revoke 00:1A:7D:DA:71:13 --reason keyCompromise
check "outbox drained after the revocation" wait_synced 10
ldap ou=devices "(macAddress=00:1a:7d:da:71:13)" > "$T/e2.ldif"
check "revoked: status and reason" grep -q '^description: status: revoked (keyCompromise)$' "$T/e2.ldif"
check_fails "revoked: no certificate" grep -q '^userCertificate' "$T/e2.ldif"
check "revoked: serial kept" grep -q "^serialNumber: $serial" "$T/e2.ldif"
check_eq "outbox rows done" "2|0" "$(sql "select count(*), count(*) filter (where done_at is null) from directory_outbox")"

# --- status ---------------------------------------------------------------
st=$(api GET /v1/directory/status)
check_eq "status route" 200 "$st"
check_eq "status: connected, nothing pending" "true 0" "$(jq -r '"\(.connected) \(.pending)"' "$T/resp")"
check_out "provctl directory status" '^directory: connected, 0 pending' provctl directory status

# --- slapd stopped in the middle of 1,000 issuances -----------------------
new_csr "$T/many.csr"
jq -n --arg csr "$(cat "$T/many.csr")" '{mac:"MAC", csr:$csr}' > "$T/tmpl.json"
mkdir -p "$T/bodies"
: > "$T/curl.cfg"
i=0
while [ $i -lt 1000 ]; do
	mac=$(printf '02:00:00:00:%02x:%02x' $((i / 256)) $((i % 256)))
	if [ $((i % 10)) = 0 ]; then
		jq -c --arg m "$mac" --arg o "owner-$((i % 7))" '.mac = $m | .owner = $o | .groups = ["fleet"]' \
		    "$T/tmpl.json" > "$T/bodies/$i.json"
	else
		sed "s/\"MAC\"/\"$mac\"/" "$T/tmpl.json" > "$T/bodies/$i.json"
	fi
	[ $i -gt 0 ] && echo next >> "$T/curl.cfg"
	# options before "next" are one transfer's: each carries its own
	printf 'url = "%s/v1/certificates"\ndata-binary = "@%s"\noutput = "/dev/null"\nsilent\nheader = "Content-Type: application/json"\nheader = "@%s"\nwrite-out = "%%{http_code}\\n"\n' \
	    "$URL" "$T/bodies/$i.json" "$T/auth.hdr" >> "$T/curl.cfg"
	i=$((i + 1))
done
printf 'Authorization: Bearer %s\n' "$(cat "$T/operator.token")" > "$T/auth.hdr"
t0=$(date +%s)
curl -s --parallel --parallel-max 16 -K "$T/curl.cfg" > "$T/codes" 2>"$T/curl.err" &
curl_pid=$!
n=0
while [ "$(sql "select count(*) from certificates")" -lt 200 ] && kill -0 $curl_pid 2>/dev/null; do
	n=$((n + 1)); [ $n -gt 600 ] && break
	sleep 0.05
done
sh "$top/scripts/services.sh" stop-ldap "$T/ldap"
stopped_at=$(sql "select count(*) from certificates")
wait $curl_pid
t1=$(date +%s)
check_eq "1,000 issuances answered 201" 1000 "$(grep -c '^201$' "$T/codes")"
check "slapd stopped after $stopped_at certificates, before the last" test "$stopped_at" -lt 1000
check "rows wait while slapd is down" test "$(pending)" -gt 0
sleep 1
api GET /v1/directory/status >/dev/null
check_eq "status: disconnected" false "$(jq -r .connected "$T/resp")"
check "status: a last error" jq -e '.last_error | length > 0' "$T/resp"
sh "$top/scripts/services.sh" start-ldap "$T/ldap"
check "outbox drained once slapd is back" wait_synced 30
t2=$(date +%s)
ldap ou=devices "(objectClass=ieee802Device)" macAddress > "$T/all.ldif"
check_eq "every device has its entry" 1001 "$(grep -c '^macAddress: ' "$T/all.ldif")"
check_eq "no device twice" "" "$(sed -n 's/^macAddress: //p' "$T/all.ldif" | sort | uniq -d)"
check_eq "entries with a certificate" 1000 "$(ldap ou=devices "(userCertificate;binary=*)" dn | grep -c '^dn: ')"
check_eq "fleet group members" 100 "$(ldap ou=groups "(cn=fleet)" member | grep -c '^member: ')"
check "1,000 issuances and the catch-up within 60 s ($((t1 - t0)) s + $((t2 - t1)) s)" \
    test $((t2 - t0)) -lt 60

# --- resync after hand edits ----------------------------------------------
ldapdelete -x -H "$LDAP_URI" -D "$LDAP_BIND_DN" -y "$LDAP_PASSWORD_FILE" \
    "cn=02:00:00:00:00:05,ou=devices,$BASE"
ldapadd -x -H "$LDAP_URI" -D "$LDAP_BIND_DN" -y "$LDAP_PASSWORD_FILE" >/dev/null <<EOF
dn: cn=stray,ou=devices,$BASE
objectClass: device
objectClass: ieee802Device
cn: stray
macAddress: 02:00:00:99:99:99
EOF
check_fails_out "resync needs the admin role" 'HTTP 403' provctl directory resync
check_out "provctl directory resync: 1 created, 1 deleted" \
    '^directory resync: 1 created, 0 updated, 1 deleted, [0-9]+ unchanged, 0 failed' \
    env PROVD_TOKEN_FILE="$T/admin.token" "$BIN/provctl" --url "$URL" directory resync
check_eq "the deleted entry is back" 1 "$(ldap ou=devices "(macAddress=02:00:00:00:00:05)" dn | grep -c '^dn: ')"
check_eq "the stray entry is gone" 0 "$(ldap ou=devices "(cn=stray)" dn | grep -c '^dn: ')"
check_out "a second resync changes nothing" \
    '^directory resync: 0 created, 0 updated, 0 deleted, [0-9]+ unchanged, 0 failed' \
    env PROVD_TOKEN_FILE="$T/admin.token" "$BIN/provctl" --url "$URL" directory resync
st=$(api POST /v1/directory/resync "" "$T/admin.token")
check_eq "resync route" 200 "$st"
check_eq "resync report" "0 0 0 0" "$(jq -r '"\(.created) \(.updated) \(.deleted) \(.failed)"' "$T/resp")"

# --- group membership over REST: the whole member list follows -----------
echo '{"name":"erin"}' > "$T/g1.json"
echo '{"mac":"00:1a:7d:da:71:13"}' > "$T/g2.json"
check_eq "add a user to group lab" 201 "$(api POST /v1/groups/lab/users "$T/g1.json" "$T/admin.token")"
check_eq "add a device to group lab" 201 "$(api POST /v1/groups/lab/devices "$T/g2.json" "$T/admin.token")"
check "outbox drained after the memberships" wait_synced 10
ldap ou=groups "(cn=lab)" member > "$T/lab.ldif"
check "lab: the user is a member" grep -q "^member: cn=erin,ou=people,$BASE" "$T/lab.ldif"
check "lab: the device is a member" grep -q "^member: cn=00:1a:7d:da:71:13,ou=devices,$BASE" "$T/lab.ldif"
check_eq "the member user has an entry" 1 "$(ldap ou=people "(cn=erin)" dn | grep -c '^dn: ')"
check_eq "remove the user from lab" 200 "$(api DELETE /v1/groups/lab/users/erin "" "$T/admin.token")"
check "outbox drained after the removal" wait_synced 10
check_eq "lab: one member left" 1 "$(ldap ou=groups "(cn=lab)" member | grep -c '^member: ')"
check_eq "remove the device from lab" 200 "$(api DELETE /v1/groups/lab/devices/00:1a:7d:da:71:13 "" "$T/admin.token")"
check "outbox drained after the last removal" wait_synced 10
check_eq "an empty group has no entry" 0 "$(ldap ou=groups "(cn=lab)" dn | grep -c '^dn: ')"

# --- an entry slapd refuses waits alone ------------------------------------
sql "insert into devices (mac, status) values ('02:00:00:ff:00:01', 'active');
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der)
    select id, repeat('ab', 16), sha256('bad'), 'active', now(), now() + interval '1 day',
    '\\x3003020101'::bytea from devices where mac = '02:00:00:ff:00:01';
insert into directory_outbox (entity, key, op, payload)
    values ('device', '02:00:00:ff:00:01', 'upsert', '{}');" >/dev/null
n=0
until [ "$(sql "select attempts > 0 and last_error is not null from directory_outbox where key = '02:00:00:ff:00:01'")" = t ]; do
	n=$((n + 1)); [ $n -gt 100 ] && break
	sleep 0.1
done
check_eq "the refused row records its attempt" t \
    "$(sql "select attempts > 0 and done_at is null and last_error like '%02:00:00:ff:00:01%' from directory_outbox where key = '02:00:00:ff:00:01'")"
new_csr "$T/d2.csr"
check "issue another device" provctl issue --mac 00:1A:7D:DA:71:20 --csr "$T/d2.csr" --out "$T/d2.pem"
n=0
until [ "$(sql "select count(*) from directory_outbox where done_at is null")" = 1 ]; do
	n=$((n + 1)); [ $n -gt 100 ] && break
	sleep 0.1
done
check_eq "the other device is written meanwhile" 1 "$(ldap ou=devices "(macAddress=00:1a:7d:da:71:20)" dn | grep -c '^dn: ')"
api GET /v1/directory/status >/dev/null
check "status: the refused entry is in back-off" jq -e '.entries_in_backoff == 1 and .pending == 1 and .connected' "$T/resp"
sql "update certificates set der = (select der from certificates where serial = '$serial')
    where serial = repeat('ab', 16)" >/dev/null
check "once repaired in the database it is written" wait_synced 10
check_eq "and its entry is there" 1 "$(ldap ou=devices "(macAddress=02:00:00:ff:00:01)" dn | grep -c '^dn: ')"

t_done
