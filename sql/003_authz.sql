-- Central access control (Fig. 7): the policy version, change notifications
-- for every provd's decision cache, and the audited functions that change
-- resources, rules and group memberships.
--
-- Notifications (payloads are text):
--   provd_device   device id: the device, its certificates or its groups
--                  changed (triggers below)
--   provd_policy   policy version: resources, rules or groups changed
--   provd_revocation  serial (001_init, provd_revoke)
-- A cache that lost its LISTEN connection reloads everything.

create table policy_version (
	id		smallint primary key default 1 check (id = 1),
	version		bigint not null default 1
);
insert into policy_version (id, version) values (1, 1);

-- Bumps the policy version and tells every cache; returns the new version.
create function provd_policy_bump() returns bigint language plpgsql as $$
declare
	v	bigint;
begin
	update policy_version set version = version + 1 where id = 1 returning version into v;
	perform pg_notify('provd_policy', v::text);
	return v;
end
$$;

create function provd_notify_device() returns trigger language plpgsql as $$
begin
	if tg_table_name = 'devices' then
		perform pg_notify('provd_device', coalesce(new.id, old.id)::text);
	elsif tg_table_name = 'certificates' then
		perform pg_notify('provd_device', coalesce(new.device_id, old.device_id)::text);
	elsif tg_table_name = 'group_members' then
		if coalesce(new.device_id, old.device_id) is not null then
			perform pg_notify('provd_device',
			    coalesce(new.device_id, old.device_id)::text);
		else
			-- a user's groups reach every device the user owns
			perform pg_notify('provd_device', d.id::text) from devices d
			    where d.owner_id = coalesce(new.user_id, old.user_id);
		end if;
	end if;
	return null;
end
$$;

-- A superseded certificate is as good as revoked to OCSP: tell the
-- responders' caches like a revocation does.
create function provd_notify_superseded() returns trigger language plpgsql as $$
begin
	if new.status = 'superseded' and old.status <> 'superseded' then
		perform pg_notify('provd_revocation', new.serial);
	end if;
	return null;
end
$$;
create trigger certificates_superseded_notify after update of status on certificates
	for each row execute function provd_notify_superseded();

create trigger devices_notify after insert or update or delete on devices
	for each row execute function provd_notify_device();
create trigger certificates_notify after insert or update or delete on certificates
	for each row execute function provd_notify_device();
create trigger group_members_notify after insert or update or delete on group_members
	for each row execute function provd_notify_device();

-- ---------------------------------------------------------------------
-- Resources.

-- r_status: 'ok', 'conflict' (the name exists).
create function provd_resource_add(p_name text, p_class text, p_description text,
    p_actor text, out r_status text, out r_id bigint, out r_version bigint)
language plpgsql as $$
begin
	perform audit_lock();
	insert into resources (name, class, description) values (p_name, p_class, p_description)
	    on conflict (name) do nothing returning id into r_id;
	if r_id is null then
		r_status := 'conflict';
		return;
	end if;
	perform audit_append(p_actor, 'resource.add', p_name,
	    json_build_object('class', p_class, 'description', p_description));
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;

-- Deletes a resource and its rules. r_status: 'ok', 'not_found'.
create function provd_resource_delete(p_name text, p_actor text,
    out r_status text, out r_version bigint)
language plpgsql as $$
declare
	v_id	bigint;
	v_rules	bigint;
begin
	perform audit_lock();
	select id into v_id from resources where name = p_name for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	select count(*) into v_rules from access_rules where resource_id = v_id;
	delete from resources where id = v_id;
	perform audit_append(p_actor, 'resource.delete', p_name,
	    json_build_object('rules_deleted', v_rules));
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;

-- ---------------------------------------------------------------------
-- Rules. The subject is one of a device (by address), a user or a group (by
-- name); users and groups are made when first named.

-- r_status: 'ok', 'no_device', 'no_resource'.
create function provd_rule_add(p_device macaddr, p_user text, p_group text, p_resource text,
    p_action text, p_effect text, p_valid_from timestamptz, p_valid_until timestamptz,
    p_time_from time, p_time_until time, p_weekdays smallint, p_one_time boolean,
    p_actor text, out r_status text, out r_id bigint, out r_version bigint)
language plpgsql as $$
declare
	v_dev	bigint;
	v_user	bigint;
	v_group	bigint;
	v_res	bigint;
