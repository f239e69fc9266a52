-- 009_console_read: indexes for the web console's reads over the REST API:
-- searching devices by a prefix and by expiry, the audit log filtered page
-- by page, and the overview's counts. Nothing here changes data.
--
-- Searching (GET /v1/devices?q=): an address prefix is a range of the
-- address index; a name or an owner's name prefix, case-insensitive, is a
-- range of the lower(...) text_pattern_ops indexes below (LIKE 'abc%' on
-- them whatever the database's collation). They are not partial: ANALYZE
-- keeps statistics of an index expression, which tell the planner how
-- many names have a prefix (few: read them and sort by address; many:
-- walk the addresses), only for an index over the whole table.

create index devices_name_prefix on devices (lower(name) text_pattern_ops);
create index users_name_prefix on users (lower(name) text_pattern_ops);

-- Active certificates by expiry: the expires_before / expires_after filters
-- of GET /v1/devices, the overview's certificates expiring per week and its
-- count of active certificates (an index-only scan).
create index certificates_active_expiry on certificates (not_after, device_id)
	where status = 'active';

-- Revoked and superseded certificates by revocation time, with their status:
-- the overview's counts and revocations of the last 24 hours (index-only).
create index certificates_revoked on certificates (revoked_at, status)
	where status <> 'active';

-- Certificates by issuance time: the overview's enrollments per day, and
-- (as the smallest index of the table) its count of all certificates.
create index certificates_issued on certificates (issued_at);

-- The audit log, newest first (by seq) under a filter: by object, by action
-- (exact, or a prefix: text_pattern_ops serves both), by actor, by the
-- device a row names (its object or detail's "mac" or "device"; not
-- partial, for the statistics of its expression, as above), and by time
-- (BRIN: rows are appended in time order, and a BRIN index costs the
-- appends next to nothing).
create index audit_log_object on audit_log (object, seq);
create index audit_log_action on audit_log (action text_pattern_ops, seq);
create index audit_log_actor on audit_log (actor, seq);
create index audit_log_device on audit_log ((coalesce(detail ->> 'mac', detail ->> 'device')), seq);
create index audit_log_at on audit_log using brin (at);
