"""The smb.conf options the entrypoint owns: set again on every start, so they converge."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .config import DCConfig, parse_options

# LDAPS and StartTLS (GnuTLS priority string): TLS 1.2 and 1.3 only, ECDHE key exchange, AEAD ciphers (no
# CBC, RC4, 3DES or NULL suite), no compression, only clients that renegotiate safely (RFC 5746).
TLS_PRIORITY = (
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
    ":-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305"
    ":-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-COMP-ALL:+COMP-NULL:%SAFE_RENEGOTIATION"
)


# The topology check and the scheduled pull every minute, not every 5 (Samba's default): a DC that joined,
# came back or was restored is pulled from within a minute; changes still travel by notification in seconds.
# Cheap for a handful of DCs. ES4PS_SAMBA_OPTIONS may set them back.
REPLICATION_CHECKS = {"kccsrv:periodic_interval": "60", "dreplsrv:periodic_interval": "60"}


def managed_options(config: DCConfig) -> dict[str, str]:
    """The smb.conf [global] options this entrypoint owns: set again on every start (they converge)."""
    run_dir = config.run_dir
    options = {
        "interfaces": config.bind_interfaces,
        "bind interfaces only": "yes",
        # NT ACLs in user.* xattrs: no SYS_ADMIN capability needed (FACTS.md).
        "acl_xattr:security_acl_name": "user.NTACL",
        "pid directory": str(run_dir),
        "ncalrpc dir": str(run_dir / "ncalrpc"),
        "ntp signd socket directory": str(run_dir / "ntp_signd"),
        "log file": str(config.data_dir / "log" / "log.%m"),
        # A password changed in the portal replaces the old one at once (Samba's default keeps the old
        # one valid for NTLM and LDAP binds for an hour). ES4PS_SAMBA_OPTIONS may set it back.
        "old password allowed period": "0",
        # The DC registers its own DNS records (its name, its GUID under _msdcs: how the other DCs find it
        # to replicate) over RPC: the image has no nsupdate, and RPC needs no Kerberos ticket either. At the
        # address it advertises: what samba_dnsupdate reads from `interfaces` in a Pod, named so that it also
        # registers on a loopback address (it skips those otherwise; the test DCs live on 127.0.0.X).
        "dns update command": " ".join(
            [
                "/usr/sbin/samba_dnsupdate",
                "--use-samba-tool",
                *([f"--current-ip={config.host_ip}"] if config.host_ip else []),
            ]
        ),
        **REPLICATION_CHECKS,
    }
    # Where names outside the zone go for whoever asks: ES4PS_DNS_FORWARDER only. Empty means none, not what
    # provisioning copied from the resolv.conf it ran with (the Pod's resolver, which also knows the cluster).
    options["dns forwarder"] = config.dns_forwarder
    if config.tls_cert_file:
        cert, key, ca = config.installed_tls_files
        options.update(
            {
                "tls enabled": "yes",
                "tls certfile": str(cert),
                "tls keyfile": str(key),
                "tls cafile": str(ca),
                "tls priority": TLS_PRIORITY,
            }
        )
    options.update(parse_options(config.extra_options))
    return options


def set_global_options(smb_conf: Path, options: Mapping[str, str]) -> None:
    """Set `options` in the [global] section of smb.conf, replacing earlier values of the same names."""
    wanted = {name.lower(): value for name, value in options.items()}
    kept: list[str] = []
    section = ""
    global_end = None
    for line in smb_conf.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.lower()
        elif section == "[global]" and "=" in stripped and stripped.partition("=")[0].strip().lower() in wanted:
            continue  # written again below with the wanted value
        kept.append(line)
        if section == "[global]":
            global_end = len(kept)
    if global_end is None:
        kept.insert(0, "[global]")
        global_end = 1
    kept[global_end:global_end] = [f"\t{name} = {value}" for name, value in wanted.items()]
    temporary = smb_conf.with_suffix(".tmp")
    temporary.write_text("\n".join(kept) + "\n")
    temporary.replace(smb_conf)
