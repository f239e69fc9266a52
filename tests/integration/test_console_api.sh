#!/bin/sh
# The reads a web console makes over the REST API: devices searched by an
# address, name or owner prefix and by expiry, with every filter and its
# pages; the audit log filtered and paged newest first; the overview's
# counts against SQL (and kept a few seconds); this instance's recent
# decisions (newest first, by device, capped); a question tried without
# using a one-time grant; roles (viewer reads, authorizer is refused); bad
# arguments refused; SQL and LIKE metacharacters in a search taken
# literally.
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
OP=$T/operator.token
SEC=$T/security.token
AUTH=$T/authorizer.token
ADM=$T/admin.token
VIEW=$T/viewer.token
check "a viewer token" sh -c "\"$BIN/provd\" -c \"$T/provd.conf\" token add --role viewer --name test-viewer > \"$VIEW\" 2>/dev/null"

get() { api GET "$1" "" "${2:-$VIEW}"; }
post() { printf '%s' "$2" > "$T/body.json"; api POST "$1" "$T/body.json" "${3:-$SEC}"; }
jr() { jq -r "$1" "$T/resp"; }
uri() { jq -rn --arg v "$1" '$v | @uri'; }
# psql with variables (:'q' in the statement)
sqlv() { _s=$1; shift; printf '%s\n' "$_s" | psql -X -q -At -d "$dbname" "$@"; }

# pages_of QUERY LIMIT: the addresses of every page of GET /v1/devices?QUERY
# in order, space-separated; "bad ..." when a page is wrong
pages_of() {
	_after=""; _all=""; _i=0
	while :; do
		_st=$(get "/v1/devices?$1&limit=$2${_after:+&after=$_after}")
		[ "$_st" = 200 ] || { echo "bad status $_st"; return; }
		_cnt=$(jr '.devices | length')
		_all="$_all $(jr '[.devices[].mac] | join(" ")')"
		_after=$(jr '.next // empty')
		[ -n "$_after" ] || break
		[ "$_cnt" = "$2" ] || { echo "bad: a page of $_cnt before the last"; return; }
		[ "$_after" = "$(jr '.devices[-1].mac')" ] || { echo "bad next"; return; }
		_i=$((_i + 1)); [ $_i -lt 300 ] || { echo "bad: no end"; return; }
	done
	echo $_all
}
# want_q Q [LO HI]: the addresses a search for Q lists, by SQL: a name or
# an owner's name starting with Q (compared without LIKE), or an address
# from LO to HI
want_q() {
	sqlv "select coalesce(string_agg(d.mac::text, ' ' order by d.mac), '') from devices d
	    left join users u on u.id = d.owner_id
	    where (char_length(:'q') > 0 and left(lower(d.name), char_length(:'q')) = lower(:'q'))
	    or (char_length(:'q') > 0 and left(lower(u.name), char_length(:'q')) = lower(:'q'))
	    or d.mac between :'lo' and :'hi'" -v q="$1" -v lo="${2:-ff:ff:ff:ff:ff:fe}" -v hi="${3:-00:00:00:00:00:01}"
}

# --- data ----------------------------------------------------------------
# three devices issued through the API (audit rows, real certificates), one
# of them replaced; 300 more straight into the tables, with names, models,
# owners, every status and active certificates expiring day after day
new_csr "$T/a.csr"; new_csr "$T/b.csr"; new_csr "$T/c.csr"; new_csr "$T/a2.csr"
A=aa:00:00:00:00:01
B=00:1a:7d:da:76:02
C=00:1a:7d:da:76:03
check "issue A (Aaron)" provctl issue --mac $A --csr "$T/a.csr" --owner Aaron --group lab --out "$T/a.pem"
check "issue B (50%_off)" provctl issue --mac $B --csr "$T/b.csr" --owner '50%_off' --out "$T/b.pem"
check "issue C (o'brien)" provctl issue --mac $C --csr "$T/c.csr" --owner "o'brien" --group lab --out "$T/c.pem"
check "replace A's certificate" provctl issue --mac $A --csr "$T/a2.csr" --replace --out "$T/a2.pem"
sql "insert into users (name) select 'user-' || k from generate_series(0, 6) k" >/dev/null
sql "insert into users (name) values ('back\\slash'), ('%lead')" >/dev/null
sql "insert into devices (mac, status, name, model, owner_id)
    select ('02:00:00:00:' || lpad(to_hex(i / 256), 2, '0') || ':' || lpad(to_hex(i % 256), 2, '0'))::macaddr,
      (array['pending','active','revoked','retired'])[1 + i % 4],
      case i % 3 when 0 then 'Sensor-' || lpad(i::text, 3, '0') when 1 then 'door-' || i end,
      'model-' || (i % 5),
      case when i % 2 = 0 then (select id from users where name = 'user-' || (i % 7)) end
    from generate_series(1, 300) i" >/dev/null
sql "insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der)
    select d.id, md5(d.mac::text), sha256(d.mac::text::bytea), 'active', now() - interval '1 day',
      now() + make_interval(days => i), '\\x30'::bytea
    from generate_series(1, 300) i join devices d
      on d.mac = ('02:00:00:00:' || lpad(to_hex(i / 256), 2, '0') || ':' || lpad(to_hex(i % 256), 2, '0'))::macaddr
    where d.status = 'active'" >/dev/null
