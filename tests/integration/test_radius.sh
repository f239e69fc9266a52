#!/bin/sh
# FreeRADIUS 3.2 doing EAP-TLS for access points against provd, configured
# from etc/freeradius/ (so the snippet itself is what is tested): provd's CA
# as the trust anchor, revocation through provd's OCSP responder, and
# POST /v1/authorize/radius asked by rlm_rest in post-auth. eapol_test plays
# the access point. An allowed device succeeds; a revoked one fails (OCSP and
# the authorization each refuse it alone), as do a device whose rule is
# removed, a device on another access point, certificates of other CAs, and
# every device while provd is down (fail-closed). FreeRADIUS also asks a
# provd serving HTTPS, with an access-point certificate instead of a token,
# until that certificate is revoked. The endpoint's refusals of malformed
# questions are checked with curl.
. "$(dirname "$0")/lib.sh"

rpids=""
tls_pid=""
r_cleanup() {
	for p in $rpids $tls_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	t_cleanup
}
trap r_cleanup EXIT

for p in freeradius eapol_test; do
	command -v $p >/dev/null || { not_ok "$p is installed (make deps)"; t_done; exit 1; }
done
[ -f /usr/lib/freeradius/rlm_rest.so ] || { not_ok "freeradius-rest is installed (make deps)"; t_done; exit 1; }

