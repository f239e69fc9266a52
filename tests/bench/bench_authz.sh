# Sourced by tests/bench/run.sh (provd at $URL on database provd, the
# benchmark directory $B): POST /v1/authorize with 64 keep-alive
# connections (wrk with a Lua body) against 100,000 devices and 1,000
# rules, warm cache; the same right after provd started (cold: devices read
# per request until the cache is loaded); nginx serving a small static file
# in the same run for scale; provd's resident memory with 1,000,000
# devices. Prints "bench: NAME VALUE UNIT".

AUTHZ_DEVICES=${BENCH_AUTHZ_DEVICES:-100000}
AUTHZ_SECONDS=${BENCH_AUTHZ_SECONDS:-10}

# devices with active certificates (placeholder DER: the cache reads status,
# serial, fingerprint and validity), 100 resources, 50 groups, 1,000 rules
populate() {	# N: devices 02:00:00:xx:xx:xx numbered 1..N (existing ones kept)
	psql -X -q -d provd <<SQL
insert into groups (name) select 'group-' || g from generate_series(1, 50) g on conflict do nothing;
insert into resources (name) select 'ap-' || r from generate_series(1, 100) r on conflict do nothing;
insert into devices (mac, status)
select ('02:00:00:' || to_hex((i >> 16) & 255) || ':' || to_hex((i >> 8) & 255) || ':' || to_hex(i & 255))::macaddr,
    'active' from generate_series(1, $1) i on conflict do nothing;
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der)
select d.id, md5('s' || d.id), sha256(('f' || d.id)::bytea), 'active', now() - interval '1 day',
    now() + interval '300 days', '\x30'::bytea
from devices d where d.mac >= '02:00:00:00:00:00' and d.mac <= '02:00:00:ff:ff:ff'
    and not exists (select 1 from certificates c where c.device_id = d.id);
insert into group_members (group_id, device_id)
select (select id from groups where name = 'group-' || (d.id % 50 + 1)), d.id from devices d
where d.mac >= '02:00:00:00:00:00' and d.mac <= '02:00:00:ff:ff:ff' on conflict do nothing;
insert into access_rules (group_id, resource_id, action, effect)
select g.id, r.id, 'connect', case when (g.id + r.id) % 7 = 0 then 'deny' else 'allow' end
from (select id from groups where name like 'group-%' order by id limit 50) g
cross join (select id from resources where name like 'ap-%' order by id limit 20) r
where (select count(*) from access_rules) < 1000;
analyze;
SQL
}

"$BIN/provd" -c "$B/provd.conf" token add --role authorizer --name bench-authz > "$B/authz.token" 2>/dev/null
populate "$AUTHZ_DEVICES" >/dev/null

cat > "$B/authz.lua" <<LUA
local n = $AUTHZ_DEVICES
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $(cat "$B/authz.token")"
math.randomseed(42)
request = function()
	local i = math.random(1, n)
	local mac = string.format("02:00:00:%02x:%02x:%02x", math.floor(i / 65536) % 256,
	    math.floor(i / 256) % 256, i % 256)
	local body = string.format('{"device":{"mac":"%s"},"resource":"ap-%d","action":"connect"}',
	    mac, math.random(1, 20))
	return wrk.format(nil, "/v1/authorize", nil, body)
end
LUA

# wrk_run NAME URL [SCRIPT] [SECONDS]: "bench: NAME_per_s" and, with a
# script, NAME_p99_ms
wrk_run() {
	_out=$(wrk -t2 -c64 -d"${4:-$AUTHZ_SECONDS}"s --latency ${3:+-s "${3:-}"} "$2" 2>&1)
	_rps=$(echo "$_out" | awk '/Requests\/sec/ { printf "%d", $2 }')
	_non2xx=$(echo "$_out" | awk '/Non-2xx/ { print $NF }')
	echo "bench: $1_per_s ${_rps:-0} /s"
	if [ -n "${3:-}" ]; then
		echo "$_out" | awk -v n="$1" '$1 == "99%" { v = $2; u = 1;
			if (v ~ /us$/) { sub(/us$/, "", v); u = 0.001 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
			else if (v ~ /s$/) { sub(/s$/, "", v); u = 1000 }
			printf "bench: %s_p99_ms %.2f ms\n", n, v * u }'
	fi
	[ -z "$_non2xx" ] || echo "bench: $1_non2xx $_non2xx count"
}

# cold: a provd without the device cache ([authz] cache = no) reads each
# question's device from PostgreSQL
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
sed 's/^\[log\]$/[authz]\ncache = no\n[log]/' "$B/provd.conf" > "$B/provd-cold.conf"
mkdir -p "$B/cold"
provd_start "$B/provd-cold.conf" "$B/cold"; cold_pid=$provd_pid; tpms="$tpms $cold_pid"
wrk_run authz_cold "$URL" "$B/authz.lua"
kill -TERM "$cold_pid"; wait "$cold_pid" 2>/dev/null || true