# names with SQL and LIKE metacharacters; owners with them above
sql "insert into devices (mac, status, name, owner_id) values
    ('02:00:00:01:00:01', 'pending', '100%_done', null),
    ('02:00:00:01:00:02', 'pending', '1000 units', null),
    ('02:00:00:01:00:03', 'pending', '%lead', null),
    ('02:00:00:01:00:04', 'pending', '_under', null),
    ('02:00:00:01:00:05', 'pending', 'back\\slash-dev', null),
    ('02:00:00:01:00:06', 'pending', 'it''s', null),
    ('02:00:00:01:00:07', 'pending', 'Aardvark', null),
    ('02:00:00:01:00:08', 'pending', 'x', (select id from users where name = '%lead')),
    ('02:00:00:01:00:09', 'pending', 'y', (select id from users where name = 'back\\slash'))" >/dev/null
sql "analyze" >/dev/null
total=$(sql "select count(*) from devices")
check_eq "312 devices" 312 "$total"

# --- one device: name and model ------------------------------------------
check_eq "a device shows its name and model" "200 Sensor-003 model-3" \
    "$(get /v1/devices/02:00:00:00:00:03) $(jr .name) $(jr .model)"
check_eq "... null when not recorded" "200 null null" "$(get /v1/devices/$B) $(jr .name) $(jr .model)"
check_eq "... and in the list" "Sensor-003|model-3" \
    "$(get '/v1/devices?q=02:00:00:00:00:03' >/dev/null; jr '.devices[0].name + "|" + .devices[0].model')"

# --- search by address -----------------------------------------------------
want=$(want_q "" 02:00:00:00:01:00 02:00:00:00:01:ff)
check "the address prefix 02:00:00:00:01 has devices" test -n "$want"
for q in 02:00:00:00:01 0200000001 02-00-00-00-01 02-00-00-00-01- 02:00:00:00:01: 0200.0000.01; do
	check_eq "q=$q: exactly those devices" "$want" "$(pages_of "q=$(uri "$q")" 1000)"
done
check_eq "q=020000000 (an odd number of digits): 02:00:00:00:00:00 .. 02:00:00:00:0f:ff" \
    "$(want_q "" 02:00:00:00:00:00 02:00:00:00:0f:ff)" "$(pages_of "q=020000000" 1000)"
check_eq "q=02:00:00:00:01 in pages of 7" "$want" "$(pages_of "q=02:00:00:00:01" 7)"
check_eq "q=00:1A:7D (upper case)" "$B $C" "$(pages_of "q=00:1A:7D" 100)"
check_eq "q=00:1a:7d:da:76:03 (a whole address)" "$C" "$(pages_of "q=00:1a:7d:da:76:03" 100)"
check_eq "q=001a.7dda.7603" "$C" "$(pages_of "q=001a.7dda.7603" 100)"
check_eq "q=02:00:00:00:1 (a short group) is not an address: nothing" "" "$(pages_of "q=02:00:00:00:1" 100)"
check_eq "q=02:00-00 (two separators) is not an address: nothing" "" "$(pages_of "q=02:00-00" 100)"

# --- search by name and owner ----------------------------------------------
for q in sensor-1 SENSOR-1 Door-2 door-29 Sensor-300 user-3 USER- abby o\'brien "50%" "50%_" "100%" "100%_" "1000" "%" "%l" "_" "_u" "back\\" "back\\slash" "it's" "'" "x" "zzz"; do
	check_eq "q=$q: as SQL says" "$(want_q "$q")" "$(pages_of "q=$(uri "$q")" 1000)"
