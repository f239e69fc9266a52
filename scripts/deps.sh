#!/bin/sh
# Installs every Debian package that the build, the tests, the demo and the
# benchmarks need. Idempotent; keeps package scripts from starting daemons.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
 libssl-dev openssl libpq-dev postgresql-15 postgresql-client-15
 libmicrohttpd-dev libgnutls28-dev gnutls-bin libjansson-dev libinih-dev libcurl4-openssl-dev libcmocka-dev
 libldap-dev slapd ldap-utils
 swtpm swtpm-tools tpm2-openssl tpm2-tools
 iproute2 procps curl ca-certificates jq nginx-light wrk
 libsystemd-dev libbluetooth-dev python3-dbusmock dbus
 freeradius freeradius-rest eapoltest
 chromium nodejs"
# npm, for the browser tests' node modules: Debian's, unless the installed
# nodejs package brings its own (NodeSource's provides npm and conflicts
# with Debian's)
dpkg-query -W -f '${Provides}\n' nodejs 2>/dev/null | grep -qw npm || PKGS="$PKGS npm"

missing=""
for p in $PKGS; do
	dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all packages present"; exit 0; }
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi

# Package post-install scripts must not start system daemons (slapd on 389,
# postgresql, nginx): everything here runs private instances on 127.0.0.1.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