begin
	perform audit_lock();
	select id into v_res from resources where name = p_resource;
	if not found then
		r_status := 'no_resource';
		return;
	end if;
	if p_device is not null then
		select id into v_dev from devices where mac = p_device;
		if not found then
			r_status := 'no_device';
			return;
		end if;
	elsif p_user is not null then
		insert into users (name) values (p_user) on conflict (name) do nothing;
		select id into strict v_user from users where name = p_user;
	else
		insert into groups (name) values (p_group) on conflict (name) do nothing;
		select id into strict v_group from groups where name = p_group;
	end if;
	insert into access_rules (device_id, user_id, group_id, resource_id, action, effect,
	    valid_from, valid_until, time_from, time_until, weekdays, one_time, created_by)
	values (v_dev, v_user, v_group, v_res, p_action, p_effect, p_valid_from, p_valid_until,
	    p_time_from, p_time_until, coalesce(p_weekdays, 127), coalesce(p_one_time, false),
	    p_actor)
	returning id into r_id;
	perform audit_append(p_actor, 'rule.add', r_id::text,
	    json_build_object('device', p_device::text, 'user', p_user, 'group', p_group,
		'resource', p_resource, 'action', p_action, 'effect', p_effect,
		'valid_from', p_valid_from, 'valid_until', p_valid_until,
		'time_from', p_time_from, 'time_until', p_time_until,
		'weekdays', coalesce(p_weekdays, 127), 'one_time', coalesce(p_one_time, false)));
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;

-- r_status: 'ok', 'not_found'.
create function provd_rule_delete(p_id bigint, p_actor text,
    out r_status text, out r_version bigint)
language plpgsql as $$
begin
	perform audit_lock();
	delete from access_rules where id = p_id;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	perform audit_append(p_actor, 'rule.delete', p_id::text, '{}'::json);
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;

-- A one-time grant is used by the first decision it allows: true when this
-- call used it (false: someone used it first).
create function provd_rule_use(p_id bigint, p_actor text, p_mac macaddr) returns boolean
language plpgsql as $$
begin
	perform audit_lock();
	update access_rules set used_at = now() where id = p_id and one_time and used_at is null;
	if not found then
		return false;
	end if;
	perform audit_append(p_actor, 'rule.use', p_id::text,
	    json_build_object('mac', p_mac::text));
	perform provd_policy_bump();
	return true;
end
$$;

-- ---------------------------------------------------------------------
-- Group membership (devices by address, users by name).

-- p_add: add or remove. r_status: 'ok', 'unchanged', 'no_device'.
create function provd_group_member(p_group text, p_device macaddr, p_user text,
    p_add boolean, p_actor text, out r_status text, out r_version bigint)
language plpgsql as $$
declare
	v_group	bigint;
	v_dev	bigint;
	v_user	bigint;
	n	int;
begin
	perform audit_lock();
	if p_device is not null then
		select id into v_dev from devices where mac = p_device;
		if not found then
			r_status := 'no_device';
			return;
		end if;
	elsif p_add then
		insert into users (name) values (p_user) on conflict (name) do nothing;
		select id into strict v_user from users where name = p_user;
	else
		select id into v_user from users where name = p_user;
		if not found then
			r_status := 'unchanged';
			return;
		end if;
	end if;
	if p_add then
		insert into groups (name) values (p_group) on conflict (name) do nothing;
	end if;
	select id into v_group from groups where name = p_group;
	if not found then
		r_status := 'unchanged';	-- removing from a group that does not exist
		return;
	end if;
	if p_add then
		insert into group_members (group_id, device_id, user_id)
		values (v_group, v_dev, v_user) on conflict do nothing;
	else
		delete from group_members where group_id = v_group
		    and device_id is not distinct from v_dev and user_id is not distinct from v_user;
	end if;
	get diagnostics n = row_count;
	if n = 0 then
		r_status := 'unchanged';
		return;
	end if;
	perform audit_append(p_actor, case when p_add then 'group.add_member'
	    else 'group.remove_member' end, p_group,
	    json_build_object('device', p_device::text, 'user', p_user));
	insert into directory_outbox (entity, key, op, payload)
	values ('group', p_group, 'upsert', json_build_object('name', p_group));
	r_version := provd_policy_bump();
	r_status := 'ok';
end
$$;
