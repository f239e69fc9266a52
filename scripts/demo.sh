#!/bin/sh
# make demo: private PostgreSQL and slapd, a fresh CA, provd with the
# simulated radio, and the main job on simulated devices (devagent) — the
# intake desk finds them, checks each address against its label, opens the
# PIN-secured link, gets a key pair in place (made inside the device, in a
# TPM on swtpm for one of them, or made by provd and delivered), has the CA
# sign an IEEE 802.1AR-style device certificate, pushes it and records it.
# The openssl command line then verifies what the devices hold. Everything
# is stopped at the end (DEMO_KEEP=1 keeps provd running until Ctrl-C).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=$top/build/bin
. "$top/scripts/provd-lib.sh"
D=$(mktemp -d /tmp/provd-demo.XXXXXX)
chmod 755 "$D"
pid=""
devs=""
tpm=""

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
	for p in $devs $tpm; do kill "$p" 2>/dev/null || true; done
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	sh "$top/scripts/services.sh" stop "$D/svc" >/dev/null 2>&1 || true
	echo "demo stopped; files kept in $D"
}
trap cleanup EXIT INT TERM

step "starting private PostgreSQL and OpenLDAP on 127.0.0.1"
sh "$top/scripts/services.sh" start "$D/svc"
set -a; . "$D/svc/services.env"; set +a
echo "PostgreSQL on port $PGPORT, slapd at $LDAP_URI"

cat > "$D/provd.conf" <<CONF
[server]
listen = 127.0.0.1
port = 0
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=provd user=postgres
password_file = $PROVD_DB_PASSWORD_FILE
[ldap]
uri = $LDAP_URI
bind_dn = $LDAP_BIND_DN
password_file = $LDAP_PASSWORD_FILE
base_dn = $LDAP_BASE
[ca]
dir = $D/ca
crl_url = http://127.0.0.1:8440/v1/crl
ocsp_url = http://127.0.0.1:8440/ocsp
[radio]
backend = sim
sim_dir = $D/air
[console]
dir = $top/server/console
CONF
mkdir -p "$D/air"
provd() { "$BIN/provd" -c "$D/provd.conf" "$@"; }

step "checking the configuration"
provd -n
step "initialising a two-tier CA (root + issuing)"
provd ca init --cn "Example Corp Device Root CA" --org "Example Corp" --two-tier
openssl x509 -in "$D/ca/ca.crt" -noout -subject -issuer
step "applying database migrations"
provd migrate
step "creating API tokens"
provd token add --role operator --name intake-desk > "$D/operator.token"
provd token add --role security --name security-team > "$D/security.token"
step "creating a web console account (admin; the password is in $D/console.password)"
openssl rand -base64 18 > "$D/console.password"
chmod 600 "$D/console.password"
provd admin add desk --role admin --password-file "$D/console.password"

step "starting provd"
provd_start "$D/provd.conf" "$D"
pid=$provd_pid
export PROVD_URL=$URL PROVD_TOKEN_FILE=$D/operator.token
echo "provd at $URL"
"$BIN/provctl" health

step "switching on four new devices (simulated: devagent on the simulated air)"
# one device keeps its key in a TPM: a private swtpm
if command -v swtpm >/dev/null 2>&1 && swtpm_start "$D/tpm"; then
	tpm=$swtpm_pid
	tpm_opts="--keystore tpm2 --tcti $swtpm_tcti"
else
	tpm_opts="--keystore file"
fi
n=0
while read -r mac pin name model ks; do
	n=$((n + 1))
	opts="--keystore file"
	[ "$ks" = tpm2 ] && opts=$tpm_opts
	printf '%s\n' "$pin" > "$D/dev$n.pin"	# the PIN printed on the label
	# shellcheck disable=SC2086
	"$BIN/devagent" --state "$D/dev$n" init --addr "$mac" --pin-file "$D/dev$n.pin" \
	    --name "$name" --model "$model" $opts
	"$BIN/devagent" --state "$D/dev$n" serve --air "$D/air" >"$D/dev$n.out" 2>&1 &
	devs="$devs $!"
