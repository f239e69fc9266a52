# Sourced by tests/bench/run.sh (PostgreSQL from $B/svc, the CA in $B/ca,
# provd at $URL, which this leaves as it found it): the web console's
# reads, against a database of their own (provd_console) and a provd of
# their own: 100,000 devices (names, models, owners, groups, certificates
# expiring over 400 days and issued over 60) and 100,000 audit rows, then
# 1,000,000 of each. Times are provd's own, from its request log line,
# median of 20 requests in a row on one kept-alive connection. Prints
# "bench: NAME VALUE UNIT":
#   console_list_ms         GET /v1/devices, the first page (100), 100,000 devices
#   console_search_ms       GET /v1/devices?q=, half address prefixes, half owner names
#   console_search_mac_ms, console_search_owner_ms, console_search_name_ms  each kind
#   console_expiring_ms     GET /v1/devices?expires_before=(in 3 days)
#   console_audit_ms        GET /v1/audit?object=, and _action_ms with action=certificate.*
#   console_stats_ms        GET /v1/stats, read afresh (median of 3, 5 s apart)
#   console_page_kb         the console's first page: the bytes provd sends for
#                           /console/ and every file of server/console (the page
#                           loads all of them: app.js imports every page module)
# and the same with _1m for 1,000,000 (BENCH_CONSOLE_LARGE: another number,
# or 0 to leave them out).

CONSOLE_DEVICES=${BENCH_CONSOLE_DEVICES:-100000}
CONSOLE_LARGE=${BENCH_CONSOLE_LARGE:-1000000}

console_url_before=$URL
console_pid=""
mkdir -p "$B/console"
cat > "$B/console/provd.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=provd_console user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $B/ca
crl_url = http://127.0.0.1:8440/v1/crl
ocsp_url = http://127.0.0.1:8440/ocsp
[log]
level = info
[console]
dir = $top/server/console
CONF
psql -X -q -d postgres -c "drop database if exists provd_console with (force)" -c "create database provd_console" \
    >/dev/null 2>&1
"$BIN/provd" -c "$B/console/provd.conf" migrate >/dev/null 2>&1
"$BIN/provd" -c "$B/console/provd.conf" token add --role viewer --name bench-console \
    > "$B/console/viewer.token" 2>/dev/null

# console_populate N: devices 02:00:00:xx:xx:xx numbered 1..N (kept when
# there), 20 a user, 2 % pending, 5 % revoked; certificates for the others
# expiring over 400 days and issued over the last 60; a group each
console_populate() {
	psql -X -q -d provd_console <<SQL
insert into users (name) select 'owner-' || lpad(k::text, 6, '0')
from generate_series(1, greatest($1 / 20, 1)) k on conflict do nothing;
insert into groups (name) select 'group-' || g from generate_series(1, 50) g on conflict do nothing;
insert into devices (mac, status, name, model, owner_id)
select ('02:00:00:' || to_hex((i >> 16) & 255) || ':' || to_hex((i >> 8) & 255) || ':' || to_hex(i & 255))::macaddr,
    case when i % 20 = 0 then 'revoked' when i % 50 = 1 then 'pending' else 'active' end,
    'dev-' || lpad(i::text, 7, '0'), 'model-' || (i % 12), u.id
from generate_series(1, $1) i left join users u on u.name = 'owner-' || lpad((i / 20 + 1)::text, 6, '0')
on conflict do nothing;
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der,
    issued_at, revoked_at, revocation_reason)
select d.id, md5('c' || d.id), sha256(('c' || d.id)::bytea),
    case when d.status = 'revoked' then 'revoked' else 'active' end, now() - interval '400 days',
    now() + make_interval(days => (d.id % 400)::int, hours => (d.id % 24)::int), '\x30'::bytea,
    now() - make_interval(days => (d.id % 60)::int),
    case when d.status = 'revoked' then now() - make_interval(hours => (d.id % 200)::int) end,
    case when d.status = 'revoked' then 1 end
from devices d where d.status <> 'pending'
    and not exists (select 1 from certificates c where c.device_id = d.id);
insert into group_members (group_id, device_id)
select (select id from groups where name = 'group-' || (d.id % 50 + 1)), d.id from devices d
where not exists (select 1 from group_members m where m.device_id = d.id) on conflict do nothing;
SQL
}

# console_audit N: audit rows until the log has N, chained by
# audit_append_many 10,000 at a time; each names a device in its detail
console_audit() {
	psql -X -q -d provd_console <<SQL
do \$\$
declare
	have bigint;
	k int;
begin
	select last_seq into have from audit_head;
	while have < $1 loop
		k := least(10000, $1 - have);
		perform audit_append_many(
		    array(select 'op-' || ((have + i) % 7) from generate_series(1, k) i),
		    array(select (array['certificate.issue', 'certificate.revoke', 'certificate.renew',
			'device.owner', 'rule.use', 'group.add_member'])[1 + (have + i) % 6]
			from generate_series(1, k) i),
		    array(select case when (have + i) % 3 = 0 then md5((have + i)::text)
			else ('02:00:00:' || to_hex(((have + i) >> 16) & 255) || ':'
			|| to_hex(((have + i) >> 8) & 255) || ':' || to_hex((have + i) & 255))::macaddr::text end
			from generate_series(1, k) i),
		    array(select json_build_object('mac', ('02:00:00:' || to_hex(((have + i) >> 16) & 255) || ':'
			|| to_hex(((have + i) >> 8) & 255) || ':' || to_hex((have + i) & 255))::macaddr::text)
			from generate_series(1, k) i));
		have := have + k;
		commit;
	end loop;
end
\$\$;
SQL
}