write_conf
check "start provd" start_provd || { t_done; exit 1; }
# the same port after a restart: the RADIUS configurations name it
PORT=${URL##*:}
sed -i "s/^port = 0$/port = $PORT/" "$T/provd.conf"
SEC=$T/security.token
AUTH=$T/authorizer.token
CA=$T/ca

# --- devices, the access point's resource and rule -------------------------
A=00:1a:7d:da:76:01
B=00:1a:7d:da:76:02
new_csr "$T/a.csr"; new_csr "$T/b.csr"
check "issue device A (group engineering)" provctl issue --mac $A --csr "$T/a.csr" --group engineering --out "$T/a.pem"
check "issue device B (group engineering)" provctl issue --mac $B --csr "$T/b.csr" --group engineering --out "$T/b.pem"
post() {	# PATH JSON [TOKEN]: status; body in $T/resp
	printf '%s' "$2" > "$T/body.json"
	api POST "$1" "$T/body.json" "${3:-$SEC}"
}
check_eq "add resource ap-lobby-3" 201 "$(post /v1/resources '{"name":"ap-lobby-3","class":"access-point"}')"
check_eq "add resource ap-garage (no rule)" 201 "$(post /v1/resources '{"name":"ap-garage","class":"access-point"}')"
check_eq "rule: engineering may connect to ap-lobby-3" 201 \
    "$(post /v1/rules '{"subject":{"group":"engineering"},"resource":"ap-lobby-3","action":"connect","effect":"allow"}')"
RULE=$(jq -r .id "$T/resp")

# --- certificates from elsewhere ------------------------------------------
# the RADIUS server's own certificate (what the devices check), from a CA of
# its own; a device certificate for A's address from another CA; and one
# from a CA that copies the name of provd's CA
mkca() {	# NAME SUBJECT
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
	    -subj "$2" -days 2 -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign -out "$T/$1.pem" 2>/dev/null
}
mkcert() {	# NAME CA SUBJECT EKU
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$4" > "$T/$1.ext"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" -subj "$3" \
	    -out "$T/$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.pem" -CAkey "$T/$2.key" -set_serial "0x$(openssl rand -hex 15)" \
	    -days 2 -extfile "$T/$1.ext" -out "$T/$1.pem" 2>/dev/null
}
ISSUER=$(openssl x509 -in "$CA/ca.crt" -noout -subject -nameopt compat | sed 's/^subject=//')
make_certs() {
	mkca srvca "/CN=RADIUS test CA" && mkcert srv srvca "/CN=radius.test" serverAuth &&
	mkca other "/CN=Other CA" && mkcert foreign other "/serialNumber=$A" clientAuth &&
	mkca twin "$ISSUER" && mkcert twin-dev twin "/serialNumber=$A" clientAuth
}
check "make the RADIUS server's certificate and the foreign device certificates" make_certs
cat "$CA/chain.pem" "$T/other.pem" "$T/twin.pem" > "$T/trust-more.pem"

# --- FreeRADIUS from etc/freeradius ----------------------------------------
# radius_conf DIR PORT VARIANT: /etc/freeradius/3.0 copied to DIR, with the
# snippet installed as docs/radius.md says. VARIANT full: OCSP and provd;
# ocsp-only: post-auth without provd_authorize; authz-only: OCSP off and a
# trust list that also holds the other CA and the twin CA; tls: provd over
# HTTPS ($TLS_URL), the access-point certificate instead of the token.
radius_conf() {
	d=$1
	rm -rf "$d"
	cp -a /etc/freeradius/3.0 "$d"
	mkdir -p "$d/log" "$d/run"
	# as root, in a private directory: no user/group switch, no proxying,
	# rejects at once
	sed -i -e 's/^\([[:space:]]*\)\(user\|group\) = freerad/\1#\2 = freerad/' \
	    -e 's/^\([[:space:]]*\)proxy_requests[[:space:]]*=.*/\1proxy_requests = no/' \
	    -e 's/^\([[:space:]]*\)reject_delay[[:space:]]*=.*/\1reject_delay = 0/' \
	    -e "s#^logdir = .*#logdir = $d/log#" -e "s#^run_dir = .*#run_dir = $d/run#" "$d/radiusd.conf"
	chain=$CA/chain.pem
	[ "$3" = authz-only ] && chain=$T/trust-more.pem
	rest=$URL
	[ "$3" = tls ] && rest=$TLS_URL
	for f in mods-available/eap-provd mods-available/provd policy.d/provd sites-available/provd; do
		sed -e "s#@PROVD_URL@#$rest#g" -e "s#@PROVD_OCSP_URL@#$URL/ocsp#g" \
		    -e "s#@PROVD_TOKEN@#$(cat "$AUTH")#g" -e "s#@PROVD_TLS_CA@#$CA/root.crt#g" \
		    -e "s#@PROVD_CHAIN@#$chain#g" -e "s#@RADIUS_CERT@#$T/srv.pem#g" \
		    -e "s#@RADIUS_KEY@#$T/srv.key#g" -e "s#@RADIUS_AP_CERT@#$T/ap.pem#g" \
		    -e "s#@RADIUS_AP_KEY@#$T/ap.key#g" "$top/etc/freeradius/$f" > "$d/$f" || return 1
	done
	rm -f "$d/mods-enabled/eap" "$d/sites-enabled/default" "$d/sites-enabled/inner-tunnel"
	ln -s ../mods-available/eap-provd "$d/mods-enabled/eap-provd"
	ln -s ../mods-available/provd "$d/mods-enabled/provd"
	ln -s ../sites-available/provd "$d/sites-enabled/provd"
	# the listener on loopback (the -i/-p flags do not reach a named server)
	sed -i -e 's/^\([[:space:]]*\)ipaddr = \*$/\1ipaddr = 127.0.0.1/' \
	    -e "s/^\([[:space:]]*\)port = 0$/\1port = $2/" "$d/sites-available/provd"
	case $3 in
	ocsp-only) sed -i 's/^\([[:space:]]*\)provd_authorize$/\1#provd_authorize/' "$d/sites-available/provd" ;;
	authz-only) sed -i '/ocsp {/,/}/s/enable = yes/enable = no/' "$d/mods-available/eap-provd" ;;
	tls)	sed -i 's/^\([[:space:]]*\)#[[:space:]]*\(certificate_file\|private_key_file\) = /\1\2 = /' \
		    "$d/mods-available/provd"
		sed -i '/update control {/,/}/d' "$d/policy.d/provd" ;;
	esac
	# two access points: the client names are the resources
	cat > "$d/clients.conf" <<-EOF
	client ap-lobby-3 {
		ipaddr = 127.0.0.1
		secret = testing123
	}
	client ap-garage {
		ipaddr = 127.0.0.2
		secret = testing123
	}
	EOF
}