done
check_eq "q=% is taken literally: not every device" "02:00:00:01:00:03 02:00:00:01:00:08" "$(pages_of "q=%25" 1000)"
check_eq "q=_ is taken literally" "02:00:00:01:00:04" "$(pages_of "q=_" 1000)"
check_eq "q=100% matches 100%_done only" "02:00:00:01:00:01" "$(pages_of "q=100%25" 1000)"
check_eq "q=back\\ (a backslash) matches a name and an owner" "02:00:00:01:00:05 02:00:00:01:00:09" "$(pages_of "q=$(uri 'back\')" 1000)"
# aa: an address prefix (A), a name (Aardvark) and an owner (Aaron, A again): once each
check_eq "q=aa: address, name and owner, each device once" "02:00:00:01:00:07 $A" "$(pages_of "q=aa" 1000)"
check_eq "q=AA-00: address only" "$A" "$(pages_of "q=AA-00" 1000)"
check_eq "q=sensor in pages of 9" "$(want_q sensor)" "$(pages_of "q=sensor" 9)"
check_eq "q=user-1 in pages of 3" "$(want_q user-1)" "$(pages_of "q=user-1" 3)"
check_eq "q=0 (address and names) in pages of 50" "$(want_q 0 00:00:00:00:00:00 0f:ff:ff:ff:ff:ff)" "$(pages_of "q=0" 50)"

# --- search with the other filters ----------------------------------------------
check_eq "q=sensor&status=active" \
    "$(sql "select string_agg(mac::text, ' ' order by mac) from devices where lower(name) like 'sensor%' and status = 'active'")" \
    "$(pages_of "q=sensor&status=active" 4)"
check_eq "q=door&owner=user-3" \
    "$(sql "select string_agg(d.mac::text, ' ' order by d.mac) from devices d join users u on u.id = d.owner_id where lower(d.name) like 'door%' and u.name = 'user-3'")" \
    "$(pages_of "q=door&owner=user-3" 2)"
check_eq "q=aa&group=lab" "$A" "$(pages_of "q=aa&group=lab" 1)"
check_eq "q=00:1a&group=lab" "$C" "$(pages_of "q=00:1a&group=lab" 1)"
check_eq "q=user&owner=nobody: nothing" "" "$(pages_of "q=user&owner=nobody" 10)"

# --- expiry ------------------------------------------------------------------
T1=$(date -u -d '+40 days' +%Y-%m-%dT%H:%M:%SZ)
T2=$(date -u -d '+200 days' +%Y-%m-%dT%H:%M:%SZ)
exp_sql() { sql "select coalesce(string_agg(d.mac::text, ' ' order by d.mac), '') from devices d join certificates c on c.device_id = d.id and c.status = 'active' where $1"; }
check "some devices expire before +40 days" test -n "$(exp_sql "c.not_after < '$T1'")"
check_eq "expires_before=+40d" "$(exp_sql "c.not_after < '$T1'")" "$(pages_of "expires_before=$T1" 1000)"
check_eq "expires_before=+40d in pages of 3" "$(exp_sql "c.not_after < '$T1'")" "$(pages_of "expires_before=$T1" 3)"
check_eq "expires_after=+200d in pages of 10" "$(exp_sql "c.not_after > '$T2'")" "$(pages_of "expires_after=$T2" 10)"
check_eq "expires_after=+40d&expires_before=+200d" "$(exp_sql "c.not_after > '$T1' and c.not_after < '$T2'")" \
    "$(pages_of "expires_after=$T1&expires_before=$T2" 13)"
check_eq "expiry with q and status" "$(exp_sql "c.not_after < '$T2' and lower(d.name) like 'door%' and d.status = 'active'")" \
    "$(pages_of "expires_before=$T2&q=door&status=active" 5)"
check_eq "expiry with a group" "$(exp_sql "c.not_after < '$T2' and d.id in (select device_id from group_members where group_id = (select id from groups where name = 'lab'))")" \
    "$(pages_of "expires_before=$T2&group=lab" 5)"
check_eq "an offset and a fraction of a second are accepted" 200 \
    "$(get "/v1/devices?expires_before=$(uri "$(date -u -d '+40 days' +%Y-%m-%dT%H:%M:%S).250+02:00")")"
check_eq "... and mean what they say" "$(exp_sql "c.not_after < '$(date -u -d '+40 days' +%Y-%m-%dT%H:%M:%S).250+02:00'")" \
    "$(pages_of "expires_before=$(uri "$(date -u -d '+40 days' +%Y-%m-%dT%H:%M:%S).250+02:00")" 1000)"

# --- bad arguments -----------------------------------------------------------
for q in 'q=' 'q' "q=$(printf 'a%.0s' $(seq 1 129))" 'q=a%00b' 'q=%FF' 'q=tab%09' 'q=a&q=b' \
    'expires_before=' 'expires_before=tomorrow' 'expires_before=2026-02-30T00:00:00Z' \
    'expires_before=2026-12-01%2008:00:00Z' 'expires_before=2026-12-01T08:00:00' 'expires_before=2026-12-01T25:00:00Z' \
    'expires_after=2026-12-01T08:00:00%2B24:00' 'expires_after=1969-12-31T23:59:59Z' 'expires_after=2026-12-01T08:00:00.Z' \
    'expires_before=2026-1-01T08:00:00Z' 'expiry=2026-12-01T08:00:00Z' 'q=x&after=zz'; do
	check_eq "GET /v1/devices?$(printf '%.50s' "$q") -> 400" 400 "$(get "/v1/devices?$q")"
done
check_eq "the message for a bad time" "expires_before must be a time like 2026-12-01T08:00:00Z." \
    "$(get '/v1/devices?expires_before=x' >/dev/null; jr .error.message)"
check_eq "the message for a bad q" "q must be 1 to 128 printable characters." "$(get '/v1/devices?q=' >/dev/null; jr .error.message)"
check_eq "a 128-byte q is fine" 200 "$(get "/v1/devices?q=$(printf 'a%.0s' $(seq 1 128))")"
check_eq "q in UTF-8" "200 0" "$(get "/v1/devices?q=$(uri 'Zoë')") $(jr '.devices | length')"

# --- the audit log -----------------------------------------------------------
sql "select audit_append('actor-' || (i % 4), 'test.' || (array['alpha','beta','gamma'])[1 + i % 3], 'obj-' || (i % 10),
    case when i % 5 = 0 then json_build_object('mac', '$C') when i % 7 = 0 then json_build_object('device', '$C')
    else json_build_object('i', i) end) from generate_series(1, 250) i" >/dev/null
