"""The domain on this DC's volume: provisioned (dc0) or joined (the others) once, then converged on every start.

A marker file written only after a successful provision or join tells a
finished domain from a half-written one, which is cleared and redone.
Secrets (the Administrator password) are handed to samba-tool inside this
process, never on a command line that `ps` could show.
"""

from __future__ import annotations

import shutil

from .access import ensure_worker_access
from .config import DCConfig
from .smbconf import managed_options, set_global_options
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
        *_provision_options(config),
    ]
    if config.host_ip:
        args.append(f"--host-ip={config.host_ip}")
    samba_tool(*args)


def join(config: DCConfig) -> None:
    """Join the existing domain served by ES4PS_JOIN_SERVER as an additional DC (replicates its data)."""
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
    ensure_worker_access(config)
    return installed
