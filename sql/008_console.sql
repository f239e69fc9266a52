-- 008_console: web console accounts, their login sessions, and the login
-- throttle that every provd instance shares.
--
-- Accounts hold a self-describing scrypt record (db/console.c makes and
-- checks it; the password never reaches the database). A session is
-- stored by the SHA-256 of its token only; its CSRF token is a second
-- random value kept as is, since it is worth nothing without the session
-- cookie and has to be compared with what the browser sends. Every change
-- to an account, every login, failed login and logout is audited; like
-- 003_authz, the audited functions take the audit lock first.

create table console_accounts (
	id		bigint generated always as identity primary key,
	-- printable ASCII without spaces; at most 55 bytes, so that the actor
	-- "console:NAME" fits the 63 bytes an actor has everywhere in provd
	name		text not null unique check (octet_length(name) between 1 and 55
			    and name ~ '^[!-~]+$'),
	role		text not null check (role in ('viewer', 'operator', 'security', 'admin')),
	password_hash	text not null check (octet_length(password_hash) between 8 and 255
			    and password_hash like 'scrypt$%'),
	disabled	boolean not null default false,
	created_at	timestamptz not null default now(),
	updated_at	timestamptz not null default now(),
	last_login_at	timestamptz
);

create table console_sessions (
	token_sha256	bytea primary key check (octet_length(token_sha256) = 32),
	account_id	bigint not null references console_accounts (id) on delete cascade,
	csrf_token	text not null check (octet_length(csrf_token) = 43),
	address		text,
	created_at	timestamptz not null default now(),
	last_seen_at	timestamptz not null default now(),
	expires_at	timestamptz not null
);
create index console_sessions_account on console_sessions (account_id);
create index console_sessions_expires on console_sessions (expires_at);

-- Failed-login counters in fixed windows: per account name tried, and per
-- client address. A window starts with its first counted attempt and ends
-- window_s seconds later; a row whose window has ended counts as empty.
create table console_login_throttle (
	kind		text not null check (kind in ('name', 'address')),
	key		text not null check (octet_length(key) between 1 and 64),
	window_start	timestamptz not null,
	failures	integer not null check (failures >= 0),
	primary key (kind, key)
);

-- Short public id of a session for the audit log: the first 4 bytes of the
-- token's hash in hex (not enough to find the session by).
create function console_session_id(p_hash bytea) returns text
language sql immutable strict as $$
	select encode(substr(p_hash, 1, 4), 'hex')
$$;

-- ---------------------------------------------------------------------
-- Accounts (provd admin ...). r_status: 'ok', 'conflict', 'not_found',
-- 'unchanged'. r_sessions: sessions ended by the change.

create function provd_console_account_add(p_name text, p_role text, p_hash text,
    p_actor text, out r_status text)
language plpgsql as $$
declare
	v_id	bigint;
begin
	perform audit_lock();
	insert into console_accounts (name, role, password_hash) values (p_name, p_role, p_hash)
	    on conflict (name) do nothing returning id into v_id;
	if v_id is null then
		r_status := 'conflict';
		return;
	end if;
	perform audit_append(p_actor, 'account.add', p_name, json_build_object('role', p_role));
	r_status := 'ok';
end
$$;

create function provd_console_account_password(p_name text, p_hash text, p_actor text,
    out r_status text, out r_sessions bigint)
language plpgsql as $$
declare
	v_id	bigint;
begin
	perform audit_lock();
	update console_accounts set password_hash = p_hash, updated_at = now()
	    where name = p_name returning id into v_id;
	if v_id is null then
		r_status := 'not_found';
		return;
	end if;
	with d as (delete from console_sessions where account_id = v_id returning 1)
	select count(*) into r_sessions from d;
	perform audit_append(p_actor, 'account.password', p_name,
	    json_build_object('sessions_ended', r_sessions));
	r_status := 'ok';
end
$$;

create function provd_console_account_remove(p_name text, p_actor text,
    out r_status text, out r_sessions bigint)
language plpgsql as $$
declare
	v_id	bigint;
	v_role	text;
begin
	perform audit_lock();
	select id, role into v_id, v_role from console_accounts where name = p_name for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	with d as (delete from console_sessions where account_id = v_id returning 1)
	select count(*) into r_sessions from d;
	delete from console_accounts where id = v_id;
	perform audit_append(p_actor, 'account.remove', p_name,
	    json_build_object('role', v_role, 'sessions_ended', r_sessions));
	r_status := 'ok';
end
$$;

-- Disabling ends the account's sessions; enabling lets it log in again.
create function provd_console_account_disable(p_name text, p_disabled boolean, p_actor text,
    out r_status text, out r_sessions bigint)
language plpgsql as $$
declare
	v_id	bigint;
	v_was	boolean;
begin
	perform audit_lock();
	r_sessions := 0;
	select id, disabled into v_id, v_was from console_accounts where name = p_name for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	if v_was = p_disabled then
		r_status := 'unchanged';
		return;
	end if;
	update console_accounts set disabled = p_disabled, updated_at = now() where id = v_id;
	if p_disabled then
		with d as (delete from console_sessions where account_id = v_id returning 1)
		select count(*) into r_sessions from d;
	end if;
	perform audit_append(p_actor, case when p_disabled then 'account.disable'
	    else 'account.enable' end, p_name, json_build_object('sessions_ended', r_sessions));
	r_status := 'ok';
end
$$;

-- ---------------------------------------------------------------------
-- Login.