# audit_pages QUERY LIMIT: "seq|action|object|actor" of every page, newest
# first, space-separated; or "bad ..."
audit_pages() {
	_before=""; _i=0; : > "$T/audit.out"
	while :; do
		_st=$(get "/v1/audit?limit=$2${1:+&$1}${_before:+&before=$_before}")
		[ "$_st" = 200 ] || { echo "bad status $_st"; return; }
		jr '.entries[] | [(.seq | tostring), .action, .object, .actor] | join("|")' >> "$T/audit.out"
		_before=$(jr '.next // empty')
		[ -n "$_before" ] || break
		[ "$(jr '.entries | length')" = "$2" ] || { echo "bad: a short page before the last"; return; }
		[ "$_before" = "$(jr '.entries[-1].seq')" ] || { echo "bad next"; return; }
		_i=$((_i + 1)); [ $_i -lt 500 ] || { echo "bad: no end"; return; }
	done
	echo $(cat "$T/audit.out")
}
# w CONDITION: the same by SQL
w() { sql "select coalesce(string_agg(seq || '|' || action || '|' || object || '|' || actor, ' ' order by seq desc), '') from audit_log where $1"; }
check_eq "GET /v1/audit: the newest 100, newest first" \
    "$(sql "select string_agg(seq::text, ' ' order by seq desc) from (select seq from audit_log order by seq desc limit 100) x")" \
    "$(get /v1/audit >/dev/null; jr '[.entries[].seq | tostring] | join(" ")')"
one=$(sql "select seq from audit_log where detail->>'i' is not null order by seq desc limit 1")
check_eq "an entry's fields" "$(sql "select seq || '|' || actor || '|' || action || '|' || object || '|' || (detail->>'i') from audit_log where seq = $one")" \
    "$(get "/v1/audit?before=$((one + 1))&limit=1" >/dev/null; jr '.entries[0] | [(.seq | tostring), .actor, .action, .object, (.detail.i | tostring)] | join("|")')"
check_out "at is RFC 3339 UTC" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' jr '.entries[0].at'
check_eq "the whole log in pages of 37" "$(w true)" "$(audit_pages "" 37)"
check_eq "action=test.beta in pages of 11" "$(w "action = 'test.beta'")" "$(audit_pages "action=test.beta" 11)"
check_eq "action=test.* in pages of 100" "$(w "action like 'test.%'")" "$(audit_pages "action=test.*" 100)"
check_eq "action=certificate.*" "$(w "action like 'certificate.%'")" "$(audit_pages "action=certificate.*" 2)"
check "... which holds issues and the replacement" test "$(w "action like 'certificate.%'" | wc -w)" -ge 4
check_eq "action=cert.* (a prefix ends at the dot): nothing" "" "$(audit_pages "action=cert.*" 10)"
check_eq "action=test (exact): nothing" "" "$(audit_pages "action=test" 10)"
check_eq "object=obj-3 in pages of 4" "$(w "object = 'obj-3'")" "$(audit_pages "object=obj-3" 4)"
check_eq "actor=actor-1&action=test.gamma" "$(w "actor = 'actor-1' and action = 'test.gamma'")" "$(audit_pages "actor=actor-1&action=test.gamma" 5)"
check_eq "actor=test-operator (the token)" "$(w "actor = 'test-operator'")" "$(audit_pages "actor=test-operator" 1)"
check_eq "device=C: its object or its detail" \
    "$(w "object = '$C' or detail->>'mac' = '$C' or detail->>'device' = '$C'")" "$(audit_pages "device=$(uri 001A.7DDA.7603)" 9)"
check "... which has the issuance and rows naming it" test "$(w "object = '$C' or detail->>'mac' = '$C' or detail->>'device' = '$C'" | wc -w)" -gt 50
mid=$(sql "select seq from audit_log where action like 'test.%' order by seq limit 1 offset 120")
at_mid=$(sql "select to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from audit_log where seq = $mid")
at_end=$(sql "select to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from audit_log where seq = $mid + 40")
check_eq "since=$at_mid" "$(w "at >= '$at_mid'")" "$(audit_pages "since=$at_mid" 33)"
check_eq "since and until" "$(w "at >= '$at_mid' and at < '$at_end'")" "$(audit_pages "since=$at_mid&until=$at_end&action=test.*" 7)"
check_eq "until in the past: nothing" "" "$(audit_pages "until=2001-01-01T00:00:00Z" 7)"
check_eq "before=$mid" "$(w "seq < $mid and object = 'obj-1'")" "$(audit_pages "object=obj-1&before=$mid" 1000)"
for q in 'action=.*' 'action=' "action=$(printf 'a%.0s' $(seq 1 65))" 'action=a%20b' 'object=' 'actor=' 'before=0' 'before=-1' 'before=x' \
    'limit=0' 'limit=1001' 'since=yesterday' 'until=2026-13-01T00:00:00Z' 'device=nonsense' 'device=01:00:5e:00:00:01' 'seq=1' 'action=a&action=b'; do
	check_eq "GET /v1/audit?$(printf '%.50s' "$q") -> 400" 400 "$(get "/v1/audit?$q")"
