-- 001_init: the provd schema (devices, users, groups, certificates, access
-- rules, enrollment jobs, hash-chained audit log, directory outbox, API tokens)
-- and the functions that write audited changes. schema_migrations: the runner.

-- ---------------------------------------------------------------------
-- People, devices, groups.

create table users (
	id		bigint generated always as identity primary key,
	name		text not null unique
			check (octet_length(name) between 1 and 128),
	created_at	timestamptz not null default now()
);

create table devices (
	id		bigint generated always as identity primary key,
	mac		macaddr not null unique,
	name		text check (octet_length(name) <= 256),
	model		text check (octet_length(model) <= 256),
	owner_id	bigint references users (id) on delete set null,
	status		text not null default 'pending'
			check (status in ('pending', 'active', 'revoked', 'retired')),
	created_at	timestamptz not null default now(),
	updated_at	timestamptz not null default now()
);
create index devices_owner_idx on devices (owner_id) where owner_id is not null;

create table groups (
	id		bigint generated always as identity primary key,
	name		text not null unique
			check (octet_length(name) between 1 and 128),
	created_at	timestamptz not null default now()
);

-- A member is exactly one of a device or a user.
create table group_members (
	id		bigint generated always as identity primary key,
	group_id	bigint not null references groups (id) on delete cascade,
	device_id	bigint references devices (id) on delete cascade,
	user_id		bigint references users (id) on delete cascade,
	created_at	timestamptz not null default now(),
	check (num_nonnulls(device_id, user_id) = 1)
);
create unique index group_members_device_uq on group_members (group_id, device_id)
	where device_id is not null;
create unique index group_members_user_uq on group_members (group_id, user_id)
	where user_id is not null;
create index group_members_by_device on group_members (device_id) where device_id is not null;
create index group_members_by_user on group_members (user_id) where user_id is not null;

-- ---------------------------------------------------------------------
-- Certificates. A superseded certificate (replaced by a renewal) is listed on
-- the CRL with reason superseded (4) until it expires: it carries revoked_at
-- and revocation_reason like a revoked one.

create table certificates (
	id		bigint generated always as identity primary key,
	device_id	bigint not null references devices (id),
	serial		text not null unique check (serial ~ '^[0-9a-f]{32}$'),
	fingerprint_sha256 bytea not null unique
			check (octet_length(fingerprint_sha256) = 32),
	status		text not null default 'active'
			check (status in ('active', 'revoked', 'superseded')),
	not_before	timestamptz not null,
	not_after	timestamptz not null,
	issued_at	timestamptz not null default now(),
	der		bytea not null check (octet_length(der) between 1 and 65536),
	revoked_at	timestamptz,
	-- RFC 5280 CRLReason; 7 is not assigned
	revocation_reason smallint check (revocation_reason between 0 and 10
			and revocation_reason <> 7),
	superseded_by	bigint references certificates (id),
	check (not_after > not_before),
	check ((status = 'active') = (revoked_at is null)),
	check ((revoked_at is null) = (revocation_reason is null)),
	check (superseded_by is null or status = 'superseded')
);
-- at most one active certificate per device
create unique index certificates_one_active on certificates (device_id)
	where status = 'active';
create index certificates_by_device on certificates (device_id);
-- CRL: revoked or superseded, by expiry
create index certificates_crl on certificates (not_after) where status <> 'active';

create sequence crl_number as bigint minvalue 1;

-- ---------------------------------------------------------------------
-- Access control (central mode, Fig. 7). A rule names exactly one subject
-- (device, user or group), a resource and an action ('*' for any). Optional
-- window: absolute (valid_from/valid_until) and/or daily (time_from/time_until
-- in time_zone, wrapping past midnight when time_until < time_from, on the
-- weekdays of the ISO bitmask: bit 0 Monday .. bit 6 Sunday). A one-time rule
-- is consumed by its first use (used_at).

