"""The domain on this DC's volume: provisioned (dc0) or joined (the others) once, then converged on every start.

A marker file written only after a successful provision or join tells a
finished domain from a half-written one, which is cleared and redone.
Secrets (the Administrator password) are handed to samba-tool inside this
process, never on a command line that `ps` could show.
"""

from __future__ import annotations

import logging
import shutil

from es4ps_contract.environment import SettingError

from ..samdb import open_remote_samdb, open_samdb_at
from .access import ensure_worker_access
from .config import DCConfig
from .password_policy import ATTRIBUTES, samba_tool_options
from .peers import writes_domain_settings
from .smbconf import managed_options, set_global_options
from .store import converge_map_size, volume_size
from .tls import install_tls_files

# What samba-tool writes under its target directory; cleared when a provision or join was cut short.
_PROVISION_OUTPUT = ("etc", "private", "state", "cache", "bind-dns")


def samba_tool(*args: str) -> None:
    """Run a samba-tool command inside this process (its arguments may carry the admin password)."""
    from samba.netcmd.main import cmd_sambatool

    try:
        status = cmd_sambatool()._run("samba-tool", *args)
    except SystemExit as exc:
        status = exc.code
    if status not in (0, None):
        raise SystemExit(f"es4ps-samba-dc: samba-tool {args[0]} {args[1]} failed (exit {status})")


def admin_arguments(netbios_name: str, password: str) -> list[str]:
    """samba-tool's options to act as the domain's Administrator (samba_tool runs in-process: not on argv)."""
    return [f"--username={netbios_name}\\Administrator", f"--password={password}"]


def _store_options(config: DCConfig) -> list[str]:
    """New domains and joins use LMDB, its map size from the volume (store.py says why)."""
    return ["--backend-store=mdb", f"--backend-store-size={config.map_size}B"]


def _provision_options(config: DCConfig) -> list[str]:
    """smb.conf options given to samba-tool, so the DC binds and writes only where we want from its first run."""
    wanted = managed_options(config)
    # The TLS files are installed after provisioning; samba-tool itself does not need them.
    for name in ("tls enabled", "tls certfile", "tls keyfile", "tls cafile"):
        wanted.pop(name, None)
    return [f"--option={name}={value}" for name, value in wanted.items()]


def provision(config: DCConfig) -> None:
    """Create a new domain under the data directory."""
    args = [
        "domain",
        "provision",
        f"--targetdir={config.data_dir}",
        f"--realm={config.realm}",
        f"--domain={config.netbios_name}",
        f"--host-name={config.hostname}",
        "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL",
        "--use-rfc2307",
        f"--adminpass={config.admin_password()}",
        *_store_options(config),
        *_provision_options(config),
    ]
    if config.host_ip:
        args.append(f"--host-ip={config.host_ip}")
    samba_tool(*args)


def admin_samdb(config: DCConfig, server: str):
    """The Administrator's connection to another DC of the domain (no local files needed).

    `config` needs only realm, netbios_name and admin_password() (lifecycle's LeaveConfig has them too).
    """
    return open_remote_samdb(
        f"ldap://{server}", config.realm, config.netbios_name, "Administrator", config.admin_password()
    )


def remove_dc(config: DCConfig, server: str, dc_name: str) -> bool:
    """Remove DC `dc_name` from the domain, through `server`; False when the domain does not name it (done before).

    What `samba-tool domain demote --remove-other-dead-server` does: its NTDS
    settings, connections, server and computer objects, DNS records and
    sysvol references go, and FSMO roles it still held are seized.
    """
    import ldb
    from samba import remove_dc as samba_remove_dc

    samdb = admin_samdb(config, server)
    found = samdb.search(
        base=samdb.get_config_basedn(),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(&(objectClass=server)(cn={ldb.binary_encode(dc_name)}))",
        attrs=[],
    )
    if not found:
        return False
    samba_remove_dc.remove_dc(samdb, logging.getLogger("es4ps.dc"), dc_name)
    return True