done
check_eq "audit: operator may read" 200 "$(get /v1/audit "$OP")"
check_eq "audit: security may read" 200 "$(get /v1/audit "$SEC")"
check_eq "audit: admin may read" 200 "$(get /v1/audit "$ADM")"
check_eq "audit: authorizer may not -> 403" 403 "$(get /v1/audit "$AUTH")"
check_eq "audit: no token -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/audit")"
check_eq "the chain still verifies (the listing changes nothing)" "200 true" \
    "$(api POST /v1/audit/verify "" "$SEC") $(jr .ok)"

# --- decisions, tried and asked ----------------------------------------------
check_eq "resource door-1" 201 "$(post /v1/resources '{"name":"door-1"}')"
check_eq "a one-time grant for C on door-1" 201 \
    "$(post /v1/rules "{\"subject\":{\"device\":\"$C\"},\"resource\":\"door-1\",\"effect\":\"allow\",\"one_time\":true}")"
grant=$(jr .id)
check_eq "a standing rule: lab may connect to door-1" 201 \
    "$(post /v1/rules '{"subject":{"group":"lab"},"resource":"door-1","action":"connect","effect":"allow"}')"
standing=$(jr .id)
wait_cache() {
	_w=0
	while [ "$(curl -s -H "Authorization: Bearer $(cat "$SEC")" "$URL/v1/policy" | jq -r .cache.policy_version)" != "$(sql "select version from policy_version")" ]; do
		_w=$((_w + 1)); [ $_w -lt 300 ] || return 1; sleep 0.01
	done
}
check "the cache has the policy" wait_cache
cache_counts() { curl -s -H "Authorization: Bearer $(cat "$SEC")" "$URL/v1/policy" | jq -r '[.cache.decisions, .cache.allowed, .cache.cold] | map(tostring) | join(" ")'; }
newest() { get /v1/decisions >/dev/null; jr '.decisions[0].seq // 0'; }
q_open="{\"device\":{\"mac\":\"$C\"},\"resource\":\"door-1\",\"action\":\"open\"}"
c0=$(cache_counts); s0=$(newest)
check_eq "try: allowed once by the grant, tried" "200 allow|allowed once by rule $grant|true" \
    "$(post /v1/authorize/try "$q_open" "$VIEW") $(jr '.decision + "|" + .reason + "|" + (.tried | tostring)')"
check_eq "... the answer's other fields as for a question" "$C|active|o'brien|lab|30" \
    "$(jr '[.device.mac, .device.status, .device.owner, (.device.groups | join(",")), (.ttl_s | tostring)] | join("|")')"
check_eq "try again: still allowed once (nothing used)" "allow|allowed once by rule $grant" \
    "$(post /v1/authorize/try "$q_open" "$SEC" >/dev/null; jr '.decision + "|" + .reason')"
check_eq "the grant is unused in the database" "t" "$(sql "select used_at is null from access_rules where id = $grant")"
check_eq "tries are not counted in the decision metrics" "$c0" "$(cache_counts)"
check_eq "tries are not in the decisions" "$s0" "$(newest)"
check_eq "try by an unknown device" "deny|unknown device|true" \
    "$(post /v1/authorize/try '{"device":{"mac":"00:1a:7d:da:76:99"},"resource":"door-1"}' "$ADM" >/dev/null; jr '.decision + "|" + .reason + "|" + (.tried | tostring)')"
check_eq "try: a bad question -> 400 as for a question" "400 invalid_request" \
    "$(post /v1/authorize/try '{"device":{"mac":"'$C'"}}' "$VIEW") $(jr .error.code)"
check_eq "try: a bad address -> 400 bad_mac" "400 bad_mac" \
    "$(post /v1/authorize/try '{"device":{"mac":"nope"},"resource":"door-1"}' "$VIEW") $(jr .error.code)"
check_eq "try: authorizer may not -> 403" 403 "$(post /v1/authorize/try "$q_open" "$AUTH")"
check_eq "try: operator may" 200 "$(post /v1/authorize/try "$q_open" "$OP")"
check_eq "the question itself uses the grant" "allow|allowed once by rule $grant" \
    "$(post /v1/authorize "$q_open" "$AUTH" >/dev/null; jr '.decision + "|" + .reason')"
check_eq "the grant is used in the database" "f" "$(sql "select used_at is null from access_rules where id = $grant")"
check "the cache knows" wait_cache
check_eq "try now: no rule allows this" "deny|no rule allows this" \
    "$(post /v1/authorize/try "$q_open" "$VIEW" >/dev/null; jr '.decision + "|" + .reason')"
check_eq "the question was counted, once" "$(echo "$c0" | awk '{print $1 + 1, $2 + 1, $3}')" "$(cache_counts)"