create table resources (
	id		bigint generated always as identity primary key,
	name		text not null unique
			check (octet_length(name) between 1 and 128),
	class		text check (octet_length(class) between 1 and 128),
	description	text,
	created_at	timestamptz not null default now()
);

create table access_rules (
	id		bigint generated always as identity primary key,
	device_id	bigint references devices (id) on delete cascade,
	user_id		bigint references users (id) on delete cascade,
	group_id	bigint references groups (id) on delete cascade,
	resource_id	bigint not null references resources (id) on delete cascade,
	action		text not null check (octet_length(action) between 1 and 64),
	effect		text not null check (effect in ('allow', 'deny')),
	valid_from	timestamptz,
	valid_until	timestamptz,
	time_from	time,
	time_until	time,
	weekdays	smallint not null default 127 check (weekdays between 1 and 127),
	time_zone	text not null default 'UTC',
	one_time	boolean not null default false,
	used_at		timestamptz,
	created_by	text,
	created_at	timestamptz not null default now(),
	check (num_nonnulls(device_id, user_id, group_id) = 1),
	check (valid_from is null or valid_until is null or valid_until > valid_from),
	check ((time_from is null) = (time_until is null)),
	check (used_at is null or one_time)
);
create index access_rules_by_resource on access_rules (resource_id);
create index access_rules_by_device on access_rules (device_id) where device_id is not null;
create index access_rules_by_user on access_rules (user_id) where user_id is not null;
create index access_rules_by_group on access_rules (group_id) where group_id is not null;

-- ---------------------------------------------------------------------
-- Intake jobs (Fig. 1-3): one open job per device address.

create table enrollment_jobs (
	id		bigint generated always as identity primary key,
	mac		macaddr not null,
	status		text not null default 'queued'
			check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	keygen		text not null check (keygen in ('server', 'device')),
	step		text,
	error		text,
	requested_by	text,
	created_at	timestamptz not null default now(),
	updated_at	timestamptz not null default now(),
	started_at	timestamptz,
	finished_at	timestamptz,
	certificate_id	bigint references certificates (id),
	check ((status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)),
	check (status <> 'succeeded' or certificate_id is not null)
);
create unique index enrollment_jobs_one_open on enrollment_jobs (mac)
	where status in ('queued', 'running');
create index enrollment_jobs_by_status on enrollment_jobs (status, created_at);

-- ---------------------------------------------------------------------
-- Directory outbox: LDAP is written only from here (ldap/ drains it in id
-- order; done_at set when applied).

create table directory_outbox (
	id		bigint generated always as identity primary key,
	entity		text not null check (entity in ('device', 'user', 'group')),
	key		text not null,
	op		text not null check (op in ('upsert', 'revoke', 'delete')),
	payload		json not null,
	created_at	timestamptz not null default now(),
	done_at		timestamptz,
	attempts	integer not null default 0 check (attempts >= 0),
	last_error	text
);
create index directory_outbox_pending on directory_outbox (id) where done_at is null;

-- ---------------------------------------------------------------------
-- API tokens: only the SHA-256 of the token is stored.

create table api_tokens (
	id		bigint generated always as identity primary key,
	name		text not null unique check (octet_length(name) between 1 and 64),
	role		text not null check (role in ('operator', 'security', 'authorizer', 'admin')),
	token_sha256	bytea not null unique check (octet_length(token_sha256) = 32),
	created_at	timestamptz not null default now(),
	last_used_at	timestamptz,
	revoked_at	timestamptz
);

