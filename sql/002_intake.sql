-- Intake over the radio: enrollment jobs from their start to their end. A
-- job is opened before the radio link (one open job per device: the unique
-- index enrollment_jobs_one_open), and ends either with the device, its
-- certificate, the job and the audit rows in one transaction
-- (provd_enroll_commit), or failed with its reason and nothing else
-- (provd_enroll_fail). The steps an enrollment went through, with their
-- times, are audit rows 'enrollment.<step>' written when the job ends.
--
-- A certificate is written onto its job (provd_enroll_signed) before it is
-- sent to the device. A job that ends without its record — failed after the
-- push, or left behind by a provd that stopped — turns that certificate
-- into a revoked one (provd_enroll_orphan): the device may hold it, so it
-- must be on the CRL, never valid and unknown.

-- The flow is known once the device has said what it can: a job opened
-- with 'auto' records the one used when it ends.
alter table enrollment_jobs drop constraint enrollment_jobs_keygen_check,
    add constraint enrollment_jobs_keygen_check check (keygen in ('auto', 'server', 'device')),
    add column cert_serial text check (cert_serial ~ '^[0-9a-f]{32}$'),
    add column cert_fingerprint bytea check (octet_length(cert_fingerprint) = 32),
    add column cert_der bytea check (octet_length(cert_der) between 1 and 65536),
    add column cert_not_before timestamptz,
    add column cert_not_after timestamptz,
    add check ((cert_serial is null) = (cert_der is null));

-- The certificate the CA made for a running job, before it leaves provd.
create function provd_enroll_signed(p_job bigint, p_serial text, p_fingerprint bytea,
    p_der bytea, p_not_before bigint, p_not_after bigint) returns boolean
language plpgsql as $$
begin
	update enrollment_jobs set cert_serial = p_serial, cert_fingerprint = p_fingerprint,
	    cert_der = p_der, cert_not_before = to_timestamp(p_not_before),
	    cert_not_after = to_timestamp(p_not_after), step = 'push', updated_at = now()
	    where id = p_job and status = 'running';
	return found;
end
$$;

-- Opens a job (status running). r_status: 'ok'; 'busy' (another job for
-- this device is open: r_job is it); 'active' (the device has an active
-- certificate and p_replace is false: r_serial is it).
create function provd_enroll_open(p_mac macaddr, p_keygen text, p_replace boolean,
    p_actor text, p_request_id text, out r_status text, out r_job bigint, out r_serial text)
language plpgsql as $$
begin
	if not p_replace then
		select c.serial into r_serial from devices d
		    join certificates c on c.device_id = d.id and c.status = 'active'
		    where d.mac = p_mac;
		if found then
			r_status := 'active';
			return;
		end if;
	end if;
	perform audit_lock();
	begin
		insert into enrollment_jobs (mac, status, keygen, step, requested_by, started_at)
		values (p_mac, 'running', p_keygen, 'link', p_actor, now())
		returning id into r_job;
	exception when unique_violation then
		select id into r_job from enrollment_jobs
		    where mac = p_mac and status in ('queued', 'running');
		r_status := 'busy';
		return;
	end;
	perform audit_append(p_actor, 'enrollment.start', r_job::text,
	    json_build_object('mac', p_mac::text, 'keygen', p_keygen, 'replace', p_replace,
		'request_id', p_request_id));
	r_status := 'ok';
end
$$;

-- The audit rows of the steps a job went through: p_steps is a json array
-- of {"step": name, "ms": duration}.
create function provd_enroll_steps(p_job bigint, p_mac macaddr, p_steps json, p_actor text)
returns void language plpgsql as $$
declare
	n	int := coalesce(json_array_length(p_steps), 0);
begin
	if n = 0 then
		return;
	end if;
	perform audit_append_many(
	    array(select p_actor from generate_series(1, n)),
	    array(select 'enrollment.' || (e ->> 'step') from json_array_elements(p_steps)
		with ordinality as x(e, o) order by o),
	    array(select p_job::text from generate_series(1, n)),
	    array(select json_build_object('mac', p_mac::text, 'ms', (e ->> 'ms')::bigint)
		from json_array_elements(p_steps) with ordinality as x(e, o) order by o));
end
$$;

-- The certificate written on job p_job, which the device may hold, recorded
-- revoked (cessationOfOperation) so that it goes on the CRL. The device row
-- is made 'pending' if it did not exist; an existing device keeps its
-- status. Appends the certificate.revoke audit row and notifies. Returns the
-- serial, or null when the job had none (or it is recorded already).
create function provd_enroll_orphan(p_job bigint, p_actor text) returns text
language plpgsql as $$
declare
	j	record;
	v_dev	bigint;
begin
	select mac, cert_serial, cert_fingerprint, cert_der, cert_not_before, cert_not_after
	    into j from enrollment_jobs where id = p_job;
	if not found or j.cert_serial is null or
	    exists (select 1 from certificates where serial = j.cert_serial) then
		return null;
	end if;
	insert into devices (mac, status) values (j.mac, 'pending')
	    on conflict (mac) do update set updated_at = now()
	    returning id into v_dev;
	insert into certificates (device_id, serial, fingerprint_sha256, status, not_before,
	    not_after, der, revoked_at, revocation_reason)
	values (v_dev, j.cert_serial, j.cert_fingerprint, 'revoked', j.cert_not_before,
	    j.cert_not_after, j.cert_der, now(), 5);
	perform audit_append(p_actor, 'certificate.revoke', j.cert_serial,
	    json_build_object('mac', j.mac::text, 'reason', 5, 'job', p_job,
		'why', 'sent to the device by an enrollment that did not finish'));
	perform pg_notify('provd_revocation', j.cert_serial);
	return j.cert_serial;