# a few questions, then the ring newest first
post /v1/authorize "{\"device\":{\"mac\":\"$A\"},\"resource\":\"door-1\",\"action\":\"connect\"}" "$AUTH" >/dev/null
post /v1/authorize '{"device":{"mac":"00:1a:7d:da:76:99"},"resource":"door-1"}' "$AUTH" >/dev/null
fpB=$(openssl x509 -in "$T/b.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
post /v1/authorize "{\"device\":{\"certificate_sha256\":\"$fpB\"},\"resource\":\"nowhere\"}" "$AUTH" >/dev/null
post /v1/authorize "{\"device\":{\"mac\":\"$C\"},\"resource\":\"door-1\",\"action\":\"connect\"}" "$AUTH" >/dev/null
check_eq "GET /v1/decisions: newest first" \
    "$C|door-1|connect|allow|allowed by rule $standing|test-authorizer $B|nowhere|connect|deny|unknown resource|test-authorizer 00:1a:7d:da:76:99|door-1|connect|deny|unknown device|test-authorizer $A|door-1|connect|allow|allowed by rule $standing|test-authorizer $C|door-1|open|allow|allowed once by rule $grant|test-authorizer" \
    "$(get /v1/decisions >/dev/null; jr '[.decisions[:5][] | [.mac, .resource, .action, .decision, .reason, .actor] | join("|")] | join(" ")')"
check_eq "... seq descending by one" "$(jr '.decisions[0].seq') $(($(jr '.decisions[0].seq') - 1)) $(($(jr '.decisions[0].seq') - 2))" \
    "$(jr '[.decisions[:3][].seq | tostring] | join(" ")')"
check_eq "... the policy version and the time" "$(sql "select version from policy_version")|true" \
    "$(jr '(.decisions[0].policy_version | tostring) + "|" + (.decisions[0].at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$") | tostring)')"
check_eq "... a question by certificate has its hash" "$fpB" "$(jr '.decisions[1].certificate_sha256')"
check_eq "... the capacity" 4096 "$(jr .capacity)"
check_eq "by mac (another spelling): C's, newest first" "open|connect" \
    "$(get "/v1/decisions?mac=001A.7DDA.7603" >/dev/null; jr '[.decisions[].action] | reverse | join("|")')"
check_eq "limit=2 and next" "2 $(($(newest) - 1))" "$(get "/v1/decisions?limit=2" >/dev/null; jr '.decisions | length') $(jr .next)"
check_eq "before=next continues" "$(($(newest) - 2))" "$(get "/v1/decisions?limit=2" >/dev/null; get "/v1/decisions?limit=1&before=$(jr .next)" >/dev/null; jr '.decisions[0].seq')"
check_eq "by mac with limit 1: next, then the last" "connect open null" \
    "$(get "/v1/decisions?mac=$C&limit=1" >/dev/null; a1=$(jr '.decisions[0].action'); get "/v1/decisions?mac=$C&limit=1&before=$(jr .next)" >/dev/null; echo "$a1 $(jr '.decisions[0].action') $(jr .next)")"
check_eq "a device with no decisions: none" "0 null" "$(get "/v1/decisions?mac=02:00:00:00:00:05" >/dev/null; jr '.decisions | length') $(jr .next)"
for q in 'mac=nope' 'mac=' 'limit=0' 'limit=1001' 'before=0' 'before=x' 'x=1' 'mac=01:00:5e:00:00:01'; do
	check_eq "GET /v1/decisions?$q -> 400" 400 "$(get "/v1/decisions?$q")"
done
check_eq "decisions: authorizer may not -> 403" 403 "$(get /v1/decisions "$AUTH")"
check_eq "decisions: operator may" 200 "$(get /v1/decisions "$OP")"

# capped: 4,200 more decisions in batches of 100 (about A and B on door-1)
printf '{"questions":[%s]}' "$(for i in $(seq 1 50); do printf '{"device":{"mac":"%s"},"resource":"door-1","action":"connect"},{"device":{"mac":"%s"},"resource":"door-1"},' "$A" "$B"; done | sed 's/,$//')" > "$T/batch.json"
okb=0
for i in $(seq 1 42); do
	[ "$(api POST /v1/authorize/batch "$T/batch.json" "$AUTH")" = 200 ] && okb=$((okb + 1))
done
check_eq "42 batches of 100 asked" 42 "$okb"
top=$(newest)
check "4,200 more in the ring's numbering" test "$top" -ge 4205
: > "$T/seqs"; bf=""; pg=0
while :; do
	get "/v1/decisions?limit=1000${bf:+&before=$bf}" >/dev/null
	jr '.decisions[].seq' >> "$T/seqs"
	bf=$(jr '.next // empty'); [ -n "$bf" ] || break
	pg=$((pg + 1)); [ $pg -lt 10 ] || break
done
check_eq "the ring holds the last 4096, in 5 pages, newest first" "4096 $top $((top - 4095)) 5" \
    "$(wc -l < "$T/seqs" | tr -d ' ') $(head -n 1 "$T/seqs") $(tail -n 1 "$T/seqs") $((pg + 1))"
check_eq "... none twice, in order" "$(sort -rn "$T/seqs" | uniq | tr '\n' ' ')" "$(tr '\n' ' ' < "$T/seqs")"
check_eq "C's decisions left the ring" "0" "$(get "/v1/decisions?mac=$C" >/dev/null; jr '.decisions | length')"
check_eq "B's: 1000 a page at most" "1000 true" "$(get "/v1/decisions?mac=$B&limit=1000" >/dev/null; jr '.decisions | length') $(jr '.next != null')"

