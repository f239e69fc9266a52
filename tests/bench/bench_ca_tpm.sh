# Sourced by tests/bench/run.sh (PostgreSQL from $B/svc; $BIN, $top): the
# same issuance benchmark as bench_issue, against a provd whose CA key is
# in a TPM (a private swtpm; provd ca init --keystore tpm2), on a database
# of its own. Prints "bench: NAME VALUE UNIT":
#   tpm_ca_issue_per_s      certificates/s through POST /v1/certificates
#   tpm_ca_issue_p50_ms, tpm_ca_issue_p99_ms
# The signer process signs one certificate at a time, so this is the TPM's
# own P-256 signing rate less the rest of an issuance.

tca_url_before=$URL
tca=$B/tpmca
mkdir -p "$tca"
if swtpm_start "$tca/tpm"; then
	tpms="$tpms $swtpm_pid"
	cat > "$tca/provd.conf" <<CONF
[server]
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=provd_tpmca user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ca]
dir = $tca/ca
tcti = $swtpm_tcti
[log]
level = warn
CONF
	psql -X -q -d postgres -c "drop database if exists provd_tpmca with (force)" \
	    -c "create database provd_tpmca" >/dev/null 2>&1
	"$BIN/provd" -c "$tca/provd.conf" ca init --keystore tpm2 >/dev/null &&
	"$BIN/provd" -c "$tca/provd.conf" migrate >/dev/null &&
	"$BIN/provd" -c "$tca/provd.conf" token add --role operator --name bench-tpm \
	    > "$tca/token" 2>/dev/null &&
	provd_start "$tca/provd.conf" "$tca" && {
		tca_pid=$provd_pid
		tpms="$tpms $tca_pid"
		"$top/build/tests/bench/bench_issue" --url "$URL" --token-file "$tca/token" \
		    --conninfo "host=127.0.0.1 port=$PGPORT dbname=provd_tpmca user=postgres password=$(cat "$PROVD_DB_PASSWORD_FILE")" \
		    --clients 16 --seconds "${BENCH_SECONDS:-10}" --prefix tpm_ca_ --issue-only
		kill -TERM "$tca_pid" 2>/dev/null; wait "$tca_pid" 2>/dev/null || true
	}
	kill "$swtpm_pid" 2>/dev/null || true
	psql -X -q -d postgres -c "drop database if exists provd_tpmca with (force)" >/dev/null 2>&1
else
	echo "bench: tpm_ca_issue_per_s -1 certs/s"
fi
URL=$tca_url_before