# console_ms NAME PATH...: each PATH in turn on one connection; NAME's
# figure is the median of provd's times for them ("-1" if one failed)
console_ms() {
	_fig=$1; shift
	_before=$(wc -l < "$B/console/provd.log")
	_args=""
	for _p in "$@"; do _args="$_args -o /dev/null $URL$_p"; done
	# shellcheck disable=SC2086
	curl -s -H "Authorization: Bearer $(cat "$B/console/viewer.token")" $_args
	sleep 0.2
	tail -n +"$((_before + 1))" "$B/console/provd.log" | grep 'on_completed: ' > "$B/console/lines" || true
	if [ "$(wc -l < "$B/console/lines")" -ne $# ] || grep -qv -- '-> 200 (' "$B/console/lines"; then
		echo "bench: $_fig -1 ms"
		return
	fi
	sed -n 's/.* -> 200 (\([0-9.]*\) ms).*/\1/p' "$B/console/lines" | sort -n |
	    awk -v n="$_fig" '{ v[NR] = $1 } END { printf "bench: %s %.1f ms\n", n, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# console_run SUFFIX N: the figures for N devices (devices 1..N exist)
console_run() {
	_sfx=$1; _n=$2
	_list=""; _mac=""; _owner=""; _name=""; _both=""; _exp=""; _aud=""; _act=""
	_t3=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
	for _i in $(seq 1 20); do
		# prefixes of 256 addresses, of 10 owners (200 devices), of 100 names, spread over the table
		_k=$(( (_i * 7919) % (_n / 256) + 1 ))
		_hex=$(printf '%06x' $((_k * 256)))
		_mac="$_mac /v1/devices?q=02:00:00:$(echo "$_hex" | cut -c1-2):$(echo "$_hex" | cut -c3-4)"
		_o=$(printf '%05d' $(( (_i * 6007) % (_n / 200) + 1 )))
		_owner="$_owner /v1/devices?q=owner-$_o"
		_name="$_name /v1/devices?q=DEV-$(printf '%05d' $(( (_i * 3001) % (_n / 100) + 1 )))"
		_list="$_list /v1/devices?limit=100"
		_exp="$_exp /v1/devices?expires_before=$_t3"
		_aud="$_aud /v1/audit?object=02:00:00:$(printf '%02x:%02x:%02x' $(( (_i * 104729 % _n) >> 16 & 255 )) $(( (_i * 104729 % _n) >> 8 & 255 )) $(( (_i * 104729 % _n) & 255 )))"
		_act="$_act /v1/audit?action=certificate.*"
	done
	_both="$(echo $_mac | cut -d' ' -f1-10) $(echo $_owner | cut -d' ' -f1-10)"
	console_ms "console_list${_sfx}_ms" $_list
	console_ms "console_search${_sfx}_ms" $_both
	console_ms "console_search_mac${_sfx}_ms" $_mac
	console_ms "console_search_owner${_sfx}_ms" $_owner
	console_ms "console_search_name${_sfx}_ms" $_name
	console_ms "console_expiring${_sfx}_ms" $_exp
	console_ms "console_audit${_sfx}_ms" $_aud
	console_ms "console_audit_action${_sfx}_ms" $_act
	# the overview is kept 5 s: three reads 5 s apart, each counted afresh
	: > "$B/console/stats"
	for _i in 1 2 3; do
		[ $_i = 1 ] || sleep 5.2
		console_ms x /v1/stats | awk '{ print $3 }' >> "$B/console/stats"
	done
	sort -n "$B/console/stats" | sed -n 2p | awk -v n="console_stats${_sfx}_ms" '{ printf "bench: %s %s ms\n", n, $1 }'
}

# console_start: provd on provd_console, its devices loaded
console_start() {
	: > "$B/console/provd.log"
	provd_start "$B/console/provd.conf" "$B/console" || return 1
	console_pid=$provd_pid
	tpms="$tpms $console_pid"
	_i=0
	until grep -q 'devices loaded' "$B/console/provd.log" || [ $_i -gt 2400 ]; do
		_i=$((_i + 1)); sleep 0.05
	done
}
console_stop() {
	[ -z "$console_pid" ] || { kill -TERM "$console_pid" 2>/dev/null; wait "$console_pid" 2>/dev/null || true; }
	console_pid=""
}

# written with provd stopped (no notifications to follow), then vacuumed
# as autovacuum would in time: index-only scans need the visibility map
console_populate "$CONSOLE_DEVICES" >/dev/null
console_audit "$CONSOLE_DEVICES" >/dev/null
psql -X -q -d provd_console -c "vacuum analyze" >/dev/null
if console_start; then
	console_run "" "$CONSOLE_DEVICES"
	_bytes=$(curl -s -o /dev/null -w '%{size_download}' "$URL/console/")
	for _f in $(cd "$top/server/console" && ls); do
		[ "$_f" = index.html ] && continue
		_bytes=$((_bytes + $(curl -s -o /dev/null -w '%{size_download}' "$URL/console/$_f")))
	done
	awk -v b="$_bytes" 'BEGIN { printf "bench: console_page_kb %.1f KB\n", b / 1024 }'
	console_stop
fi
if [ "$CONSOLE_LARGE" -gt "$CONSOLE_DEVICES" ]; then
	console_populate "$CONSOLE_LARGE" >/dev/null
	console_audit "$CONSOLE_LARGE" >/dev/null
	psql -X -q -d provd_console -c "vacuum analyze" >/dev/null
	if console_start; then
		case $CONSOLE_LARGE in
		1000000) console_run _1m "$CONSOLE_LARGE";;
		*) console_run "_$CONSOLE_LARGE" "$CONSOLE_LARGE";;
		esac
		console_stop
	fi
fi
psql -X -q -d postgres -c "drop database if exists provd_console with (force)" >/dev/null
URL=$console_url_before