-- ---------------------------------------------------------------------
-- Audit log: append-only, hash-chained.
--
-- Row n (seq = n, gapless from 1) carries
--     hash = sha256(prev_hash || convert_to(canonical, 'UTF8'))
-- where prev_hash is the hash of row n-1 (32 zero bytes for row 1) and
-- canonical is the text
--     seq  LF  us  LF  F(actor)  LF  F(action)  LF  F(object)  LF  F(detail)
-- with LF = E'\n', seq and us in decimal ASCII, us = the row's "at" as whole
-- microseconds since 1970-01-01 00:00:00 UTC, and F(s) = octet_length(s) in
-- decimal, ':', then s itself (its UTF-8 bytes; detail is the json text
-- exactly as stored). The length prefixes make the split into fields
-- unambiguous. db_audit_verify() recomputes this in C.
--
-- All writers take the audit_head row lock first (audit_lock()), so audited
-- transactions are serialised in one order and cannot deadlock each other.

create table audit_log (
	seq		bigint primary key check (seq > 0),
	at		timestamptz not null,
	actor		text not null,
	action		text not null check (action <> ''),
	object		text not null,
	detail		json not null,
	prev_hash	bytea not null check (octet_length(prev_hash) = 32),
	hash		bytea not null check (octet_length(hash) = 32)
);

create table audit_head (
	id		smallint primary key default 1 check (id = 1),
	last_seq	bigint not null check (last_seq >= 0),
	last_hash	bytea not null check (octet_length(last_hash) = 32)
);
insert into audit_head (id, last_seq, last_hash) values (1, 0, decode(repeat('00', 32), 'hex'));

create function audit_refuse() returns trigger language plpgsql as $$
begin
	raise exception '% is append-only: % refused', tg_table_name, tg_op
		using errcode = 'insufficient_privilege';
end
$$;

create trigger audit_log_no_update before update or delete on audit_log
	for each row execute function audit_refuse();
create trigger audit_log_no_truncate before truncate on audit_log
	for each statement execute function audit_refuse();
create trigger audit_head_no_delete before delete on audit_head
	for each row execute function audit_refuse();
create trigger audit_head_no_truncate before truncate on audit_head
	for each statement execute function audit_refuse();

-- (stable, not immutable: extract() on timestamptz and convert_to() are
-- stable, and only an honestly labelled SQL function is inlined by the planner)
create function audit_canonical(p_seq bigint, p_at timestamptz, p_actor text,
    p_action text, p_object text, p_detail text) returns text
language sql stable strict as $$
	select p_seq::text || E'\n'
	    || ((extract(epoch from p_at) * 1000000)::bigint)::text || E'\n'
	    || octet_length(p_actor)::text || ':' || p_actor || E'\n'
	    || octet_length(p_action)::text || ':' || p_action || E'\n'
	    || octet_length(p_object)::text || ':' || p_object || E'\n'
	    || octet_length(p_detail)::text || ':' || p_detail
$$;

-- The chained hash of one row.
create function audit_hash(p_prev bytea, p_seq bigint, p_at timestamptz, p_actor text,
    p_action text, p_object text, p_detail text) returns bytea
language sql stable strict as $$
	select sha256(p_prev || convert_to(audit_canonical(p_seq, p_at, p_actor, p_action,
	    p_object, p_detail), 'UTF8'))
$$;

-- Locks the head of the chain until the end of the transaction.
create function audit_lock() returns void language plpgsql as $$
begin
	perform 1 from audit_head where id = 1 for update;
end
$$;

-- Appends rows (arrays of equal length, in order); returns the seq of the
-- first. NULL actor/object are stored as '', NULL detail as {}.
create function audit_append_many(p_actor text[], p_action text[], p_object text[],
    p_detail json[]) returns bigint language plpgsql as $$
declare
	n	int := coalesce(cardinality(p_action), 0);
	v_seq	bigint;
	v_first	bigint;
	v_prev	bytea;
	v_at	timestamptz := date_trunc('microseconds', clock_timestamp());
	v_prevs	bytea[] := '{}';
	v_hashes bytea[] := '{}';
	i	int;
