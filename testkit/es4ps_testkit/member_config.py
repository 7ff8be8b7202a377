"""What an administrator writes on a Linux domain member, as text: smb.conf for winbind, sssd.conf, nsswitch.conf.

docs/directory.md ("Domain computers") quotes these; es4ps_testkit.workstation
writes them on the test workstation. Both clients read the numbers the
domain's Unix policy wrote (uidNumber, gidNumber, loginShell,
unixHomeDirectory), so every member shows the same identity.
"""

from __future__ import annotations

# The range the product gives accounts by default (spec.directory.unix.uidRange).
DEFAULT_ID_RANGE = (10000, 999999)
# Where the keytab of an sssd member lives (adcli writes it, sssd reads it).
SSSD_KEYTAB = "/etc/sssd/krb5.keytab"


def member_smb_conf(realm: str, workgroup: str, hostname: str, id_range: tuple[int, int] = DEFAULT_ID_RANGE) -> str:
    """smb.conf of a Linux domain member that logs people in with winbind.

    `idmap config <WORKGROUP> : backend = ad` reads uidNumber, gidNumber, loginShell and
    unixHomeDirectory from the directory (`unix_nss_info`, `unix_primary_group`). `id_range`
    must hold every policy's uid range and the policy groups' gids. No offline logon: a disabled
    account or a changed password counts at the next login.
    """
    low, high = id_range
    workgroup = workgroup.upper()
    return f"""[global]
  workgroup = {workgroup}
  realm = {realm.upper()}
  netbios name = {hostname.upper()}
  security = ads
  disable netbios = yes
  kerberos method = secrets and keytab
  winbind use default domain = yes
  winbind offline logon = no
  template homedir = /home/%U
  template shell = /bin/bash
  idmap config * : backend = tdb
  idmap config * : range = 3000-7999
  idmap config {workgroup} : backend = ad
  idmap config {workgroup} : schema_mode = rfc2307
  idmap config {workgroup} : range = {low}-{high}
  idmap config {workgroup} : unix_nss_info = yes
  idmap config {workgroup} : unix_primary_group = yes
  log file = /var/log/samba/log.%m
"""


def sssd_conf(realm: str, hostname: str, dc_fqdn: str) -> str:
    """sssd.conf (mode 600) of a Linux domain member that logs people in with sssd's AD provider.

    `ldap_id_mapping = False`: the directory's uidNumber/gidNumber, not numbers sssd would compute
    from SIDs. No cached credentials, for the same reason as winbind's offline logon.
    """
    domain = realm.lower()
    return f"""[sssd]
services = nss, pam
domains = {domain}

[domain/{domain}]
id_provider = ad
access_provider = ad
ad_domain = {domain}
krb5_realm = {realm.upper()}
ad_server = {dc_fqdn}
ad_hostname = {hostname}.{domain}
krb5_keytab = {SSSD_KEYTAB}
ldap_id_mapping = False
use_fully_qualified_names = False
fallback_homedir = /home/%u
cache_credentials = False
ad_gpo_access_control = disabled
"""


def nsswitch_conf(client: str) -> str:
    """/etc/nsswitch.conf: people and groups from the files, then from the client (`winbind` or `sss`)."""
    return f"passwd: files {client}\ngroup: files {client}\nshadow: files\nhosts: files dns\n"
