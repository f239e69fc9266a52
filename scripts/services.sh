#!/bin/sh
# Private PostgreSQL 15 and OpenLDAP slapd instances for the demo, the tests
# and the benchmarks: everything lives in one run directory, listens on
# 127.0.0.1 only, on free high ports, and is stopped by PID.
#
#   scripts/services.sh start DIR [pg] [ldap]   start (both by default)
#   scripts/services.sh stop DIR                stop whatever DIR runs
#   scripts/services.sh stop-ldap DIR           stop DIR's slapd only (its data stays)
#   scripts/services.sh start-ldap DIR          start it again, same port and data
#   scripts/services.sh restart-pg DIR          restart DIR's PostgreSQL (fast shutdown:
#                                               its clients' connections are cut)
#
# start writes DIR/services.env (shell syntax) with PGHOST, PGPORT, PGUSER,
# PGDATABASE, PGPASSFILE, PROVD_DB_CONNINFO, PROVD_DB_PASSWORD_FILE,
# LDAP_URI, LDAP_BASE, LDAP_BIND_DN, LDAP_PASSWORD_FILE.
# PROVD_PG_FAST=1 turns fsync off (tests only; never the demo or benchmarks).
set -eu

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
here=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "services: $*" >&2; exit 1; }

port_in_use() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
# any TCP socket on the port, listening or not: a client's local port
# makes a later bind() fail just the same
port_taken() { ss -tanH "sport = :$1" 2>/dev/null | grep -q .; }

# a port below the kernel's ephemeral range, so that no outgoing connection
# can take it between this choice and the server's bind()
free_port() {
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
	span=$((lo - 11000))
	i=0
	while [ $i -lt 200 ]; do
		p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % span + 10000 ))
		if ! port_taken "$p" && ! port_taken $((p + 1)); then echo "$p"; return 0; fi
		i=$((i + 1))
	done
	die "no free port found"
}

wait_port() {	# port seconds
	n=0
	while ! port_in_use "$1"; do
		n=$((n + 1)); [ $n -gt $(($2 * 20)) ] && return 1
		sleep 0.05
	done
}

wait_port_closed() {
	n=0
	while port_in_use "$1"; do
		n=$((n + 1)); [ $n -gt 200 ] && return 1
		sleep 0.05
	done
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
	d=$1/pg
	if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$PGBIN/initdb"; then
		die "the postgres user cannot run $PGBIN/initdb: check that / and $PGBIN are searchable (mode 755)"
	fi
	mkdir -p "$d"
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$d"
	chmod 700 "$d"
	pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$pw" > "$d/pwfile"
	[ "$(id -u)" = 0 ] && chown postgres "$d/pwfile"
	as_pg "$PGBIN/initdb" -D "$d/data" -U postgres -A scram-sha-256 --pwfile="$d/pwfile" \
		-E UTF8 --locale=C.UTF-8 --no-sync >"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; die "initdb failed"; }
	rm -f "$d/pwfile"
	fast=""
	[ "${PROVD_PG_FAST:-0}" = 1 ] && fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	tries=0
	while :; do
		port=$(free_port)
		as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/pg.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $d -c max_connections=200 -c shared_buffers=256MB $fast" \
			start >/dev/null && break
		tries=$((tries + 1))
		# another port only if this one was taken in the meantime
		if [ $tries -ge 5 ] || ! grep -q "could not bind" "$d/pg.log" 2>/dev/null; then
			cat "$d/pg.log" >&2; die "postgres did not start"
		fi
	done
	# secrets for clients: a libpq password file and a provd secret file
	printf '127.0.0.1:%s:*:postgres:%s\n' "$port" "$pw" > "$1/pgpass"
	printf '%s\n' "$pw" > "$1/db.secret"
	chmod 600 "$1/pgpass" "$1/db.secret"
	PGPASSFILE=$1/pgpass psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "create database provd" >/dev/null ||
		die "create database failed"
	cat >> "$1/services.env" <<-EOF
	PGHOST=127.0.0.1
	PGPORT=$port
	PGUSER=postgres
	PGDATABASE=provd
	PGPASSFILE=$1/pgpass
	PROVD_DB_CONNINFO='host=127.0.0.1 port=$port dbname=provd user=postgres'
	PROVD_DB_PASSWORD_FILE=$1/db.secret
	EOF
	echo "$port" > "$d/port"
}

stop_pg() {
	d=$1/pg
	[ -f "$d/data/postmaster.pid" ] || return 0
	as_pg "$PGBIN/pg_ctl" -D "$d/data" -m fast -w -t 30 stop >/dev/null 2>&1 || {
		pid=$(head -n 1 "$d/data/postmaster.pid" 2>/dev/null || true)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	}
	[ -f "$d/port" ] && wait_port_closed "$(cat "$d/port")" || true
}