begin
	if n = 0 then
		return null;
	end if;
	if coalesce(cardinality(p_actor), 0) <> n or coalesce(cardinality(p_object), 0) <> n
	    or coalesce(cardinality(p_detail), 0) <> n then
		raise exception 'audit_append_many: arrays of different lengths';
	end if;
	select last_seq, last_hash into v_seq, v_prev from audit_head where id = 1 for update;
	v_first := v_seq + 1;
	for i in 1 .. n loop
		v_seq := v_seq + 1;
		v_prevs[i] := v_prev;
		v_prev := audit_hash(v_prev, v_seq, v_at, coalesce(p_actor[i], ''), p_action[i],
		    coalesce(p_object[i], ''), coalesce(p_detail[i], '{}'::json)::text);
		v_hashes[i] := v_prev;
	end loop;
	insert into audit_log (seq, at, actor, action, object, detail, prev_hash, hash)
	select v_first + t.o - 1, v_at, coalesce(t.actor, ''), t.action, coalesce(t.object, ''),
	    coalesce(t.detail, '{}'::json), t.prev, t.hash
	from unnest(p_actor, p_action, p_object, p_detail, v_prevs, v_hashes)
	    with ordinality as t(actor, action, object, detail, prev, hash, o);
	update audit_head set last_seq = v_seq, last_hash = v_prev where id = 1;
	return v_first;
end
$$;

-- Appends one row; returns its seq.
create function audit_append(p_actor text, p_action text, p_object text, p_detail json)
returns bigint language sql as $$
	select audit_append_many(array[p_actor], array[p_action], array[p_object], array[p_detail])
$$;

-- ---------------------------------------------------------------------
-- One certificate issuance on its own (provd_issue_batch() sends here the
-- items it cannot write set-based). Upserts the device (status active), its
-- owner, groups and memberships (added, never removed), refuses a second active
-- certificate unless p_replace (then the old one becomes superseded), inserts
-- the certificate, appends the audit row and a directory outbox row.
-- r_status: 'ok'; 'conflict' (active certificate and no replace, or a unique
-- violation: the same device issued concurrently elsewhere, a serial or
-- fingerprint collision), nothing written; 'invalid' (the data broke a
-- constraint), nothing written. Errors other than these abort the caller's
-- transaction.

create function provd_issue(p_mac macaddr, p_serial text, p_fingerprint bytea, p_der bytea,
    p_not_before timestamptz, p_not_after timestamptz, p_owner text, p_groups text[],
    p_replace boolean, p_actor text, p_request_id text,
    out r_status text, out r_device_id bigint, out r_cert_id bigint, out r_message text)
language plpgsql as $$
declare
	v_dev		bigint;
	v_old		bigint;
	v_old_serial	text;
	v_owner		bigint;
	v_group		text;
	v_gid		bigint;
	v_groups	text[] := coalesce(p_groups, '{}'::text[]);