done <<DEVICES
00:1A:7D:DA:71:13 493817 Printer-2F LaserJet-M507 tpm2
00:1A:7D:DA:71:14 250611 Scanner-3A ScanJet-7500 file
00:1A:7D:DA:71:15 777123 Badge-0042 BadgeReader-2 file
00:1A:7D:DA:71:16 918273 Sensor-B12 EnvSensor-9 file
DEVICES
sleep 0.5

step "provctl scan: the devices in range"
"$BIN/provctl" scan

step "provctl enroll: label check, PIN link, key pair, CA, push, record"
while read -r n mac label keygen owner group; do
	echo "-- $mac (label reads $label), key made by the $keygen, owner $owner, group $group"
	"$BIN/provctl" enroll "$mac" --label-mac "$label" --pin-file "$D/dev$n.pin" \
	    --keygen "$keygen" --owner "$owner" --group "$group"
done <<ENROLL
1 00:1A:7D:DA:71:13 00-1a-7d-da-71-13 device alice engineering
2 00:1A:7D:DA:71:14 001a.7dda.7114 server bob finance
3 00:1A:7D:DA:71:15 00:1A:7D:DA:71:15 device carol engineering
4 00:1A:7D:DA:71:16 00:1A:7D:DA:71:16 device dave facilities
ENROLL

step "a label that does not match is refused before the link opens"
"$BIN/provctl" enroll 00:1A:7D:DA:71:14 --label-mac 00:1A:7D:DA:71:41 \
    --pin-file "$D/dev2.pin" || true

step "what device 1 holds (its key never left its TPM)"
"$BIN/devagent" --state "$D/dev1" show
for i in 1 2 3 4; do
	openssl x509 -inform DER -in "$D/dev$i/keystore/id/cert.der" -out "$D/dev$i.crt"
done
openssl x509 -in "$D/dev1.crt" -noout -subject -serial -dates -ext subjectAltName,keyUsage,extendedKeyUsage,crlDistributionPoints,authorityInfoAccess
step "openssl verify: each device's certificate against the CA chain it was given"
for i in 1 2 3 4; do
	printf 'device %s: ' "$i"
	openssl verify -CAfile "$D/ca/root.crt" -untrusted "$D/dev$i/keystore/id/chain.pem" "$D/dev$i.crt"
done

step "the records in PostgreSQL"
psql -X -d provd -c "select d.mac, d.model, u.name as owner, c.serial, c.status, c.not_after::date from devices d join certificates c on c.device_id = d.id left join users u on u.id = d.owner_id order by d.mac"
psql -X -d provd -c "select id, mac, status, keygen, step, finished_at - started_at as took from enrollment_jobs order by id"

step "revoking device 4 (lost) and checking the CRL"
PROVD_TOKEN_FILE=$D/security.token "$BIN/provctl" revoke 00:1a:7d:da:71:16 --reason keyCompromise
"$BIN/provctl" crl --pem --out "$D/crl.pem"
openssl crl -in "$D/crl.pem" -noout -text | sed -n '/Revoked Certificates/,$p' | head -n 6
cat "$D/ca/ca.crt" "$D/ca/root.crt" > "$D/ca-all.pem"
if openssl verify -crl_check -CAfile "$D/ca-all.pem" -CRLfile "$D/crl.pem" "$D/dev4.crt" >/dev/null 2>&1; then
	echo "unexpected: revoked certificate still verifies"; exit 1
fi
echo "openssl verify -crl_check: device 4 is refused (revoked)"

step "audit log"
PROVD_TOKEN_FILE=$D/security.token "$BIN/provctl" audit verify
psql -X -d provd -c "select seq, actor, action, object from audit_log order by seq"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
	step "provd keeps running at $URL (tokens in $D); Ctrl-C stops everything"
	echo "web console: $URL/console/ (name desk, password in $D/console.password)"
	wait "$pid"
fi
step "demo complete"