start_ldap() {
	d=$1/ldap
	mkdir -p "$d/db" "$d/slapd.d"
	pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s' "$pw" > "$1/ldap.secret"
	chmod 600 "$1/ldap.secret"
	hash=$(slappasswd -s "$pw")
	extra=""
	for s in "$here"/etc/ldap/*.schema; do
		[ -f "$s" ] && extra="$extra
include $s"
	done
	cat > "$d/slapd.conf" <<-EOF
	include /etc/ldap/schema/core.schema
	include /etc/ldap/schema/cosine.schema
	include /etc/ldap/schema/inetorgperson.schema
	include /etc/ldap/schema/nis.schema$extra
	modulepath /usr/lib/ldap
	moduleload back_mdb
	pidfile $d/slapd.pid
	argsfile $d/slapd.args
	database mdb
	maxsize 1073741824
	suffix "dc=example,dc=org"
	rootdn "cn=admin,dc=example,dc=org"
	rootpw $hash
	directory $d/db
	index objectClass eq
	index macAddress eq
	EOF
	# slapd logs to syslog only: a failed start (most often a port taken
	# in the meantime) is retried on another port, then reported
	tries=0
	while :; do
		port=$(free_port)
		if slapd -f "$d/slapd.conf" -F "$d/slapd.d" -h "ldap://127.0.0.1:$port/" >"$d/slapd.log" 2>&1 &&
		    wait_port "$port" 10; then
			break
		fi
		tries=$((tries + 1))
		[ -f "$d/slapd.pid" ] && kill "$(cat "$d/slapd.pid")" 2>/dev/null || true
		rm -f "$d/slapd.pid"
		if [ $tries -ge 5 ]; then
			cat "$d/slapd.log" >&2
			die "slapd did not start (5 ports tried; run slapd -d 1 -f $d/slapd.conf to see why)"
		fi
	done
	echo "$port" > "$d/port"
	ldapadd -x -H "ldap://127.0.0.1:$port/" -D "cn=admin,dc=example,dc=org" -y "$1/ldap.secret" >/dev/null <<-EOF
	dn: dc=example,dc=org
	objectClass: dcObject
	objectClass: organization
	o: Example
	dc: example

	dn: ou=devices,dc=example,dc=org
	objectClass: organizationalUnit
	ou: devices

	dn: ou=users,dc=example,dc=org
	objectClass: organizationalUnit
	ou: users

	dn: ou=groups,dc=example,dc=org
	objectClass: organizationalUnit
	ou: groups
	EOF
	cat >> "$1/services.env" <<-EOF
	LDAP_URI=ldap://127.0.0.1:$port/
	LDAP_BASE=dc=example,dc=org
	LDAP_BIND_DN=cn=admin,dc=example,dc=org
	LDAP_PASSWORD_FILE=$1/ldap.secret
	EOF
}

stop_ldap() {
	d=$1/ldap
	[ -f "$d/slapd.pid" ] || return 0
	pid=$(cat "$d/slapd.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	[ -f "$d/port" ] && wait_port_closed "$(cat "$d/port")" || {
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	}
	rm -f "$d/slapd.pid"
}

# the slapd that start_ldap made, again: same configuration, data and port
restart_ldap() {
	d=$1/ldap
	[ -f "$d/slapd.conf" ] && [ -f "$d/port" ] || die "no slapd was set up in $1"
	port=$(cat "$d/port")
	[ -f "$d/slapd.pid" ] && kill -0 "$(cat "$d/slapd.pid")" 2>/dev/null && return 0
	slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" >>"$d/slapd.log" 2>&1 ||
		{ cat "$d/slapd.log" >&2; die "slapd did not start"; }
	wait_port "$port" 10 || die "slapd is not listening on $port"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: services.sh start|stop|stop-ldap|start-ldap|restart-pg DIR [pg] [ldap]"
case $cmd in
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" = 0 ] && chmod 755 "$dir"
	shift 2
	what=${*:-pg ldap}
	: > "$dir/services.env"
	for w in $what; do
		case $w in
		pg) start_pg "$dir" ;;
		ldap) start_ldap "$dir" ;;
		*) die "unknown service $w" ;;
		esac
	done
	;;
stop)
	dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
	stop_ldap "$dir"
	stop_pg "$dir"
	;;
stop-ldap)
	dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
	stop_ldap "$dir"
	;;
start-ldap)
	dir=$(cd "$dir" && pwd) || die "no directory $dir"
	restart_ldap "$dir"
	;;
restart-pg)
	dir=$(cd "$dir" && pwd) || die "no directory $dir"
	# same options as at start (pg_ctl keeps them in postmaster.opts)
	as_pg "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/pg.log" -m fast -w -t 60 restart \
		>/dev/null || die "postgres did not restart"
	;;
*) die "unknown command $cmd" ;;
esac
