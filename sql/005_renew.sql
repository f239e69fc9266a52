-- 005_renew: certificate renewal. A device renews with its current, active
-- certificate; the new one supersedes it in the same transaction (reason
-- superseded on the CRL, its own audit row and directory outbox row).
-- Administrators can ask a device to renew at its next contact and cap the
-- validity of the certificates issued to the members of a group.

alter table devices add column renew_requested_at timestamptz;
alter table groups add column max_validity_days integer
	check (max_validity_days between 1 and 36500);

-- The renewal of p_old_serial by a new certificate. r_status: 'ok';
-- 'not_found' (no such certificate); 'conflict' (it is no longer the
-- device's active certificate, or the device is not active: a replay or a
-- concurrent renewal), nothing written; 'expired' (past its notAfter: intake
-- is the way back), nothing written; 'invalid' (the data broke a
-- constraint), nothing written.
create function provd_renew(p_old_serial text, p_serial text, p_fingerprint bytea, p_der bytea,
    p_not_before timestamptz, p_not_after timestamptz, p_key_reused boolean,
    p_actor text, p_request_id text,
    out r_status text, out r_cert_id bigint, out r_message text)
language plpgsql as $$
declare
	v_old		bigint;
	v_dev		bigint;
	v_status	text;
	v_old_na	timestamptz;
	v_mac		macaddr;
	v_dev_status	text;
	v_owner		text;
	v_groups	text[];
	v_requested	timestamptz;
begin
	perform audit_lock();
	select id, device_id, status, not_after into v_old, v_dev, v_status, v_old_na
	    from certificates where serial = p_old_serial for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	select d.mac, d.status, u.name, d.renew_requested_at
	    into strict v_mac, v_dev_status, v_owner, v_requested
	    from devices d left join users u on u.id = d.owner_id
	    where d.id = v_dev for update of d;
	if v_status <> 'active' or v_dev_status <> 'active' then
		r_status := 'conflict';
		r_message := 'the certificate is not the device''s active certificate';
		return;
	end if;
	if v_old_na <= now() then
		r_status := 'expired';
		return;
	end if;
	select coalesce(array_agg(g.name order by g.name), '{}'::text[]) into v_groups
	    from group_members m join groups g on g.id = m.group_id
	    where m.device_id = v_dev;

	begin
		update certificates set status = 'superseded', revoked_at = now(),
		    revocation_reason = 4 where id = v_old;
		insert into certificates (device_id, serial, fingerprint_sha256, status,
		    not_before, not_after, der)
		values (v_dev, p_serial, p_fingerprint, 'active', p_not_before, p_not_after, p_der)
		returning id into r_cert_id;
		update certificates set superseded_by = r_cert_id where id = v_old;
		update devices set renew_requested_at = null, updated_at = now() where id = v_dev;
		perform audit_append(p_actor, 'certificate.renew', p_serial,
		    json_build_object('mac', v_mac::text, 'replaced', p_old_serial,
			'key_reused', p_key_reused, 'requested_at', v_requested,
			'not_after', p_not_after, 'request_id', p_request_id));
		insert into directory_outbox (entity, key, op, payload)
		values ('device', v_mac::text, 'upsert',
		    json_build_object('mac', v_mac::text, 'status', 'active', 'serial', p_serial,
			'owner', v_owner, 'groups', v_groups,
			'not_after', (extract(epoch from p_not_after))::bigint));
		r_status := 'ok';
	exception
		when unique_violation then
			r_status := 'conflict';
			r_cert_id := null;
			r_message := sqlerrm;
		when integrity_constraint_violation or data_exception then
			r_status := 'invalid';
			r_cert_id := null;
			r_message := sqlerrm;
	end;
end
$$;

-- Asks the device with an active certificate to renew at its next contact.
-- r_status 'ok', 'not_found' (no such device), 'conflict' (no active
-- certificate: a revoked or retired device goes through intake again).
create function provd_renew_request(p_mac macaddr, p_actor text, p_request_id text,
    out r_status text, out r_serial text)
language plpgsql as $$
declare
	v_dev	bigint;
begin
	perform audit_lock();
	select id into v_dev from devices where mac = p_mac for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	select serial into r_serial from certificates where device_id = v_dev and status = 'active';
	if not found then
		r_status := 'conflict';
		return;
	end if;
	update devices set renew_requested_at = coalesce(renew_requested_at, now()),
	    updated_at = now() where id = v_dev;
	perform audit_append(p_actor, 'device.renew_request', p_mac::text,
	    json_build_object('serial', r_serial, 'request_id', p_request_id));
	r_status := 'ok';
end
$$;

-- Caps (p_days) or uncaps (null) the validity of certificates issued to the
-- members of a group, creating the group if needed.
create function provd_group_validity(p_group text, p_days integer, p_actor text, p_request_id text)
returns void language plpgsql as $$
begin
	perform audit_lock();
	insert into groups (name, max_validity_days) values (p_group, p_days)
	    on conflict (name) do update set max_validity_days = excluded.max_validity_days;
	perform audit_append(p_actor, 'group.validity', p_group,
	    json_build_object('max_validity_days', p_days, 'request_id', p_request_id));
end
$$;

-- What a device's next certificate may have: the smallest cap of its groups
-- (null: none), and whether an administrator asked it to renew.
create function provd_renew_info(p_serial text,
    out r_status text, out r_max_days integer, out r_requested_at timestamptz)
language sql stable as $$
	select c.status, (select min(g.max_validity_days) from group_members m
	    join groups g on g.id = m.group_id where m.device_id = c.device_id),
	    d.renew_requested_at
	from certificates c join devices d on d.id = c.device_id
	where c.serial = p_serial
$$;
