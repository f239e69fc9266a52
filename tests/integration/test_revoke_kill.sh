#!/bin/sh
# provd killed (SIGKILL) while revocations are under way: after a restart
# each revocation is either fully applied — certificate and device
# revoked, one audit row, one directory outbox row, on the CRL — or not at
# all, and the audit chain is intact.
. "$(dirname "$0")/lib.sh"

write_conf
check "start provd" start_provd || { t_done; exit 1; }
total=40
i=1
while [ $i -le $total ]; do
	new_csr "$T/d$i.csr"
	provctl issue --mac "$(printf '00:1a:7d:da:76:%02x' "$i")" --csr "$T/d$i.csr" >/dev/null 2>&1 ||
	    not_ok "issue $i"
	i=$((i + 1))
done
check_eq "$total devices issued" "$total" "$(sql "select count(*) from certificates where status = 'active'")"

# revoke them all, in parallel batches, and kill provd in the middle
(
	i=1
	while [ $i -le $total ]; do
		PROVD_TOKEN_FILE=$T/security.token "$BIN/provctl" --url "$URL" revoke \
		    "$(printf '00:1a:7d:da:76:%02x' "$i")" --reason keyCompromise >/dev/null 2>&1 &
		[ $((i % 8)) -eq 0 ] && wait
		i=$((i + 1))
	done
	wait
) &
load=$!
# as soon as the first revocations are in
_i=0
until [ "$(sql "select count(*) from certificates where status = 'revoked'")" -gt 0 ] || [ $_i -gt 500 ]; do
	_i=$((_i + 1)); sleep 0.01
done
kill -KILL "$provd_pid"; wait "$provd_pid" 2>/dev/null; provd_pid=""
wait "$load"
revoked=$(sql "select count(*) from certificates where status = 'revoked'")
check "some revocations were cut off by the kill ($revoked of $total applied)" test "$revoked" -lt "$total"

check "provd starts again" start_provd
check_eq "every certificate is active or revoked, nothing else" "$total" \
    "$(sql "select count(*) from certificates where status in ('active', 'revoked')")"
check_eq "a revoked certificate's device is revoked, an active one's active" 0 \
    "$(sql "select count(*) from certificates c join devices d on d.id = c.device_id where d.status <> c.status")"
check_eq "one certificate.revoke audit row per revoked certificate, no more" "$revoked|$revoked" \
    "$(sql "select count(*) || '|' || count(distinct object) from audit_log where action = 'certificate.revoke'")"
check_eq "every audit row names a revoked certificate" 0 \
    "$(sql "select count(*) from audit_log a where a.action = 'certificate.revoke' and not exists (select 1 from certificates c where c.serial = a.object and c.status = 'revoked')")"
check_eq "one outbox revoke row per revoked certificate" "$revoked" \
    "$(sql "select count(*) from directory_outbox where op = 'revoke'")"
provctl crl --pem --out "$T/crl.pem" >/dev/null 2>&1
check_eq "the CRL lists exactly the revoked certificates" "$revoked" \
    "$(openssl crl -in "$T/crl.pem" -noout -text | grep -c 'Serial Number')"
check_out "audit chain verifies" '^audit chain OK' provctl --token-file "$T/security.token" audit verify
# the rest can be revoked now
i=1
while [ $i -le $total ]; do
	PROVD_TOKEN_FILE=$T/security.token provctl revoke "$(printf '00:1a:7d:da:76:%02x' "$i")" \
	    --reason keyCompromise >/dev/null 2>&1
	i=$((i + 1))
done
check_eq "after the restart every revocation goes through" "$total" \
    "$(sql "select count(*) from certificates where status = 'revoked'")"
t_done
