#!/bin/sh
# The directory worker catching up: 10,000 pending outbox rows (devices with
# a real certificate, owners and groups, payloads as provd_issue_batch()
# writes them), inserted in bulk while provd runs, drained into slapd.
#   bench: directory_catchup_per_s N /s     rows per second while draining
#   bench: directory_catchup_total_s N s    from the commit to the last row
#   bench: directory_slapd_adds_per_s N /s  the same slapd, just before, adding
#                                           2,000 such entries with ldapmodify:
#                                           the ceiling (one disk sync per write)
# The rate is taken from the database clock: every row of a pass gets the
# same done_at, so it is (rows after the first pass) / (last - first pass).
# Durable services (fsync on in PostgreSQL and slapd). Uses the PostgreSQL
# of tests/bench/run.sh when PGPORT is set (its own database in it), else
# starts one; always starts its own slapd.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$top/build/bin}
N=${BENCH_DIRECTORY_ROWS:-10000}
. "$top/scripts/provd-lib.sh"
D=$(mktemp -d /tmp/provd-bench-dir.XXXXXX)
chmod 755 "$D"
provd_pid=""
db=bench_dir_$$
cleanup() {
	[ -n "$provd_pid" ] && kill -TERM "$provd_pid" 2>/dev/null && wait "$provd_pid" 2>/dev/null || true
	psql -X -q -d postgres -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
	sh "$top/scripts/services.sh" stop "$D/svc" >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

if [ -z "${PGPORT:-}" ]; then
	sh "$top/scripts/services.sh" start "$D/svc" pg ldap >/dev/null
else
	sh "$top/scripts/services.sh" start "$D/svc" ldap >/dev/null
fi
set -a; . "$D/svc/services.env"; set +a
export PGDATABASE=postgres
psql -X -q -c "create database $db" >/dev/null
export PGDATABASE=$db

cat > "$D/provd.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=$db user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $D/ca
[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
password_file = $LDAP_PASSWORD_FILE
base_dn = ou=bench,$LDAP_BASE
[log]
level = warn
CONF
"$BIN/provd" -c "$D/provd.conf" ca init >/dev/null
"$BIN/provd" -c "$D/provd.conf" migrate >/dev/null
provd_start "$D/provd.conf" "$D"

# one real certificate (slapd checks the syntax) for every device
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/k.pem" \
    -subj /CN=bench -days 30 -outform DER -out "$D/c.der" 2>/dev/null
der=$(od -An -v -tx1 "$D/c.der" | tr -d ' \n')

# the ceiling: slapd adding entries of the same shape, one at a time
b64=$(openssl base64 -A -in "$D/c.der")
awk -v b="$b64" -v base="$LDAP_BASE" 'BEGIN {
	printf "dn: ou=raw,%s\nchangetype: add\nobjectClass: organizationalUnit\nou: raw\n\n", base
	for (i = 0; i < 2000; i++) {
		m = sprintf("02:20:00:00:%02x:%02x", int(i / 256), i % 256)
		printf "dn: cn=%s,ou=raw,%s\nchangetype: add\nobjectClass: device\n", m, base
		printf "objectClass: ieee802Device\nobjectClass: pkiUser\ncn: %s\nmacAddress: %s\n", m, m
		printf "serialNumber: %032x\ndescription: status: active\n", i
		printf "owner: cn=owner-%d,ou=people,ou=bench,%s\n", i % 50, base
		printf "userCertificate;binary:: %s\n\n", b }
}' > "$D/raw.ldif"
r0=$(date +%s.%N)
ldapmodify -x -H "$LDAP_URI" -D "$LDAP_BIND_DN" -y "$LDAP_PASSWORD_FILE" -f "$D/raw.ldif" >/dev/null
r1=$(date +%s.%N)

# wait until the worker is connected and idle
n=0
until curl -s "$URL/v1/health" >/dev/null 2>&1 && grep -q . "$D/provd.out"; do
	n=$((n + 1)); [ $n -gt 100 ] && break; sleep 0.1
done
sleep 1

t_commit=$(psql -X -q -At <<SQL
begin;
insert into users (name) select 'owner-' || g from generate_series(1, 50) g;
insert into groups (name) select 'fleet-' || g from generate_series(0, 9) g;
insert into devices (mac, owner_id, status)
    select format('02:10:00:%s:%s:%s', lpad(to_hex((i >> 16) & 255), 2, '0'),
	lpad(to_hex((i >> 8) & 255), 2, '0'), lpad(to_hex(i & 255), 2, '0'))::macaddr,
	(select id from users where name = 'owner-' || (1 + i % 50)), 'active'
    from generate_series(1, $N) i;
insert into certificates (device_id, serial, fingerprint_sha256, status, not_before, not_after, der)
    select d.id, lpad(to_hex(d.id), 32, '0'), sha256(lpad(to_hex(d.id), 32, '0')::bytea),
	'active', now(), now() + interval '30 days', decode('$der', 'hex')
    from devices d;
insert into group_members (group_id, device_id)
    select (select id from groups where name = 'fleet-' || (d.id % 10)), d.id from devices d;
insert into directory_outbox (entity, key, op, payload)
    select 'device', d.mac::text, 'upsert', json_build_object('mac', d.mac::text,
	'status', 'active', 'serial', c.serial, 'owner', u.name,
	'groups', json_build_array('fleet-' || (d.id % 10)),
	'not_after', floor(extract(epoch from c.not_after))::bigint)
    from devices d join certificates c on c.device_id = d.id join users u on u.id = d.owner_id
    order by d.id;
select extract(epoch from clock_timestamp());
commit;
SQL
)

n=0
while [ "$(psql -X -q -At -c "select count(*) from directory_outbox where done_at is null")" != 0 ]; do
	n=$((n + 1))
	if [ $n -gt 1200 ]; then
		echo "bench_directory: the outbox did not drain in 120 s" >&2
		exit 1
	fi
	sleep 0.1
done
psql -X -q -At -F ' ' -c "select count(*) filter (where done_at = f.first),
    extract(epoch from max(done_at) - f.first), extract(epoch from max(done_at)) - $t_commit,
    count(distinct done_at)
    from directory_outbox, (select min(done_at) as first from directory_outbox) f
    group by f.first" > "$D/times"
read -r first_rows span total passes < "$D/times"
entries=$(ldapsearch -x -LLL -H "$LDAP_URI" -D "$LDAP_BIND_DN" -y "$LDAP_PASSWORD_FILE" \
    -E pr=1000/noprompt -b "ou=devices,ou=bench,$LDAP_BASE" -s one '(objectClass=ieee802Device)' \
    dn | grep -c '^dn: ')
if [ "$entries" != "$N" ]; then
	echo "bench_directory: $entries entries in the directory, expected $N" >&2
	exit 1
fi
awk -v n="$N" -v f="$first_rows" -v s="$span" -v t="$total" -v p="$passes" \
    -v r0="$r0" -v r1="$r1" 'BEGIN {
	printf "bench: directory_catchup_per_s %.0f /s\n", (n - f) / s
	printf "bench: directory_catchup_total_s %.2f s\n", t
	printf "bench: directory_catchup_passes %d passes\n", p
	printf "bench: directory_slapd_adds_per_s %.0f /s\n", 2001 / (r1 - r0) }'