begin
	perform audit_lock();
	select id into v_dev from devices where mac = p_mac for update;
	if found then
		select id, serial into v_old, v_old_serial from certificates
		    where device_id = v_dev and status = 'active' for update;
		if found and not p_replace then
			r_status := 'conflict';
			r_device_id := v_dev;
			r_cert_id := v_old;
			r_message := 'device has an active certificate';
			return;
		end if;
	end if;

	begin
		if p_owner is not null then
			select id into v_owner from users where name = p_owner;
			if not found then
				insert into users (name) values (p_owner)
				    on conflict (name) do nothing returning id into v_owner;
				if v_owner is null then
					select id into strict v_owner from users where name = p_owner;
				end if;
			end if;
		end if;

		if v_dev is null then
			insert into devices (mac, owner_id, status) values (p_mac, v_owner, 'active')
			    on conflict (mac) do update
			    set owner_id = coalesce(excluded.owner_id, devices.owner_id),
				status = 'active', updated_at = now()
			    returning id into r_device_id;
		else
			update devices set owner_id = coalesce(v_owner, owner_id), status = 'active',
			    updated_at = now() where id = v_dev;
			r_device_id := v_dev;
		end if;

		foreach v_group in array v_groups loop
			select id into v_gid from groups where name = v_group;
			if not found then
				insert into groups (name) values (v_group)
				    on conflict (name) do nothing returning id into v_gid;
				if v_gid is null then
					select id into strict v_gid from groups where name = v_group;
				end if;
			end if;
			insert into group_members (group_id, device_id) values (v_gid, r_device_id)
			    on conflict do nothing;
		end loop;

		if v_old is not null then
			update certificates set status = 'superseded', revoked_at = now(),
			    revocation_reason = 4 where id = v_old;
		end if;
		insert into certificates (device_id, serial, fingerprint_sha256, status,
		    not_before, not_after, der)
		values (r_device_id, p_serial, p_fingerprint, 'active', p_not_before, p_not_after, p_der)
		returning id into r_cert_id;
		if v_old is not null then
			update certificates set superseded_by = r_cert_id where id = v_old;
		end if;

		perform audit_append(p_actor, 'certificate.issue', p_serial,
		    json_build_object('mac', p_mac::text, 'owner', p_owner, 'groups', v_groups,
			'replaced', v_old_serial, 'request_id', p_request_id));
		insert into directory_outbox (entity, key, op, payload)
		values ('device', p_mac::text, 'upsert',
		    json_build_object('mac', p_mac::text, 'status', 'active', 'serial', p_serial,
			'owner', p_owner, 'groups', v_groups,
			'not_after', (extract(epoch from p_not_after))::bigint));
		r_status := 'ok';
	exception
		when unique_violation then
			r_status := 'conflict';
			r_device_id := v_dev;
			r_cert_id := null;
			r_message := sqlerrm;
		when integrity_constraint_violation or data_exception then
			r_status := 'invalid';
			r_device_id := v_dev;
			r_cert_id := null;
			r_message := sqlerrm;
	end;
end
$$;

-- A batch of issuances in one call (db/writer.c sends one per group
-- commit). Item k is (p_mac[k], p_serial[k], ...); its groups are the
-- p_group_name[j] with p_group_item[j] = k; times are Unix seconds. The
-- outcome per item is what provd_issue() would give, as rows (r_item = k).
-- Items that touch nothing another item of the batch touches are written with
-- a few set-based statements; items sharing a device, serial or fingerprint
-- with another (and, should the set-based writes hit a constraint, all of
-- them) go one by one through provd_issue(), in item order.
-- The checks below rely on audit_lock(): every function that changes
-- certificates or a device's status takes it first, so the state read here
-- cannot change before this transaction ends.

create function provd_issue_batch(p_mac macaddr[], p_serial text[], p_fingerprint bytea[],
    p_der bytea[], p_not_before bigint[], p_not_after bigint[], p_owner text[],
    p_group_item int[], p_group_name text[], p_replace boolean[], p_actor text[],
    p_request_id text[])
returns table (r_item int, r_status text, r_device_id bigint, r_cert_id bigint, r_message text)
-- Every lookup here is by key. Plans are cached; one made while the tables
-- were small must not go on scanning them whole once they have grown.
language plpgsql set enable_seqscan = off as $$
declare
	n		int := coalesce(cardinality(p_mac), 0);
	v_status	text[] := array_fill(null::text, array[n]);
	v_msg		text[] := array_fill(null::text, array[n]);
	v_cert		bigint[] := array_fill(null::bigint, array[n]);
	v_dev		bigint[];	-- device id (existing, then new)
	v_dev0		bigint[];	-- device id before any write
	v_old		bigint[];	-- its active certificate
	v_old_serial	text[];
	v_dup		boolean[];	-- shares a device, serial or fingerprint in the batch
	v_taken		boolean[];	-- serial or fingerprint already in the table
	v_badgrp	boolean[];
	v_grp		json[];		-- each item's groups as a json array
	v_ok		int[] := '{}';
	v_any_owner	boolean := false;
	v_any_group	boolean := false;
	v_any_old	boolean := false;
	v_seq		bigint;
	v_head		bytea;
	v_first		bigint;
	v_at		timestamptz;
	v_det		json;
	v_dets		json[] := '{}';
	v_prevs		bytea[] := '{}';
	v_hashes	bytea[] := '{}';
	i		int;
	r		record;