# radius_start NAME VARIANT: a configuration in $T/NAME on a free UDP port,
# radiusd -X in the background (log $T/NAME.log); sets NAME_port
radius_start() {
	for _try in 1 2 3; do
		_p=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		radius_conf "$T/$1" "$_p" "$2" || return 1
		: > "$T/$1.log"
		freeradius -X -d "$T/$1" > "$T/$1.log" 2>&1 &
		_pid=$!
		_n=0
		while [ $_n -lt 150 ] && kill -0 $_pid 2>/dev/null; do
			if grep -q '^Ready to process requests' "$T/$1.log"; then
				rpids="$rpids $_pid"
				eval "${1}_port=$_p"
				return 0
			fi
			_n=$((_n + 1))
			sleep 0.1
		done
		kill $_pid 2>/dev/null; wait $_pid 2>/dev/null
	done
	tail -n 20 "$T/$1.log"
	return 1
}

# eap NAME DEVICE [SOURCE]: eapol_test as the access point (source address
# 127.0.0.1 = ap-lobby-3, 127.0.0.2 = ap-garage) with DEVICE's certificate
# and key against the server NAME; SUCCESS or FAILURE. What the server
# logged for it is in $T/cur.log.
eap() {
	cat > "$T/eap-$2.conf" <<-EOF
	network={
		key_mgmt=IEEE8021X
		eap=TLS
		identity="$2"
		ca_cert="$T/srvca.pem"
		client_cert="$T/$2.pem"
		private_key="$T/$2.key"
		eapol_flags=0
	}
	EOF
	eval "_p=\$${1}_port"
	_from=$(wc -l < "$T/$1.log")
	eapol_test -c "$T/eap-$2.conf" -a 127.0.0.1 -p "$_p" -s testing123 -t 8 -A "${3:-127.0.0.1}" \
	    > "$T/eapol.out" 2>&1
	_rc=$?
	sleep 0.1
	tail -n +"$((_from + 1))" "$T/$1.log" > "$T/cur.log"
	if [ $_rc = 0 ] && tail -n 1 "$T/eapol.out" | grep -q '^SUCCESS'; then echo SUCCESS; else echo FAILURE; fi
}
# logged PATTERN: the server's log for the last authentication matches
logged() { grep -qE -- "$1" "$T/cur.log"; }

cp "$T/a.csr.key" "$T/a.key"; cp "$T/b.csr.key" "$T/b.key"
check "FreeRADIUS with OCSP and provd starts (etc/freeradius)" radius_start full full || { t_done; exit 1; }
check "FreeRADIUS with OCSP only starts" radius_start ocsp ocsp-only || { t_done; exit 1; }
check "FreeRADIUS with provd only (no OCSP, more CAs trusted) starts" radius_start authz authz-only ||
    { t_done; exit 1; }

# --- allowed --------------------------------------------------------------
check_eq "device A on ap-lobby-3: SUCCESS" SUCCESS "$(eap full a)"
check "  OCSP said good" logged 'ocsp: Cert status: good'
check "  provd allowed it (200)" logged 'Status : 200'
check "  by rule $RULE" logged "allowed by rule $RULE"
check_eq "device B on ap-lobby-3: SUCCESS" SUCCESS "$(eap full b)"
check_eq "device A with OCSP only: SUCCESS" SUCCESS "$(eap ocsp a)"
check_eq "device A with provd only: SUCCESS" SUCCESS "$(eap authz a)"
check "  provd was asked, OCSP was not" sh -c "grep -q 'allowed by rule' '$T/cur.log' && ! grep -q 'ocsp:' '$T/cur.log'"
st=$(api GET "/v1/decisions?mac=$A&limit=1" "" "$T/operator.token")
check_eq "the decision is among provd's recent ones (resource, action, actor, by certificate)" \
    "200|ap-lobby-3|connect|test-authorizer|true" \
    "$st|$(jq -r '.decisions[0] | [.resource, .action, .actor, (has("certificate_sha256") | tostring)] | join("|")' "$T/resp")"

# --- another access point: the client's name is the resource --------------
check_eq "device A on ap-garage (no rule there): FAILURE" FAILURE "$(eap full a 127.0.0.2)"
check "  provd asked about ap-garage said no (403)" sh -c "grep -q 'resource=ap-garage' '$T/cur.log' && grep -q 'Status : 403' '$T/cur.log' && grep -q 'no rule allows this' '$T/cur.log'"

