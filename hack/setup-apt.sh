#!/usr/bin/env bash
# Installs the Debian packages the project needs (idempotent). Services that
# packages would start on install (rabbitmq-server, samba, docker, containerd)
# are held back with a policy-rc.d, so nothing of ours keeps running.
set -euo pipefail

packages=(
  # directory: Samba AD DC, its Python bindings and client tools
  samba-ad-dc samba-ad-provision python3-samba krb5-user ldb-tools smbclient winbind attr
  # backups: encryption (age), as in the samba image
  age
  # broker
  rabbitmq-server
  # the portal's database when not SQLite (tests and benchmarks start their own server)
  postgresql
  # containers and the real node
  docker.io containerd runc containernetworking-plugins debootstrap iptables conntrack socat ipset
  # a DC Pod's resolver (dnsmasq), as in the samba image
  dnsmasq-base
  # tests: headless browser, TLS tools, venv
  chromium chromium-driver openssl python3-venv python3-dev ca-certificates curl
  # the portal's translations: msgfmt compiles them, makemessages extracts them
  gettext
  # the test workstations (es4ps_testkit.workstation): winbind's and sssd's NSS and PAM modules, adcli, a PAM
  # login from a script
  libnss-winbind libpam-winbind sssd-ad sssd-tools libnss-sss libpam-sss adcli pamtester
  # releases: images copied from the engine to a registry (skopeo); the local registry's logins (bcrypt)
  skopeo python3-bcrypt
  # the file server's print share (as in the samba image): CUPS with a PDF printer
  cups printer-driver-cups-pdf
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then echo "setup-apt: need root to install: ${missing[*]}" >&2; exit 1; fi
echo "installing Debian packages: ${missing[*]}" >&2

policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1
fi
trap '[ -z "$own_policy" ] || rm -f "$policy"' EXIT

saved_nsswitch=
if [[ " ${missing[*]} " =~ \ (libnss-winbind|libpam-winbind|libnss-sss|libpam-sss|sssd-ad)\  ]]; then
  saved_nsswitch=$(mktemp) && cp /etc/nsswitch.conf "$saved_nsswitch"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The workstation packages add winbind and sss to this machine's nsswitch.conf and PAM stack (and pwquality to
# PAM) on their first install; the test workstations have their own (their mount namespace), so this machine
# keeps what it had: nsswitch.conf as before the install, those PAM profiles disabled as an administrator would.
if [ -n "$saved_nsswitch" ]; then
  cp "$saved_nsswitch" /etc/nsswitch.conf && rm -f "$saved_nsswitch"
  profiles=()
  for profile in winbind sss pwquality; do [ -e "/usr/share/pam-configs/$profile" ] && profiles+=("$profile"); done
  [ ${#profiles[@]} -eq 0 ] || pam-auth-update --disable "${profiles[@]}"
fi