begin
	if n = 0 then
		return;
	end if;
	if coalesce(cardinality(p_serial), 0) <> n or coalesce(cardinality(p_fingerprint), 0) <> n
	    or coalesce(cardinality(p_der), 0) <> n or coalesce(cardinality(p_not_before), 0) <> n
	    or coalesce(cardinality(p_not_after), 0) <> n or coalesce(cardinality(p_owner), 0) <> n
	    or coalesce(cardinality(p_replace), 0) <> n or coalesce(cardinality(p_actor), 0) <> n
	    or coalesce(cardinality(p_request_id), 0) <> n
	    or coalesce(cardinality(p_group_item), 0) <> coalesce(cardinality(p_group_name), 0) then
		raise exception 'provd_issue_batch: arrays of different lengths';
	end if;

	-- audit_lock(), keeping the head
	select last_seq, last_hash into v_seq, v_head from audit_head where id = 1 for update;

	-- everything the checks need, in one statement. Lookups of existing rows
	-- are LATERAL ... LIMIT 1 here and below: index probes per item, never a
	-- hash join over a whole table.
	select array_agg(d.id order by t.k), array_agg(c.id order by t.k),
	    array_agg(c.serial order by t.k), array_agg(t.dup order by t.k),
	    array_agg(exists (select 1 from certificates x where x.serial = t.serial)
		or exists (select 1 from certificates x where x.fingerprint_sha256 = t.fpr)
		order by t.k),
	    array_agg(coalesce(g.bad, false) order by t.k),
	    array_agg(coalesce(g.names, '[]'::json) order by t.k)
	into v_dev0, v_old, v_old_serial, v_dup, v_taken, v_badgrp, v_grp
	from (select u.k, u.mac, u.serial, u.fpr,
		count(*) over (partition by u.mac) > 1 or count(*) over (partition by u.serial) > 1
		    or count(*) over (partition by u.fpr) > 1 as dup
	    from unnest(p_mac, p_serial, p_fingerprint) with ordinality as u(mac, serial, fpr, k)) t
	left join lateral (select id from devices where mac = t.mac limit 1) d on true
	left join lateral (select id, serial from certificates
	    where device_id = d.id and status = 'active' limit 1) c on true
	left join (select gk, to_json(array_agg(name order by o)) as names,
		bool_or(name is null or octet_length(name) not between 1 and 128) as bad
	    from unnest(p_group_item, p_group_name) with ordinality as x(gk, name, o)
	    group by gk) g on g.gk = t.k;
	v_dev := v_dev0;

	for i in 1 .. n loop
		if v_dup[i] then
			v_status[i] := 'seq';
		elsif v_old[i] is not null and not coalesce(p_replace[i], false) then
			v_status[i] := 'conflict';
			v_cert[i] := v_old[i];
			v_msg[i] := 'device has an active certificate';
		elsif v_taken[i] then
			v_status[i] := 'conflict';
			v_msg[i] := 'serial or fingerprint already used';
		elsif p_mac[i] is null or coalesce(octet_length(p_serial[i]), 0) <> 32
		    or coalesce(octet_length(p_fingerprint[i]), 0) <> 32
		    or coalesce(octet_length(p_der[i]), 0) not between 1 and 65536
		    or p_not_before[i] is null or p_not_after[i] is null
		    or p_not_after[i] <= p_not_before[i]
		    or octet_length(p_owner[i]) not between 1 and 128 or v_badgrp[i] then
			v_status[i] := 'invalid';
			v_msg[i] := 'malformed item';
		else
			v_status[i] := 'ok';
			v_ok := array_append(v_ok, i);
			v_any_owner := v_any_owner or p_owner[i] is not null;
			v_any_group := v_any_group or v_grp[i]::text <> '[]';
			v_any_old := v_any_old or v_old[i] is not null;
		end if;
	end loop;

	if cardinality(v_ok) > 0 then
		begin
			if v_any_owner then
				insert into users (name)
				select distinct p_owner[k] from unnest(v_ok) as k
				where p_owner[k] is not null order by 1
				on conflict (name) do nothing;
			end if;
			if v_any_group then
				insert into groups (name)
				select distinct g.name from unnest(p_group_item, p_group_name) as g(gk, name)
				where g.gk = any(v_ok) order by 1
				on conflict (name) do nothing;
			end if;

			for r in
				with t as (
					select k, p_mac[k] as mac, u.id as owner_id
					from unnest(v_ok) as k
					left join lateral (select id from users
					    where name = p_owner[k] limit 1) u on true),
				up as (
					insert into devices (mac, owner_id, status)
					select mac, owner_id, 'active' from t order by mac
					on conflict (mac) do update
					set owner_id = coalesce(excluded.owner_id, devices.owner_id),
					    status = 'active', updated_at = now()
					returning id, mac),
				gm as (
					insert into group_members (group_id, device_id)
					select distinct gr.id, up.id
					from unnest(p_group_item, p_group_name) as g(gk, name)
					join t on t.k = g.gk
					join up on up.mac = t.mac
					join lateral (select id from groups
					    where name = g.name limit 1) gr on true
					on conflict do nothing)
				select t.k, up.id from t join up on up.mac = t.mac
			loop
				v_dev[r.k] := r.id;
			end loop;

			if v_any_old then
				update certificates set status = 'superseded', revoked_at = now(),
				    revocation_reason = 4
				where id = any(array(select v_old[k] from unnest(v_ok) as k
				    where v_old[k] is not null));
			end if;

			-- the audit rows' chain, then certificates, audit rows, head and
			-- outbox rows in one statement
			v_at := date_trunc('microseconds', clock_timestamp());
			v_first := v_seq + 1;
			foreach i in array v_ok loop
				v_seq := v_seq + 1;
				v_det := json_build_object('mac', p_mac[i]::text, 'owner', p_owner[i],
				    'groups', v_grp[i], 'replaced', v_old_serial[i],
				    'request_id', p_request_id[i]);
				v_prevs := array_append(v_prevs, v_head);
				v_head := audit_hash(v_head, v_seq, v_at, coalesce(p_actor[i], ''),
				    'certificate.issue', p_serial[i], v_det::text);
				v_hashes := array_append(v_hashes, v_head);
				v_dets := array_append(v_dets, v_det);
			end loop;

			for r in
				with c as (
					insert into certificates (device_id, serial, fingerprint_sha256,
					    status, not_before, not_after, der)
					select v_dev[k], p_serial[k], p_fingerprint[k], 'active',
					    to_timestamp(p_not_before[k]), to_timestamp(p_not_after[k]), p_der[k]
					from unnest(v_ok) as k
					returning id, serial),
				a as (
					insert into audit_log (seq, at, actor, action, object, detail,
					    prev_hash, hash)
					select v_first + u.o - 1, v_at, coalesce(p_actor[u.k], ''),
					    'certificate.issue', p_serial[u.k], v_dets[u.o], v_prevs[u.o],
					    v_hashes[u.o]
					from unnest(v_ok) with ordinality as u(k, o)),
				h as (
					update audit_head set last_seq = v_seq, last_hash = v_head
					where id = 1),
				ob as (
					insert into directory_outbox (entity, key, op, payload)
					select 'device', p_mac[u.k]::text, 'upsert',
					    json_build_object('mac', p_mac[u.k]::text, 'status', 'active',
						'serial', p_serial[u.k], 'owner', p_owner[u.k],
						'groups', v_grp[u.k], 'not_after', p_not_after[u.k])
					from unnest(v_ok) with ordinality as u(k, o) order by u.o)
				select u.k, c.id from unnest(v_ok) as u(k) join c on c.serial = p_serial[u.k]
			loop
				v_cert[r.k] := r.id;
			end loop;

			if v_any_old then
				update certificates set superseded_by = m.new_id
				from (select v_old[k] as old_id, v_cert[k] as new_id
				    from unnest(v_ok) as k where v_old[k] is not null) m
				where id = any(array(select v_old[k] from unnest(v_ok) as k
				    where v_old[k] is not null)) and id = m.old_id;
			end if;
		exception
			when integrity_constraint_violation or data_exception then
				-- all rolled back: let each item find its own outcome
				v_dev := v_dev0;
				foreach i in array v_ok loop
					v_status[i] := 'seq';
					v_cert[i] := null;
				end loop;
		end;
	end if;

	for i in 1 .. n loop
		continue when v_status[i] <> 'seq';
		select * into r from provd_issue(p_mac[i], p_serial[i], p_fingerprint[i], p_der[i],
		    to_timestamp(p_not_before[i]), to_timestamp(p_not_after[i]), p_owner[i],
		    array(select name from unnest(p_group_item, p_group_name) with ordinality
			as g(gk, name, o) where gk = i order by o),
		    coalesce(p_replace[i], false), p_actor[i], p_request_id[i]);
		v_status[i] := r.r_status;
		v_dev[i] := r.r_device_id;
		v_cert[i] := r.r_cert_id;
		v_msg[i] := r.r_message;
	end loop;

	return query select k, v_status[k], v_dev[k], v_cert[k], v_msg[k]
	    from generate_series(1, n) as k;
