-- 004_crl: base CRLs shared by every provd on this database, and taking a
-- certificate off hold.
--
-- A base CRL is a complete CRL recorded here with the entries it lists, so
-- that every instance serves the same one and a delta CRL (RFC 5280 5.2.4)
-- can list exactly what differs from it: certificates revoked or
-- superseded since (or revoked again with another reason). Bases are
-- numbered from the sequence crl_number like every CRL, made under the CRL
-- advisory lock (db/cert.c), and kept: the newest two with their entries.
--
-- A delta CRL also lists with removeFromCRL every certificate released
-- from hold since its base, whether the base lists it or a complete CRL
-- made after the base did: crl_releases records each release. Rows older
-- than the newest base by more than an hour are deleted when a base is
-- made; an older release is on every complete CRL a delta can go with.
--
-- provd_unrevoke() releases a certificate from hold (certificateHold, 6):
-- the one way back from a revocation. It notifies on provd_revocation like
-- a revocation (the payload is the serial: whatever is cached about it is
-- dropped), and the certificates and devices triggers of 003_authz tell the
-- authorization caches.

create table crl_bases (
	crl_number	bigint primary key check (crl_number > 0),
	this_update	timestamptz not null,
	next_update	timestamptz not null,
	entries		integer not null check (entries >= 0),
	der		bytea not null check (octet_length(der) between 1 and 67108864),
	created_at	timestamptz not null default now(),
	check (next_update > this_update)
);

-- What a base lists, as the certificates table had it.
create table crl_base_entries (
	crl_number	bigint not null references crl_bases (crl_number)
			on delete cascade deferrable initially deferred,
	serial		text not null check (serial ~ '^[0-9a-f]{32}$'),
	revoked_at	timestamptz not null,
	reason		smallint not null check (reason between 0 and 10 and reason not in (7, 8)),
	primary key (crl_number, serial)
);

create table crl_releases (
	serial		text not null check (serial ~ '^[0-9a-f]{32}$'),
	released_at	timestamptz not null default clock_timestamp()
);
create index crl_releases_by_serial on crl_releases (serial);
create index crl_releases_by_time on crl_releases (released_at);

-- Releases a certificate from hold: it must be revoked with reason
-- certificateHold (6) and not expired, and its device must have no other
-- active certificate. The certificate becomes active again, and its device
-- active when a revocation had made it revoked (what provd_revoke did);
-- audit row certificate.unrevoke, directory outbox row, the release for
-- delta CRLs, notification.
-- r_status: 'ok', 'not_found', 'active' (not revoked), 'superseded',
-- 'not_hold' (revoked with r_reason), 'expired', 'replaced' (the device has
-- another active certificate); nothing is written unless 'ok'.
create function provd_unrevoke(p_serial text, p_actor text, p_request_id text,
    out r_status text, out r_cert_id bigint, out r_reason smallint)
language plpgsql as $$
declare
	v_dev		bigint;
	v_status	text;
	v_not_after	timestamptz;
	v_revoked_at	timestamptz;
	v_mac		macaddr;
	v_dev_status	text;
begin
	perform audit_lock();
	select id, device_id, status, not_after, revoked_at, revocation_reason
	    into r_cert_id, v_dev, v_status, v_not_after, v_revoked_at, r_reason
	    from certificates where serial = p_serial for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	if v_status = 'active' then
		r_status := 'active';
	elsif v_status = 'superseded' then
		r_status := 'superseded';
	elsif r_reason <> 6 then
		r_status := 'not_hold';
	elsif v_not_after <= now() then
		r_status := 'expired';
	elsif exists (select 1 from certificates where device_id = v_dev and status = 'active') then
		r_status := 'replaced';
	end if;
	if r_status is not null then
		return;
	end if;
	update certificates set status = 'active', revoked_at = null, revocation_reason = null
	    where id = r_cert_id;
	select mac, status into strict v_mac, v_dev_status from devices where id = v_dev for update;
	if v_dev_status = 'revoked' then
		update devices set status = 'active', updated_at = now() where id = v_dev;
	end if;
	perform audit_append(p_actor, 'certificate.unrevoke', p_serial,
	    json_build_object('mac', v_mac::text, 'revoked_at', v_revoked_at,
		'device_was', v_dev_status, 'request_id', p_request_id));
	insert into directory_outbox (entity, key, op, payload)
	values ('device', v_mac::text, 'upsert',
	    json_build_object('mac', v_mac::text, 'status', 'active', 'serial', p_serial,
		'not_after', (extract(epoch from v_not_after))::bigint));
	insert into crl_releases (serial) values (p_serial);
	perform pg_notify('provd_revocation', p_serial);
	r_status := 'ok';
end
$$;