# --- the overview ----------------------------------------------------------------
# history: two certificates issued 3 days ago (one of them replaced 2 days
# ago, as a renewal would), and a revocation through the API
d3="date_trunc('day', now()) - interval '3 days' + interval '12 hours'"
d2="date_trunc('day', now()) - interval '2 days' + interval '12 hours'"
sql "insert into devices (mac, status) values ('02:00:00:02:00:01', 'active'), ('02:00:00:02:00:02', 'active')" >/dev/null
sql "insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der, issued_at, revoked_at, revocation_reason)
    select id, md5('h' || mac::text), sha256(('h' || mac::text)::bytea), case when mac = '02:00:00:02:00:01' then 'superseded' else 'active' end,
      now() - interval '3 days', now() + interval '10 days', '\\x30'::bytea, $d3,
      case when mac = '02:00:00:02:00:01' then $d2 end, case when mac = '02:00:00:02:00:01' then 4 end
    from devices where mac in ('02:00:00:02:00:01', '02:00:00:02:00:02')" >/dev/null
sql "insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der, issued_at)
    select id, md5('r' || mac::text), sha256(('r' || mac::text)::bytea), 'active', now() - interval '2 days', now() + interval '20 days', '\\x30'::bytea, $d2
    from devices where mac = '02:00:00:02:00:01'" >/dev/null
sql "update certificates set superseded_by = (select id from certificates where serial = md5('r02:00:00:02:00:01')) where serial = md5('h02:00:00:02:00:01')" >/dev/null
check "revoke B" provctl --token-file "$SEC" revoke $B --reason keyCompromise
check_eq "GET /v1/stats" 200 "$(get /v1/stats)"
cp "$T/resp" "$T/stats.json"
sj() { jq -r "$1" "$T/stats.json"; }
check_eq "devices by status" "$(sql "select string_agg((select count(*) from devices where status = s)::text, ' ' order by o) from unnest(array['pending','active','revoked','retired']) with ordinality t(s, o)")" \
    "$(sj '[.devices.pending, .devices.active, .devices.revoked, .devices.retired] | map(tostring) | join(" ")')"
check_eq "certificates by status" "$(sql "select string_agg((select count(*) from certificates where status = s)::text, ' ' order by o) from unnest(array['active','revoked','superseded']) with ordinality t(s, o)")" \
    "$(sj '[.certificates.active, .certificates.revoked, .certificates.superseded] | map(tostring) | join(" ")')"
check_eq "revocations in 24 hours: B" "1" "$(sj .revocations_24h)"
check_eq "30 days, consecutive, ending today (UTC)" "30 $(date -u -d '-29 days' +%Y-%m-%d) $(date -u +%Y-%m-%d)" \
    "$(sj '.enrollments_per_day | length') $(sj '.enrollments_per_day[0].day') $(sj '.enrollments_per_day[-1].day')"
check_eq "enrollments per day: issued, without those that replaced another" \
    "$(sql "select string_agg((select count(*) from certificates c where c.issued_at >= d and c.issued_at < d + interval '1 day'
        and not exists (select 1 from certificates o where o.superseded_by = c.id))::text, ' ' order by d)
        from generate_series(date_trunc('day', now() at time zone 'UTC') - interval '29 days', date_trunc('day', now() at time zone 'UTC'), interval '1 day') t(d0),
        lateral (select d0 at time zone 'UTC' as d) x")" \
    "$(sj '[.enrollments_per_day[].count | tostring] | join(" ")')"
check_eq "... 3 days ago: 2; 2 days ago: none (a renewal)" "2 0" \
    "$(sj '[.enrollments_per_day[26].count, .enrollments_per_day[27].count] | map(tostring) | join(" ")')"
check_eq "12 weeks from this week's Monday" "12 $(date -u -d "-$(( ($(date -u +%u) - 1) )) days" +%Y-%m-%d) 1" \
    "$(sj '.expiring_per_week | length') $(sj '.expiring_per_week[0].week_start') $(sj '[.expiring_per_week[].week_start] | unique | length == 12 | if . then 1 else 0 end')"
check_eq "expiring per week, active certificates from now on" \
    "$(sql "select string_agg((select count(*) from certificates where status = 'active' and not_after >= greatest(w, now()) and not_after < w + interval '7 days')::text, ' ' order by w)
        from generate_series((date_trunc('week', now() at time zone 'UTC')) at time zone 'UTC', (date_trunc('week', now() at time zone 'UTC')) at time zone 'UTC' + interval '77 days', interval '7 days') w")" \
    "$(sj '[.expiring_per_week[].count | tostring] | join(" ")')"
check_out "generated_at is RFC 3339 UTC" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' sj .generated_at
sql "update devices set status = 'retired' where mac = '02:00:00:02:00:02'" >/dev/null
check_eq "read again at once: the same answer (kept)" "$(cat "$T/stats.json")" "$(get /v1/stats >/dev/null; cat "$T/resp")"
sleep 5.2
check_eq "after 5 seconds: read again" "$(( $(sj .devices.retired) + 1 ))" "$(get /v1/stats >/dev/null; jr .devices.retired)"
check_eq "GET /v1/stats?x=1 -> 400" 400 "$(get '/v1/stats?x=1')"
check_eq "stats: operator may" 200 "$(get /v1/stats "$OP")"
check_eq "stats: authorizer may not -> 403" 403 "$(get /v1/stats "$AUTH")"

