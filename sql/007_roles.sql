-- 007_roles: the viewer role (reads only: the web console's read-only
-- accounts, and tokens for dashboards).

alter table api_tokens drop constraint api_tokens_role_check;
alter table api_tokens add constraint api_tokens_role_check
	check (role in ('operator', 'security', 'authorizer', 'admin', 'viewer'));