-- One counter of the throttle: opens a new window when the old one has
-- ended, and returns the seconds until the window ends when the counter
-- has reached p_max (0 otherwise). Locks the row until the end of the
-- transaction, so that concurrent attempts (on any instance) are counted
-- one after the other.
create function console_throttle_take(p_kind text, p_key text, p_window_s integer,
    p_max integer) returns integer
language plpgsql as $$
declare
	v_start	timestamptz;
	v_fail	integer;
	v_end	timestamptz;
begin
	insert into console_login_throttle (kind, key, window_start, failures)
	    values (p_kind, p_key, now(), 0) on conflict (kind, key) do nothing;
	select window_start, failures into v_start, v_fail from console_login_throttle
	    where kind = p_kind and key = p_key for update;
	v_end := v_start + make_interval(secs => p_window_s);
	if v_end <= now() then
		update console_login_throttle set window_start = now(), failures = 0
		    where kind = p_kind and key = p_key;
		return 0;
	end if;
	if v_fail >= p_max then
		return greatest(1, ceil(extract(epoch from v_end - now()))::integer);
	end if;
	return 0;
end
$$;

-- The start of a login, before any password is hashed. When the name's or
-- the address's counter is full, r_retry_after is the seconds until the
-- later window ends and nothing is counted. Otherwise the attempt is
-- counted against both (a success gives it back: provd_console_login_ok),
-- so that attempts running at the same time on several instances cannot
-- pass the limit together, and the account (if any) is returned. p_name is
-- null when the name given could not be an account's (only the address is
-- counted then); p_address is the client's address as text.
create function provd_console_login_begin(p_name text, p_address text, p_window_s integer,
    p_max_name integer, p_max_address integer, out r_retry_after integer,
    out r_account bigint, out r_role text, out r_hash text, out r_disabled boolean)
language plpgsql as $$
declare
	v_a	integer := 0;
	v_n	integer := 0;
begin
	-- always name first, then address: concurrent logins lock in one order
	if p_name is not null then
		v_n := console_throttle_take('name', p_name, p_window_s, p_max_name);
	end if;
	if p_address is not null then
		v_a := console_throttle_take('address', p_address, p_window_s, p_max_address);
	end if;
	r_retry_after := greatest(v_n, v_a);
	if r_retry_after > 0 then
		return;
	end if;
	update console_login_throttle set failures = failures + 1
	    where (kind = 'name' and key = p_name) or (kind = 'address' and key = p_address);
	if p_name is not null then
		select id, role, password_hash, disabled into r_account, r_role, r_hash, r_disabled
		    from console_accounts where name = p_name;
	end if;
end
$$;

-- A failed login (the attempt was counted by provd_console_login_begin).
-- p_reason: 'unknown_name', 'wrong_password', 'disabled', 'malformed_name'.
-- The actor is the client's address: nobody has been authenticated.
create function provd_console_login_failed(p_name text, p_address text, p_reason text,
    p_request_id text) returns void
language plpgsql as $$
begin
	perform audit_lock();
	perform audit_append('client:' || coalesce(p_address, 'unknown'), 'session.login_failed',
	    coalesce(p_name, ''), json_build_object('reason', p_reason, 'address', p_address,
	    'request_id', p_request_id));
end
$$;

-- A successful login: the session, the attempt given back (the name's
-- counter cleared, the address's decremented), the audit row. Sessions
-- past their expiry, and throttle windows that have ended, are deleted on
-- the way. r_status: 'ok'; 'gone' (the account was removed or disabled
-- since provd_console_login_begin: no session).
create function provd_console_login_ok(p_account bigint, p_hash bytea, p_csrf text,
    p_idle_s integer, p_max_s integer, p_address text, p_window_s integer,
    p_request_id text, out r_status text, out r_name text, out r_role text,
    out r_created_at timestamptz, out r_expires_at timestamptz)
language plpgsql as $$
begin
	perform audit_lock();
	select name, role into r_name, r_role from console_accounts
	    where id = p_account and not disabled for update;
	if not found then
		r_status := 'gone';
		return;
	end if;
	delete from console_sessions where expires_at <= now()
	    or last_seen_at <= now() - make_interval(secs => p_idle_s);
	delete from console_login_throttle
	    where window_start + make_interval(secs => p_window_s) <= now();
	r_created_at := now();
	r_expires_at := now() + make_interval(secs => p_max_s);
	insert into console_sessions (token_sha256, account_id, csrf_token, address, created_at,
	    last_seen_at, expires_at)
	    values (p_hash, p_account, p_csrf, p_address, r_created_at, r_created_at, r_expires_at);
	update console_accounts set last_login_at = now() where id = p_account;
	delete from console_login_throttle where kind = 'name' and key = r_name;
	update console_login_throttle set failures = greatest(failures - 1, 0)
	    where kind = 'address' and key = p_address;
	perform audit_append('console:' || r_name, 'session.login', r_name,
	    json_build_object('session', console_session_id(p_hash), 'role', r_role,
	    'address', p_address, 'request_id', p_request_id));
	r_status := 'ok';
end
$$;

-- Logout. r_status: 'ok', 'not_found' (already ended or expired).
create function provd_console_logout(p_hash bytea, p_request_id text, out r_status text)
language plpgsql as $$
declare
	v_name	text;
begin
	perform audit_lock();
	with d as (delete from console_sessions s where s.token_sha256 = p_hash
	    returning s.account_id)
	select a.name into v_name from d join console_accounts a on a.id = d.account_id;
	if v_name is null then
		r_status := 'not_found';
		return;
	end if;
	perform audit_append('console:' || v_name, 'session.logout', v_name,
	    json_build_object('session', console_session_id(p_hash), 'request_id', p_request_id));
	r_status := 'ok';
end
$$;
