-- 010_rule_replace: replacing a rule in one step (PUT /v1/rules/{id}, the
-- web console's "edit"). Rules are never changed in place: the old rule is
-- deleted and a new one, with a new id, is added, in one transaction with
-- one new policy version (audit rows: rule.add for the new rule with every
-- field, then rule.replace naming the old and the new id), so that no
-- decision ever sees both rules or neither. The new rule is checked exactly as by
-- provd_rule_add; when it is refused, the old rule stays.

-- r_status: 'ok', 'not_found' (no rule p_id), 'no_device', 'no_resource'.
create function provd_rule_replace(p_id bigint, p_device macaddr, p_user text, p_group text,
    p_resource text, p_action text, p_effect text, p_valid_from timestamptz,
    p_valid_until timestamptz, p_time_from time, p_time_until time, p_weekdays smallint,
    p_one_time boolean, p_actor text, out r_status text, out r_id bigint, out r_version bigint)
language plpgsql as $$
declare
	v_add	record;
begin
	perform audit_lock();
	perform 1 from access_rules where id = p_id for update;
	if not found then
		r_status := 'not_found';
		return;
	end if;
	-- provd_rule_add writes the rule.add row and bumps the policy version;
	-- its checks come before it writes anything.
	select * into v_add from provd_rule_add(p_device, p_user, p_group, p_resource, p_action,
	    p_effect, p_valid_from, p_valid_until, p_time_from, p_time_until, p_weekdays,
	    p_one_time, p_actor);
	if v_add.r_status <> 'ok' then
		r_status := v_add.r_status;
		return;
	end if;
	delete from access_rules where id = p_id;
	perform audit_append(p_actor, 'rule.replace', p_id::text,
	    json_build_object('replaced_by', v_add.r_id));
	r_id := v_add.r_id;
	r_version := v_add.r_version;
	r_status := 'ok';
end
$$;