# --- revoked --------------------------------------------------------------
check "revoke device B" env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" revoke $B --reason keyCompromise
sleep 0.5
check_eq "revoked device B: FAILURE" FAILURE "$(eap full b)"
check "  OCSP said revoked" logged 'ocsp: Cert status: revoked'
check "  in the TLS handshake, before provd was asked" sh -c "! grep -q 'authorize/radius' '$T/cur.log'"
check_eq "revoked device B with OCSP only: FAILURE" FAILURE "$(eap ocsp b)"
check "  OCSP said revoked" logged 'ocsp: Cert status: revoked'
check_eq "revoked device B with provd only: FAILURE" FAILURE "$(eap authz b)"
check "  provd said certificate revoked (403)" sh -c "grep -q 'Status : 403' '$T/cur.log' && grep -q 'certificate revoked' '$T/cur.log'"
check_eq "device A is still allowed" SUCCESS "$(eap full a)"

# --- the rule removed -------------------------------------------------------
check_eq "delete the rule" 200 "$(api DELETE "/v1/rules/$RULE" "" "$SEC")"
sleep 0.5
check_eq "device A without its rule: FAILURE" FAILURE "$(eap full a)"
check "  OCSP said good, provd said no rule allows this (403)" sh -c "grep -q 'Cert status: good' '$T/cur.log' && grep -q 'Status : 403' '$T/cur.log' && grep -q 'no rule allows this' '$T/cur.log'"
check_eq "device A with OCSP only still passes (the rule is provd's part)" SUCCESS "$(eap ocsp a)"
check_eq "rule back" 201 \
    "$(post /v1/rules '{"subject":{"group":"engineering"},"resource":"ap-lobby-3","action":"connect","effect":"allow"}')"
sleep 0.5
check_eq "device A with the rule back: SUCCESS" SUCCESS "$(eap full a)"

# --- other CAs --------------------------------------------------------------
check_eq "a certificate from another CA: FAILURE" FAILURE "$(eap full foreign)"
check "  refused in the TLS handshake (not our CA)" logged 'unable to get local issuer certificate|certificate verify failed|unknown ca'
check "  provd was not asked" sh -c "! grep -q 'authorize/radius' '$T/cur.log'"
check_eq "the same, where FreeRADIUS also trusts that CA: FAILURE" FAILURE "$(eap authz foreign)"
check "  provd said certificate not issued by this CA (403)" sh -c "grep -q 'Status : 403' '$T/cur.log' && grep -q 'certificate not issued by this CA' '$T/cur.log'"
check_eq "a certificate from a CA with provd's CA's name: FAILURE" FAILURE "$(eap full twin-dev)"
check_eq "the same, where FreeRADIUS also trusts that CA: FAILURE" FAILURE "$(eap authz twin-dev)"
check "  provd said unknown certificate (403)" sh -c "grep -q 'Status : 403' '$T/cur.log' && grep -q 'unknown certificate' '$T/cur.log'"

# --- provd down: fail-closed -------------------------------------------------
stop_provd
# its log: provd_start below writes a new one
check_fails "the first provd ran clean under the sanitizers" \
    grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/provd.log"
check_eq "provd down: device A: FAILURE" FAILURE "$(eap full a)"
check "  OCSP could not reach the responder" logged "Couldn't connect to OCSP responder|ocsp: .*(fail|timed out)"
check_eq "provd down, OCSP off: device A: FAILURE" FAILURE "$(eap authz a)"
check "  rlm_rest failed, post-auth rejected" sh -c "grep -q '\[provd\] = fail' '$T/cur.log' && grep -q 'Post-Auth-Type Reject' '$T/cur.log'"
check "restart provd" provd_start "$T/provd.conf" "$T"
sleep 1.2	# rlm_rest's pool: retry_delay = 1
check_eq "provd back: device A: SUCCESS" SUCCESS "$(eap full a)"
check_eq "provd back, OCSP off: device A: SUCCESS" SUCCESS "$(eap authz a)"