def join(config: DCConfig) -> None:
    """Join the existing domain served by ES4PS_JOIN_SERVER as an additional DC (replicates its data).

    A DC of this name that the domain still knows is a former self whose volume
    is gone (its StatefulSet runs one Pod at a time, and this volume holds no
    domain): it is removed from the domain first, so the name can join again.
    """
    if remove_dc(config, config.join_server, config.hostname):
        print(f"es4ps-samba-dc: removed the domain's stale DC {config.hostname} before joining again", flush=True)
    samba_tool(
        "domain",
        "join",
        config.realm,
        "DC",
        f"--targetdir={config.data_dir}",
        f"--server={config.join_server}",
        f"--realm={config.realm}",
        f"--workgroup={config.netbios_name}",
        f"--option=netbios name={config.hostname.upper()}",
        "--dns-backend=SAMBA_INTERNAL",
        "--username=Administrator",
        f"--password={config.admin_password()}",
        *_store_options(config),
        *_provision_options(config),
    )


def prepare(config: DCConfig) -> str:
    """Provision or join once, then converge smb.conf and the TLS files (safe to run on every start).

    Returns the digest of the certificate files installed ("" without TLS).
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if not config.marker.exists():
        # A provision or join that was cut short leaves a partial sam.ldb behind: start over.
        for name in _PROVISION_OUTPUT:
            shutil.rmtree(config.data_dir / name, ignore_errors=True)
        (config.data_dir / "log").mkdir(exist_ok=True)
        shutil.rmtree(config.run_dir, ignore_errors=True)
        config.run_dir.mkdir()
        if config.role == "join":
            join(config)
        else:
            provision(config)
        config.marker.write_text(f"{config.role} {config.realm} {config.hostname}\n")
    shutil.rmtree(config.run_dir, ignore_errors=True)
    config.run_dir.mkdir()
    (config.data_dir / "log").mkdir(exist_ok=True)
    installed = install_tls_files(config)
    set_global_options(config.smb_conf, managed_options(config))
    check_after_upgrade(config)
    if volume_size(config.data_dir, config.data_volume_bytes) is not None:
        for path in converge_map_size(config.sam_ldb, config.map_size):
            print(f"es4ps-samba-dc: raised the map size of {path.name} to {config.map_size} bytes", flush=True)
    ensure_worker_access(config)
    converge_password_policy(config)
    return installed


def converge_password_policy(config: DCConfig) -> list[str]:
    """Bring the domain's password policy to ES4PS_PASSWORD_POLICY, writing only what differs; returns the
    samba-tool options it set (none: already in force, or no policy given to this DC).

    Also after a restore or a re-join: the policy is read from the database this DC serves now.
    """
    if config.password_policy is None:
        return []
    import ldb

    samdb = open_samdb_at(config.data_dir)
    if not writes_domain_settings(config, samdb):
        return []
    found = samdb.search(base=samdb.domain_dn(), scope=ldb.SCOPE_BASE, attrs=list(ATTRIBUTES))[0]
    current = {attribute: str(found[attribute][0]) for attribute in ATTRIBUTES if attribute in found}
    del samdb, found  # samba-tool opens the database itself
    options = samba_tool_options(config.password_policy, current)
    if options:
        samba_tool(
            "domain", "passwordsettings", "set", f"--configfile={config.smb_conf}", f"-H{config.sam_ldb}", *options
        )
        print(f"es4ps-samba-dc: password policy applied: {' '.join(options)}", flush=True)
    return options


def check_after_upgrade(config: DCConfig) -> None:
    """On the first start of another Samba version on this volume, check the database before serving it.

    `samba-tool dbcheck` (read-only) must find nothing; otherwise this start
    fails and the DC stays down (so an image roll-out stops at it) until an
    administrator has looked (`samba-tool dbcheck --fix` in the Pod).
    """
    import samba

    version = samba.version
    marker = config.samba_version_marker
    previous = marker.read_text().strip() if marker.exists() else None
    if previous not in (None, version):
        print(f"es4ps-samba-dc: Samba {previous} -> {version}: checking the database first", flush=True)
        try:
            samba_tool("dbcheck", "--cross-ncs", f"--configfile={config.smb_conf}", f"-H{config.sam_ldb}")
        except SystemExit:
            raise SettingError(
                f"samba-tool dbcheck found errors after the upgrade from Samba {previous} to {version}; "
                "not serving this database until it is repaired (samba-tool dbcheck --fix)"
            ) from None
    marker.write_text(version + "\n")