# warm: provd loads every device at start (logged at info: read the
# time from /v1/policy instead), then answers from memory
provd_start "$B/provd.conf" "$B"; pid=$provd_pid
"$BIN/provd" -c "$B/provd.conf" token add --role security --name bench-sec > "$B/sec.token" 2>/dev/null
t0=$(date +%s%N)
_i=0
until curl -s -H "Authorization: Bearer $(cat "$B/sec.token")" "$URL/v1/policy" |
    jq -e '.cache.loaded' >/dev/null 2>&1 || [ $_i -gt 1200 ]; do
	_i=$((_i + 1)); sleep 0.05
done
echo "bench: authz_load_100k_ms $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wrk_run authz "$URL" "$B/authz.lua"

# revocation to denial on a second provd sharing the database: 100
# revocations through the first instance, each timed until the second
# answers deny
mkdir -p "$B/second"
provd_start "$B/provd.conf" "$B/second"; second_pid=$provd_pid; URL2=$URL
tpms="$tpms $second_pid"
URL=$(sed -n 's/.*listening on .*:\([0-9]*\)$/http:\/\/127.0.0.1:\1/p' "$B/provd.out")
"$BIN/provd" -c "$B/provd.conf" token add --role admin --name bench-rev > "$B/rev.token" 2>/dev/null
_i=0
until curl -s -H "Authorization: Bearer $(cat "$B/sec.token")" "$URL2/v1/policy" |
    jq -e '.cache.loaded' >/dev/null 2>&1 || [ $_i -gt 1200 ]; do
	_i=$((_i + 1)); sleep 0.05
done
python3 - "$URL" "$URL2" "$B/rev.token" "$B/authz.token" <<'PY'
import http.client, json, sys, time, urllib.parse
u1, u2 = (urllib.parse.urlparse(u) for u in sys.argv[1:3])
rev = open(sys.argv[3]).read().strip()
ask = open(sys.argv[4]).read().strip()
c1 = http.client.HTTPConnection(u1.hostname, u1.port)
c2 = http.client.HTTPConnection(u2.hostname, u2.port)
lat = []
for i in range(1, 101):
	mac = "02:00:00:%02x:%02x:%02x" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
	t0 = time.monotonic()
	c1.request("POST", "/v1/devices/%s/revoke" % mac, json.dumps({"reason": "keyCompromise"}),
	    {"Authorization": "Bearer " + rev, "Content-Type": "application/json"})
	r = c1.getresponse(); r.read()
	if r.status != 200:
		continue
	body = json.dumps({"device": {"mac": mac}, "resource": "ap-1", "action": "connect"})
	while time.monotonic() - t0 < 5:
		c2.request("POST", "/v1/authorize", body,
		    {"Authorization": "Bearer " + ask, "Content-Type": "application/json"})
		r = c2.getresponse(); d = json.loads(r.read())
		if d.get("reason") == "device revoked":
			break
	lat.append((time.monotonic() - t0) * 1000)
lat.sort()
if lat:
	print("bench: revocation_to_deny_p50_ms %.1f ms" % lat[len(lat) // 2])
	print("bench: revocation_to_deny_p99_ms %.1f ms" % lat[min(len(lat) - 1, int(len(lat) * 0.99))])
	print("bench: revocation_to_deny_max_ms %.1f ms" % lat[-1])
PY
kill -TERM "$second_pid"; wait "$second_pid" 2>/dev/null || true

# nginx: a small static file, same machine, same wrk
mkdir -p "$B/nginx/html" "$B/nginx/tmp"
echo '{"decision":"allow"}' > "$B/nginx/html/index.json"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$B/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $B/nginx/nginx.pid;
error_log $B/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $B/nginx/tmp;
	proxy_temp_path $B/nginx/tmp;
	fastcgi_temp_path $B/nginx/tmp;
	uwsgi_temp_path $B/nginx/tmp;
	scgi_temp_path $B/nginx/tmp;
	server { listen 127.0.0.1:$nport; root $B/nginx/html; }
}
NGINX
# in the foreground of a background job: run.sh's cleanup stops it
nginx -c "$B/nginx/nginx.conf" -p "$B/nginx" -g 'daemon off;' &
nginx_pid=$!
tpms="$tpms $nginx_pid"
sleep 0.3
wrk_run nginx_static "http://127.0.0.1:$nport/index.json"
kill "$nginx_pid" 2>/dev/null || true
wait "$nginx_pid" 2>/dev/null || true

# resident memory with 1,000,000 devices
if [ "${BENCH_RSS_DEVICES:-1000000}" -gt 0 ]; then
	populate "${BENCH_RSS_DEVICES:-1000000}" >/dev/null
	kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
	: > "$B/provd.log"
	provd_start "$B/provd.conf" "$B"; pid=$provd_pid
	t0=$(date +%s%N)
	_i=0
	until curl -s -H "Authorization: Bearer $(cat "$B/sec.token")" "$URL/v1/policy" |
	    jq -e '.cache.loaded' >/dev/null 2>&1 || [ $_i -gt 2400 ]; do
		_i=$((_i + 1)); sleep 0.05
	done
	echo "bench: authz_load_1m_ms $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	awk '/VmRSS/ { printf "bench: rss_1m_devices_mb %.0f MB\n", $2 / 1024 }' "/proc/$pid/status"
fi