# --- replacing a rule (PUT /v1/rules/{id}) -----------------------------------------
put() { printf '%s' "$2" > "$T/body.json"; api PUT "$1" "$T/body.json" "${3:-$SEC}"; }
check_eq "resource lab-printer" 201 "$(post /v1/resources '{"name":"lab-printer"}')"
check_eq "rule: lab may print" 201 \
    "$(post /v1/rules '{"subject":{"group":"lab"},"resource":"lab-printer","action":"print","effect":"allow"}')"
r_old=$(jr .id); v_old=$(jr .policy_version)
q_print="{\"device\":{\"mac\":\"$A\"},\"resource\":\"lab-printer\",\"action\":\"print\"}"
post /v1/groups/lab/devices "{\"mac\":\"$A\"}" >/dev/null	# 409 if it is already
get /v1/policy "$SEC" >/dev/null
v_old=$(jr .policy_version)
sleep 0.3
check_eq "before: A may print" "allow" "$(post /v1/authorize/try "$q_print" "$VIEW" >/dev/null; jr .decision)"
n_audit=$(sql "select count(*) from audit_log")
check_eq "replace it by a deny -> 200" 200 \
    "$(put /v1/rules/$r_old '{"subject":{"group":"lab"},"resource":"lab-printer","action":"print","effect":"deny"}')"
r_new=$(jr .id)
check_eq "a new id, one new policy version" "yes $((v_old + 1))" \
    "$([ "$r_new" -gt "$r_old" ] && echo yes) $(jr .policy_version)"
check_eq "the old rule is gone, the new one is there" "0 1 deny" \
    "$(sql "select (select count(*) from access_rules where id = $r_old), (select count(*) from access_rules where id = $r_new), (select effect from access_rules where id = $r_new)" | tr '|' ' ')"
check_eq "audit: rule.add for the new rule, then rule.replace naming both" \
    "rule.add $r_new;rule.replace $r_old {\"replaced_by\" : $r_new}" \
    "$(sql "select string_agg(action || ' ' || object || coalesce(case when action = 'rule.replace' then ' ' || detail::text end, ''), ';' order by seq) from audit_log where seq > (select max(seq) - 2 from audit_log)")"
check_eq "two audit rows" "$((n_audit + 2))" "$(sql "select count(*) from audit_log")"
sleep 0.3
check_eq "after: A may not print" "deny" "$(post /v1/authorize/try "$q_print" "$VIEW" >/dev/null; jr .decision)"
before=$(sql "select count(*) || ' ' || max(id) from access_rules")
v_now=$(sql "select version from policy_version")
check_eq "replace by a rule on an unknown resource -> 404" "404 not_found" \
    "$(put /v1/rules/$r_new '{"subject":{"group":"lab"},"resource":"no-such","effect":"allow"}') $(jr .error.code)"
check_eq "... the rule stays, no new version" "$before $v_now" \
    "$(sql "select count(*) || ' ' || max(id) from access_rules") $(sql "select version from policy_version")"
check_eq "replace a rule that is gone -> 404" 404 \
    "$(put /v1/rules/$r_old '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"allow"}')"
check_eq "... nothing added" "$before" "$(sql "select count(*) || ' ' || max(id) from access_rules")"
check_eq "a bad body -> 400, nothing changed" "400 $before" \
    "$(put /v1/rules/$r_new '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"maybe"}') $(sql "select count(*) || ' ' || max(id) from access_rules")"
check_eq "an unknown field -> 400" 400 \
    "$(put /v1/rules/$r_new '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"allow","x":1}')"
check_eq "a bad id -> 400" 400 \
    "$(put /v1/rules/0 '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"allow"}')"
check_eq "viewer may not replace -> 403" 403 \
    "$(put /v1/rules/$r_new '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"allow"}' "$VIEW")"
check_eq "operator may not replace -> 403" 403 \
    "$(put /v1/rules/$r_new '{"subject":{"group":"lab"},"resource":"lab-printer","effect":"allow"}' "$OP")"
check_out "provctl rule replace" "^id [0-9]+, policy version" \
    env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" rule replace "$r_new" --group lab --resource lab-printer --allow
check_fails_out "provctl rule replace with a bad id: usage" "rule replace ID" \
    env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" rule replace 1x --group lab --resource lab-printer --allow

# --- who may read ----------------------------------------------------------------
check_eq "viewer may list devices" 200 "$(get '/v1/devices?q=aa')"
check_eq "viewer may read a device" 200 "$(get /v1/devices/$A)"
check_eq "authorizer may not search devices -> 403" 403 "$(get '/v1/devices?q=aa' "$AUTH")"
check_eq "viewer may not change an owner -> 403" 403 \
    "$(printf '{"owner":"x"}' > "$T/body.json"; api PUT /v1/devices/$A/owner "$T/body.json" "$VIEW")"
check_eq "viewer may not add a rule -> 403" 403 "$(post /v1/rules '{"subject":{"group":"lab"},"resource":"door-1","effect":"deny"}' "$VIEW")"
check_eq "viewer may not ask /v1/authorize -> 403" 403 "$(post /v1/authorize "$q_open" "$VIEW")"
check_eq "GET /v1/audit/verify -> 405" 405 "$(get /v1/audit/verify "$SEC")"
check_eq "POST /v1/stats -> 405" 405 "$(post /v1/stats '{}' "$ADM")"

t_done