end
$$;

-- Revokes an active certificate: status revoked, the device revoked, audit
-- row, outbox row, and a notification on channel provd_revocation (payload:
-- the serial) for every instance's authorization cache.
-- r_status: 'ok', 'not_found', 'conflict' (not active).
create function provd_revoke(p_serial text, p_reason smallint, p_actor text, p_request_id text,
    out r_status text, out r_cert_id bigint)
language plpgsql as $$
declare
	v_dev		bigint;
	v_status	text;
	v_mac		macaddr;
begin
	perform audit_lock();
	select id, device_id, status into r_cert_id, v_dev, v_status
	    from certificates where serial = p_serial for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	if v_status <> 'active' then
		r_status := 'conflict';
		return;
	end if;
	update certificates set status = 'revoked', revoked_at = now(),
	    revocation_reason = p_reason where id = r_cert_id;
	-- it was the device's active certificate (at most one is)
	update devices set status = 'revoked', updated_at = now()
	    where id = v_dev and status = 'active';
	select mac into strict v_mac from devices where id = v_dev;
	perform audit_append(p_actor, 'certificate.revoke', p_serial,
	    json_build_object('mac', v_mac::text, 'reason', p_reason, 'request_id', p_request_id));
	insert into directory_outbox (entity, key, op, payload)
	values ('device', v_mac::text, 'revoke',
	    json_build_object('mac', v_mac::text, 'serial', p_serial, 'reason', p_reason));
	perform pg_notify('provd_revocation', p_serial);
	r_status := 'ok';
end
$$;

-- Adds an API token (by its hash) and audits the name and role.
create function provd_token_add(p_name text, p_role text, p_hash bytea, p_actor text)
returns bigint language plpgsql as $$
declare
	v_id	bigint;
begin
	perform audit_lock();
	insert into api_tokens (name, role, token_sha256) values (p_name, p_role, p_hash)
	    returning id into v_id;
	perform audit_append(p_actor, 'token.add', p_name,
	    json_build_object('name', p_name, 'role', p_role));
	return v_id;
end
$$;
