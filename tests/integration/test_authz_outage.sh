#!/bin/sh
# PostgreSQL restarted while access points ask: every answer is a decision
# or a clean 503 with Retry-After (no other error, no hang), and provd
# answers correctly again afterwards without being restarted. Runs its own
# PostgreSQL, since it restarts it.
unset PGPORT
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
pid0=$provd_pid
new_csr "$T/a.csr"
check "issue a device" provctl issue --mac 00:1a:7d:da:75:01 --csr "$T/a.csr" --group staff
printf '{"name":"ap-1"}' > "$T/r.json"
check_eq "a resource" 201 "$(api POST /v1/resources "$T/r.json" "$T/security.token")"
printf '{"subject":{"group":"staff"},"resource":"ap-1","effect":"allow"}' > "$T/rule.json"
check_eq "a rule" 201 "$(api POST /v1/rules "$T/rule.json" "$T/security.token")"
printf '{"device":{"mac":"00:1a:7d:da:75:01"},"resource":"ap-1","action":"connect"}' > "$T/q.json"
sleep 0.3
check_eq "allowed before the outage" 200 "$(api POST /v1/authorize "$T/q.json" "$T/authorizer.token")"

# questions without pause for 8 s; PostgreSQL restarted 2 s in
(
	end=$(($(date +%s) + 8))
	while [ "$(date +%s)" -lt "$end" ]; do
		curl -s -m 5 -o "$T/one" -D "$T/hdr" -w '%{http_code}\n' -X POST \
		    -H "Authorization: Bearer $(cat "$T/authorizer.token")" \
		    -H 'Content-Type: application/json' --data-binary "@$T/q.json" "$URL/v1/authorize"
		if grep -q '^HTTP/1.1 503' "$T/hdr" && ! grep -qi '^Retry-After:' "$T/hdr"; then
			echo "503-without-retry-after"
		fi
	done > "$T/codes"
) &
load=$!
sleep 2
check "PostgreSQL restarts" sh "$top/scripts/services.sh" restart-pg "$T/svc"
wait "$load"
sort "$T/codes" | uniq -c | sed "s/^/# /"
total=$(wc -l < "$T/codes")
others=$(grep -cvE '^(200|503)$' "$T/codes")
check "answers during the outage: $total, all 200 or 503 with Retry-After" test "$total" -gt 50 -a "$others" = 0
check "some answers were decisions" grep -q '^200$' "$T/codes"

# recovery without a restart of provd
ok=0
for _ in $(seq 1 50); do
	if [ "$(api POST /v1/authorize "$T/q.json" "$T/authorizer.token")" = 200 ] &&
	    [ "$(jq -r .decision "$T/resp")" = allow ]; then ok=1; break; fi
	sleep 0.2
done
check_eq "decisions are right again after the restart" 1 "$ok"
check_eq "the same provd process" "$pid0" "$provd_pid"
check "provd still runs" kill -0 "$provd_pid"
PROVD_TOKEN_FILE=$T/security.token provctl revoke 00:1a:7d:da:75:01 --reason keyCompromise >/dev/null
sleep 0.5
api POST /v1/authorize "$T/q.json" "$T/authorizer.token" >/dev/null
check_eq "notifications flow again: a revocation is seen" "deny|device revoked" \
    "$(jq -r '.decision + "|" + .reason' "$T/resp")"
t_done
