#!/bin/sh
# make demo: private PostgreSQL and slapd, a fresh CA, provd, and the main
# job on sample devices — each device makes a key pair and a CSR, provd
# checks it and issues an IEEE 802.1AR-style device certificate that the
# openssl command line then verifies. Everything is stopped at the end
# (DEMO_KEEP=1 keeps provd running until Ctrl-C).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=$top/build/bin
. "$top/scripts/provd-lib.sh"
D=$(mktemp -d /tmp/provd-demo.XXXXXX)
chmod 755 "$D"
pid=""

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
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
CONF
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

step "starting provd"
provd_start "$D/provd.conf" "$D"
pid=$provd_pid
export PROVD_URL=$URL PROVD_TOKEN_FILE=$D/operator.token
echo "provd at $URL"
"$BIN/provctl" health

step "issuing device certificates from the devices' own CSRs"
n=0
while read -r mac kind owner group; do
	n=$((n + 1))
	case $kind in
	p256) alg="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ;;
	p384) alg="-algorithm EC -pkeyopt ec_paramgen_curve:P-384" ;;
	ed25519) alg="-algorithm ED25519" ;;
	esac
	# shellcheck disable=SC2086
	openssl genpkey $alg -out "$D/dev$n.key" 2>/dev/null
	openssl req -new -key "$D/dev$n.key" -subj "/CN=device-$n" -out "$D/dev$n.csr"
	printf '%-18s %-8s owner=%-6s group=%-12s ' "$mac" "$kind" "$owner" "$group"
	"$BIN/provctl" issue --mac "$mac" --csr "$D/dev$n.csr" --owner "$owner" --group "$group" \
	    --out "$D/dev$n.crt" 2>&1
done <<DEVICES
00:1A:7D:DA:71:13 p256 alice engineering
00-1a-7d-da-71-14 p384 bob finance
001a.7dda.7115 ed25519 carol engineering
001A7DDA7116 p256 dave facilities
DEVICES

step "what a device certificate says (device 1)"
openssl x509 -in "$D/dev1.crt" -noout -subject -serial -dates -ext subjectAltName,keyUsage,extendedKeyUsage,crlDistributionPoints,authorityInfoAccess
step "openssl verify against the CA chain"
for i in 1 2 3 4; do
	openssl verify -CAfile "$D/ca/root.crt" -untrusted "$D/ca/ca.crt" "$D/dev$i.crt"
done

step "the records in PostgreSQL"
psql -X -d provd -c "select d.mac, u.name as owner, c.serial, c.status, c.not_after::date from devices d join certificates c on c.device_id = d.id left join users u on u.id = d.owner_id order by d.mac"

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
	wait "$pid"
fi
step "demo complete"