# --- provd over HTTPS, the access point's certificate instead of a token -----
# a second provd on the same database and CA serves HTTPS with a client CA;
# OCSP stays with the first (FreeRADIUS's OCSP client speaks plain HTTP)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/https.key" 2>/dev/null
openssl req -new -key "$T/https.key" -subj "/CN=provd.test" -out "$T/https.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/https.ext"
openssl x509 -req -in "$T/https.csr" -CA "$CA/ca.crt" -CAkey "$CA/ca.key" -set_serial 1 \
    -days 1 -extfile "$T/https.ext" -out "$T/https.crt" 2>/dev/null
sed -e "s/^port = $PORT$/port = 0/" -e "s|^threads = 2$|threads = 2\ntls_cert = $T/https.crt\ntls_key = $T/https.key\ntls_client_ca = $CA/root.crt|" \
    "$T/provd.conf" > "$T/provd-tls.conf"
mkdir -p "$T/tls"
plain_pid=$provd_pid; plain_url=$URL
check "start a second provd serving HTTPS with a client CA" provd_start "$T/provd-tls.conf" "$T/tls"
tls_pid=$provd_pid; TLS_URL=$(echo "$URL" | sed 's|^http:|https:|')
provd_pid=$plain_pid; URL=$plain_url
new_csr "$T/ap.csr"; cp "$T/ap.csr.key" "$T/ap.key"
check "issue this RADIUS server an access-point certificate (admin token)" \
    provctl --token-file "$T/admin.token" issue --mac 02:00:00:00:0a:01 --csr "$T/ap.csr" --role access-point --out "$T/ap.pem"
check "FreeRADIUS asking provd over HTTPS with that certificate starts" radius_start tls tls ||
    { t_done; exit 1; }
check "  no token in its configuration" sh -c "! grep -rq 'Bearer' '$T/tls/policy.d/provd'"
check_eq "device A over HTTPS: SUCCESS" SUCCESS "$(eap tls a)"
check "  provd allowed it (200)" sh -c "grep -q 'Status : 200' '$T/cur.log' && grep -q 'https://127.0.0.1' '$T/cur.log'"
st=$(curl -s -o "$T/resp" -w '%{http_code}' --cacert "$CA/root.crt" -H "Authorization: Bearer $(cat "$T/operator.token")" \
    "$TLS_URL/v1/decisions?mac=$A&limit=1")
check_eq "  asked as the access point ap:02:00:00:00:0a:01" "200|ap:02:00:00:00:0a:01" "$st|$(jq -r '.decisions[0].actor' "$T/resp")"
check_eq "revoked device B over HTTPS: FAILURE" FAILURE "$(eap tls b)"
check "revoke the access point's certificate" env PROVD_TOKEN_FILE="$SEC" "$BIN/provctl" --url "$URL" \
    revoke 02:00:00:00:0a:01 --reason cessationOfOperation
sleep 2.2	# a certificate accepted on a kept-alive connection is checked again after 2 s
check_eq "device A through the revoked access point: FAILURE" FAILURE "$(eap tls a)"
check "  provd refused the access point (401)" logged 'Status : 401'
kill "$tls_pid" 2>/dev/null; wait "$tls_pid" 2>/dev/null; tls_pid=""
check_fails "the HTTPS provd ran clean under the sanitizers" \
    grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/tls/provd.log"

