#!/bin/sh
# provd -n: a good file says "configuration OK"; every kind of bad file is
# refused with the file, line and key named and a non-zero exit; secrets
# never appear in the output.
. "$(dirname "$0")/lib.sh"

write_conf
check_out "good file: configuration OK" '^configuration OK$' provd -n
check_out "sample etc/provd.conf is valid" '^configuration OK$' "$BIN/provd" -n -c "$top/etc/provd.conf"

bad_conf() {	# NAME PATTERN TEXT
	printf '%b' "$3" > "$T/bad.conf"
	if "$BIN/provd" -n -c "$T/bad.conf" > "$T/bad.out" 2>&1; then
		not_ok "$1: accepted"
	elif grep -qE -- "$2" "$T/bad.out"; then
		ok "$1"
	else
		not_ok "$1: message was: $(cat "$T/bad.out")"
	fi
}
bad_conf "unknown key" "bad.conf:2: unknown key \"colour\" in \\[server\\]" '[server]\ncolour = blue\n'
bad_conf "unknown section" "bad.conf:2: unknown section \\[nope\\]" '[nope]\nx = 1\n'
bad_conf "value out of bounds" "bad.conf:3: server.port: .* 0..65535" '[server]\nlisten = 127.0.0.1\nport = 99999\n'
bad_conf "not a number" "bad.conf:2: ca.validity_days" '[ca]\nvalidity_days = soon\n'
bad_conf "key set twice" "bad.conf:3: database.pool: set twice" '[database]\npool = 2\npool = 3\n'
bad_conf "bad boolean" "bad.conf:2: ca.allow_rsa" '[ca]\nallow_rsa = perhaps\n'
bad_conf "password in conninfo" "database.conninfo must not hold a password" '[database]\nconninfo = host=x password=hunter2\n'
bad_conf "TLS key without certificate" "tls_cert and server.tls_key go together" '[server]\ntls_key = /etc/hostname\n'
bad_conf "syntax error" "bad.conf:1: syntax error" 'just some words\n'
printf 'hunter2\n' > "$T/secret"; chmod 000 "$T/secret"
bad_conf "unreadable secret file" "database.password_file: .*: cannot read secret file" "[database]\npassword_file = $T/missing-secret\n"
check_fails_out "missing configuration file is named" "does-not-exist.conf: No such file" "$BIN/provd" -n -c "$T/does-not-exist.conf"
: > "$T/empty.secret"
bad_conf "empty secret file" "empty secret file" "[ldap]\nuri = ldap://127.0.0.1/\nbind_dn = cn=x\npassword_file = $T/empty.secret\n"
printf '[database]\nconninfo = host=127.0.0.1 port=1 dbname=x\n' > "$T/nodb.conf"
check_fails_out "migrate against an unreachable database fails and says why" "cannot connect to the database" "$BIN/provd" -c "$T/nodb.conf" migrate
check_fails "unknown command" provd frobnicate
check_fails_out "run before ca init says what to do" 'run "provd ca init" first' provd run
provd ca init >/dev/null
check_fails_out "run before migrate says what to do" 'run "provd migrate" first' provd run

# two-tier CA: the root key is written only where asked, for offline keeping
mkdir -p "$T/ca2"
sed "s|^dir = .*|dir = $T/ca2|" "$T/provd.conf" > "$T/ca2.conf"
check "ca init --two-tier --root-key-out" "$BIN/provd" -c "$T/ca2.conf" ca init --two-tier --root-key-out "$T/root-offline.key"
check_eq "root key file is private" 600 "$(stat -c %a "$T/root-offline.key")"
check_eq "root key matches root.crt" "$(openssl x509 -in "$T/ca2/root.crt" -noout -pubkey)" "$(openssl pkey -in "$T/root-offline.key" -pubout)"
check_eq "issuing key is not the root key" "" "$(cmp -s "$T/ca2/ca.key" "$T/root-offline.key" && echo same)"
check_eq "no root key in the CA directory" "ca.crt ca.key chain.pem ocsp.crt ocsp.key root.crt" "$(ls "$T/ca2" | tr '\n' ' ' | sed 's/ $//')"
check_fails "ca init refuses to overwrite" "$BIN/provd" -c "$T/ca2.conf" ca init
check_fails_out "--root-key-out needs --two-tier" "goes with --two-tier" "$BIN/provd" -c "$T/ca2.conf" ca init --force --root-key-out "$T/x.key"
t_done
