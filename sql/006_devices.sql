-- 006_devices: reading devices, users and groups page by page, and the two
-- audited changes of the access-control model that had no route: a
-- device's owner, and deleting a user.
--
-- Pages are keyset pages (by device address, user or group name), so that
-- a page deep in a table of a million devices costs what the first does.
-- The indexes below let every filter of GET /v1/devices walk its index in
-- address order.
--
-- Both changes, like those of 003_authz, take the audit lock first, write
-- the change, an audit row, directory outbox rows and a new policy version
-- in one transaction. The devices trigger of 003_authz tells the
-- authorization caches about each device whose owner changed.

-- devices by status, and by owner, in address order (the first replaces
-- nothing; the second subsumes devices_owner_idx)
create index devices_status_mac on devices (status, mac);
create index devices_owner_mac on devices (owner_id, mac) where owner_id is not null;
drop index devices_owner_idx;

-- Sets (p_owner, created when first named) or clears (null) a device's
-- owner. r_status: 'ok'; 'not_found' (no such device); 'unchanged' (it
-- already was: nothing written, r_version the current version).
-- r_previous: the former owner's name (null: none).
create function provd_device_owner(p_mac macaddr, p_owner text, p_actor text,
    p_request_id text, out r_status text, out r_previous text, out r_version bigint)
language plpgsql as $$
declare
	v_dev		bigint;
	v_old		bigint;
	v_owner		bigint;
	v_created	boolean := false;
begin
	perform audit_lock();
	select d.id, d.owner_id, u.name into v_dev, v_old, r_previous
	    from devices d left join users u on u.id = d.owner_id
	    where d.mac = p_mac for update of d;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	if p_owner is not null then
		insert into users (name) values (p_owner) on conflict (name) do nothing
		    returning id into v_owner;
		if v_owner is null then
			select id into strict v_owner from users where name = p_owner;
		else
			v_created := true;
		end if;
	end if;
	if v_owner is not distinct from v_old then
		r_status := 'unchanged';
		select version into strict r_version from policy_version where id = 1;
		return;
	end if;
	update devices set owner_id = v_owner, updated_at = now() where id = v_dev;
	perform audit_append(p_actor, 'device.owner', p_mac::text,
	    json_build_object('owner', p_owner, 'previous', r_previous,
		'user_created', v_created, 'request_id', p_request_id));
	insert into directory_outbox (entity, key, op, payload)
	values ('device', p_mac::text, 'upsert',
	    json_build_object('mac', p_mac::text, 'owner', p_owner));
	if v_created then
		insert into directory_outbox (entity, key, op, payload)
		values ('user', p_owner, 'upsert', json_build_object('name', p_owner));
	end if;
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;

-- Deletes a user: the devices it owns lose their owner, its group
-- memberships go. Refused while a rule names the user. r_status: 'ok';
-- 'not_found'; 'conflict' (r_rules: the ids of the rules naming it),
-- nothing written.
create function provd_user_delete(p_name text, p_actor text, p_request_id text,
    out r_status text, out r_rules bigint[], out r_version bigint)
language plpgsql as $$
declare
	v_user		bigint;
	v_macs		text[];
	v_groups	text[];
begin
	perform audit_lock();
	-- every writer takes the audit lock first: no rule or membership can
	-- name the user between this check and the commit
	select id into v_user from users where name = p_name for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	select array_agg(id order by id) into r_rules from access_rules where user_id = v_user;
	if r_rules is not null then
		r_status := 'conflict';
		return;
	end if;
	-- each device updated here is announced on provd_device by its trigger
	with d as (
		update devices set owner_id = null, updated_at = now()
		where owner_id = v_user returning mac)
	select coalesce(array_agg(mac::text order by mac), '{}') into v_macs from d;
	with m as (
		delete from group_members where user_id = v_user returning group_id)
	select coalesce(array_agg(g.name order by g.name), '{}') into v_groups
	    from m join groups g on g.id = m.group_id;
	delete from users where id = v_user;
	-- the first 1000 addresses, and how many there were
	perform audit_append(p_actor, 'user.delete', p_name,
	    json_build_object('devices_disowned', cardinality(v_macs),
		'devices', v_macs[1:1000], 'groups', v_groups, 'request_id', p_request_id));
	insert into directory_outbox (entity, key, op, payload)
	values ('user', p_name, 'delete', json_build_object('name', p_name));
	insert into directory_outbox (entity, key, op, payload)
	select 'device', m, 'upsert', json_build_object('mac', m, 'owner', null)
	    from unnest(v_macs) as m;
	insert into directory_outbox (entity, key, op, payload)
	select 'group', g, 'upsert', json_build_object('name', g)
	    from unnest(v_groups) as g;
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;