end
$$;

-- Ends a job with its certificate: provd_issue (device, certificate, owner,
-- groups, certificate.issue audit row, directory outbox), the device's model
-- and name, the step audit rows and the job, all in the caller's one
-- transaction. r_status is provd_issue's; on anything but 'ok' the job is
-- failed with r_message and nothing else is written.
create function provd_enroll_commit(p_job bigint, p_mac macaddr, p_serial text,
    p_fingerprint bytea, p_der bytea, p_not_before bigint, p_not_after bigint,
    p_owner text, p_groups text[], p_replace boolean, p_keygen text, p_model text,
    p_name text, p_steps json, p_actor text, p_request_id text,
    out r_status text, out r_device_id bigint, out r_cert_id bigint, out r_message text)
language plpgsql as $$
declare
	r	record;
begin
	perform audit_lock();
	perform 1 from enrollment_jobs where id = p_job and status = 'running' for update;
	if not found then
		r_status := 'invalid';
		r_message := 'no such running enrollment job';
		return;
	end if;
	perform provd_enroll_steps(p_job, p_mac, p_steps, p_actor);
	select * into r from provd_issue(p_mac, p_serial, p_fingerprint, p_der,
	    to_timestamp(p_not_before), to_timestamp(p_not_after), p_owner, p_groups,
	    p_replace, p_actor, p_request_id);
	r_status := r.r_status;
	r_device_id := r.r_device_id;
	r_cert_id := r.r_cert_id;
	r_message := r.r_message;
	if r_status <> 'ok' then
		-- the device has this certificate (it acknowledged it)
		begin
			perform provd_enroll_orphan(p_job, p_actor);
		exception when unique_violation then
			null;	-- a fingerprint collision: it is not ours to record
		end;
		update enrollment_jobs set status = 'failed', step = 'record',
		    error = coalesce(r_message, r_status), updated_at = now(), finished_at = now()
		    where id = p_job;
		perform audit_append(p_actor, 'enrollment.fail', p_job::text,
		    json_build_object('mac', p_mac::text, 'step', 'record',
			'error', coalesce(r_message, r_status)));
		r_cert_id := null;
		return;
	end if;
	update devices set model = coalesce(p_model, model), name = coalesce(p_name, name)
	    where id = r_device_id;
	update enrollment_jobs set status = 'succeeded', step = 'done', certificate_id = r_cert_id,
	    keygen = p_keygen, cert_serial = null, cert_fingerprint = null, cert_der = null,
	    cert_not_before = null, cert_not_after = null, updated_at = now(),
	    finished_at = now() where id = p_job;
	perform audit_append(p_actor, 'enrollment.succeed', p_job::text,
	    json_build_object('mac', p_mac::text, 'serial', p_serial));
end
$$;

-- Ends a job as failed at p_step with p_error; returns false when the job
-- was not running. p_pushed: its certificate may be on the device, so it is
-- recorded revoked (provd_enroll_orphan) in the same transaction.
create function provd_enroll_fail(p_job bigint, p_step text, p_error text, p_steps json,
    p_actor text, p_pushed boolean default false) returns boolean
language plpgsql as $$
declare
	v_mac		macaddr;
	v_revoked	text;
begin
	perform audit_lock();
	select mac into v_mac from enrollment_jobs where id = p_job and status = 'running'
	    for update;
	if not found then
		return false;
	end if;
	perform provd_enroll_steps(p_job, v_mac, p_steps, p_actor);
	if p_pushed then
		v_revoked := provd_enroll_orphan(p_job, p_actor);
	end if;
	update enrollment_jobs set status = 'failed', step = p_step, error = p_error,
	    updated_at = now(), finished_at = now() where id = p_job;
	perform audit_append(p_actor, 'enrollment.fail', p_job::text,
	    json_build_object('mac', v_mac::text, 'step', p_step, 'error', p_error,
		'revoked', v_revoked));
	return true;
end
$$;

-- Jobs no provd is running any more: started more than p_older_than_s
-- seconds ago (longer than any enrollment may take: provd ends its own
-- jobs before that), failed; a certificate they made is recorded revoked.
-- Returns how many.
create function provd_enroll_reap(p_actor text, p_older_than_s integer) returns integer
language plpgsql as $$
declare
	n	integer := 0;
	r	record;
begin
	for r in select id, step from enrollment_jobs
	    where status in ('queued', 'running')
		and started_at < now() - make_interval(secs => p_older_than_s)
	    order by id
	loop
		if provd_enroll_fail(r.id, coalesce(r.step, 'link'),
		    'interrupted: the provd running it stopped', '[]'::json, p_actor, true) then
			n := n + 1;
		end if;
	end loop;
	return n;
end
$$;