# --- the endpoint's refusals ------------------------------------------------
# rlm_rest's JSON for device A, as FreeRADIUS sent it (one attribute changed
# per case with jq)
SA=$(openssl x509 -in "$T/a.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
jq -n --arg s "$SA" --arg i "$ISSUER" --arg m "/serialNumber=$A" '{
	"User-Name": {"type": "string", "value": ["a"]},
	"NAS-IP-Address": {"type": "ipaddr", "value": ["127.0.0.1"]},
	"Service-Type": {"type": "integer", "value": ["Framed-User"]},
	"Framed-MTU": {"type": "integer", "value": [1400]},
	"EAP-Message": {"type": "octets", "value": ["0x020800060d00"]},
	"TLS-Client-Cert-Serial": {"type": "string", "value": [$s]},
	"TLS-Client-Cert-Issuer": {"type": "string", "value": [$i]},
	"TLS-Client-Cert-Subject": {"type": "string", "value": [$m]},
	"TLS-Client-Cert-X509v3-Extended-Key-Usage-OID": {"type": "string", "value": ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"]}
}' > "$T/rad.json"
R=/v1/authorize/radius?resource=ap-lobby-3
SAU=$(echo "$SA" | tr a-f A-F)
rad() {	# JQ-FILTER [QUERY] [TOKEN]: status of the question, body in $T/resp
	jq --arg s "$SA" --arg su "$SAU" "$1" "$T/rad.json" > "$T/rad1.json"
	api POST "${2:-$R}" "$T/rad1.json" "${3:-$AUTH}"
}
check_eq "as FreeRADIUS asks: 200" 200 "$(rad .)"
check_eq "  allow, the same answer as POST /v1/authorize" "allow|00:1a:7d:da:76:01" "$(jq -r '.decision + "|" + .device.mac' "$T/resp")"
check_eq "the serial in upper case: 200" 200 "$(rad '."TLS-Client-Cert-Serial".value = [$su]')"
check_eq "action given: 200 (connect) / 403 (print: no rule)" "200|403" \
    "$(rad . "$R&action=connect")|$(rad . "$R&action=print")"
check_eq "no resource in the URL: NAS-Identifier names it (200)" 200 \
    "$(rad '. + {"NAS-Identifier": {"type": "string", "value": ["ap-lobby-3"]}}' /v1/authorize/radius)"
check_eq "... ap-garage: 403" 403 \
    "$(rad '. + {"NAS-Identifier": {"type": "string", "value": ["ap-garage"]}}' /v1/authorize/radius)"
check_eq "no resource at all: 400" 400 "$(rad . /v1/authorize/radius)"
check_out "  saying how to name it" 'resource=NAME' cat "$T/resp"
check_eq "unknown resource: 403" 403 "$(rad . /v1/authorize/radius?resource=nowhere)"
check_eq "  unknown resource" "deny|unknown resource" "$(jq -r '.decision + "|" + .reason' "$T/resp")"
check_eq "an unknown query argument: 400" 400 "$(rad . "$R&vlan=7")"
check_eq "a resource that is not a name: 400" 400 "$(rad . "/v1/authorize/radius?resource=a%01b")"
check_eq "an action of 65 bytes: 400" 400 "$(rad . "$R&action=$(printf '%065d' 0)")"
check_eq "an unknown serial: 403 unknown certificate" "403|unknown certificate|0" \
    "$(rad '."TLS-Client-Cert-Serial".value = ["0123456789abcdef0123456789abcdef"]')|$(jq -r '.reason + "|" + (.policy_version | tostring)' "$T/resp")"
check_eq "another issuer: 403 certificate not issued by this CA" "403|certificate not issued by this CA" \
    "$(rad '."TLS-Client-Cert-Issuer".value = ["/CN=Other CA"]')|$(jq -r .reason "$T/resp")"
check_eq "another subject: 403 certificate not issued by this CA" "403|certificate not issued by this CA" \
    "$(rad '."TLS-Client-Cert-Subject".value = ["/serialNumber=00:1a:7d:da:76:02"]')|$(jq -r .reason "$T/resp")"
SB=$(openssl x509 -in "$T/b.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check_eq "the revoked certificate: 403 certificate revoked" "403|certificate revoked" \
    "$(rad ".\"TLS-Client-Cert-Serial\".value = [\"$SB\"] | .\"TLS-Client-Cert-Subject\".value = [\"/serialNumber=$B\"]")|$(jq -r .reason "$T/resp")"
check_eq "without TLS-Client-Cert-Serial: 400" 400 "$(rad 'del(."TLS-Client-Cert-Serial")')"
check_out "  saying where to ask from" 'post-auth' cat "$T/resp"
check_eq "without TLS-Client-Cert-Issuer: 400" 400 "$(rad 'del(."TLS-Client-Cert-Issuer")')"
check_eq "without TLS-Client-Cert-Subject: 400" 400 "$(rad 'del(."TLS-Client-Cert-Subject")')"
check_eq "a serial of 34 digits: 400" 400 "$(rad '."TLS-Client-Cert-Serial".value = ["0123456789abcdef0123456789abcdef01"]')"
check_eq "a serial of odd length: 400" 400 "$(rad '."TLS-Client-Cert-Serial".value = ["abc"]')"
check_eq "a serial that is not hex: 400" 400 "$(rad '."TLS-Client-Cert-Serial".value = ["0123456789abcdef0123456789abcdeg"]')"
check_eq "two serials: 400" 400 "$(rad '."TLS-Client-Cert-Serial".value += ["01"]')"
check_eq "a serial that is a number: 400" 400 "$(rad '."TLS-Client-Cert-Serial".value = [12]')"
check_eq "a serial attribute of type octets: 400" 400 "$(rad '."TLS-Client-Cert-Serial".type = "octets"')"
check_eq "an issuer of 1024 bytes: 400" 400 "$(rad "$(printf '."TLS-Client-Cert-Issuer".value = ["/CN=%01020d"]' 0)")"
check_eq "an attribute that is not an object: 400" 400 "$(rad '."User-Name" = "a"')"
check_eq "an attribute with an unknown member: 400" 400 "$(rad '."User-Name".op = ":="')"
check_out "  naming the attribute" 'User-Name' cat "$T/resp"
check_eq "an attribute without a type: 400" 400 "$(rad 'del(."User-Name".type)')"
check_eq "an attribute without values: 400" 400 "$(rad '."User-Name".value = []')"
check_eq "a value that is an object: 400" 400 "$(rad '."User-Name".value = [{}]')"
check_eq "a value that is null: 400" 400 "$(rad '."User-Name".value = [null]')"
check_eq "65 values: 400" 400 "$(rad '."User-Name".value = [range(65) | tostring]')"
check_eq "a value of 4097 bytes: 400" 400 "$(rad "$(printf '."User-Name".value = ["%04097d"]' 0)")"
check_eq "a type that is not a type name: 400" 400 "$(rad '."User-Name".type = "String Type"')"
check_eq "attr_num (rlm_rest attr_num = yes) is accepted: 200" 200 "$(rad '."User-Name".attr_num = 1')"
check_eq "attr_num that is not a number: 400" 400 "$(rad '."User-Name".attr_num = "1"')"
check_eq "an attribute name with a space: 400" 400 "$(rad '. + {"User Name": {"type": "string", "value": ["a"]}}')"
check_eq "513 attributes: 400" 400 \
    "$(rad '. + ([range(504)] | map({key: ("Attr-\(.)"), value: {type: "string", value: ["x"]}}) | from_entries)')"
check_eq "512 attributes: 200" 200 \
    "$(rad '. + ([range(503)] | map({key: ("Attr-\(.)"), value: {type: "string", value: ["x"]}}) | from_entries)')"
check_eq "an empty object: 400" 400 "$(rad '{}')"
check_eq "an array: 400" 400 "$(rad '[.]')"
printf '{"User-Name":' > "$T/trunc.json"
check_eq "broken JSON: 400" 400 "$(api POST "$R" "$T/trunc.json" "$AUTH")"
check_eq "Content-Type text/plain: 415" 415 \
    "$(curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $(cat "$AUTH")" -H 'Content-Type: text/plain' \
        --data-binary @"$T/rad.json" "$URL$R")"
head -c 70000 /dev/zero | tr '\0' ' ' > "$T/big.json"
check_eq "a body over server.max_body: 413" 413 "$(api POST "$R" "$T/big.json" "$AUTH")"
check_eq "no token: 401" 401 "$(curl -s -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$T/rad.json" "$URL$R")"
check_eq "an operator token: 403" 403 "$(rad . "$R" "$T/operator.token")"
check_eq "a security token: 403" 403 "$(rad . "$R" "$SEC")"
check_eq "an admin token: 200" 200 "$(rad . "$R" "$T/admin.token")"
check_eq "GET: 405" 405 "$(api GET "$R" "" "$AUTH")"

# the answers above never wrote anything (decisions are not audited)
check_eq "provd is up after all that" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/health")"

t_done
