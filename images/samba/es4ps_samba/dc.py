"""The Samba AD DC entrypoint: `es4ps-samba-dc run | ready | live`.

`run` provisions the domain (or joins an existing one) the first time, brings
the settings it owns in smb.conf up to date on every start, and then runs
`samba` in the foreground, restarting it when the mounted LDAPS certificate is
renewed (Samba reads it only at start). Everything the DC writes lives under
`ES4PS_DATA_DIR` (the StatefulSet's volume), so a restarted pod finds its
domain again; a marker file written only after a successful provision or join
tells a finished domain from a half-written one, which is cleared and redone.

The configuration comes from the environment (see docs/interfaces.md).
Secrets (the Administrator password) are read from files and handed to
samba-tool inside this process, never on a command line that `ps` could show.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Written after a successful provision or join; its absence means "start over".
MARKER_NAME = ".es4ps-domain-ready"
# What samba-tool writes under its target directory; cleared when a provision or join was cut short.
_PROVISION_OUTPUT = ("etc", "private", "state", "cache", "bind-dns")
LDAP_PORT = 389


class ConfigError(ValueError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class DCConfig:
    """The DC's settings, read from the environment by `from_env`."""

    realm: str
    netbios_name: str
    hostname: str
    data_dir: Path
    admin_password_file: Path
    host_ip: str = ""
    interfaces: str = ""
    dns_forwarder: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    role: str = "provision"
    join_server: str = ""
    # Extra smb.conf [global] options ("name = value" per line), applied on every start.
    extra_options: str = ""
    # How often `run` looks for a renewed certificate in the mounted files.
    tls_check_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DCConfig:
        """Read and check the ES4PS_* variables of the DC."""

        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is not set")
            return value

        realm = required("ES4PS_REALM").upper()
        config = cls(
            realm=realm,
            netbios_name=environ.get("ES4PS_NETBIOS_NAME", "").strip().upper() or realm.split(".")[0],
            hostname=required("ES4PS_DC_HOSTNAME").lower(),
            data_dir=Path(environ.get("ES4PS_DATA_DIR", "").strip() or "/var/lib/samba"),
            admin_password_file=Path(required("ES4PS_ADMIN_PASSWORD_FILE")),
            host_ip=environ.get("ES4PS_HOST_IP", "").strip(),
            interfaces=environ.get("ES4PS_INTERFACES", "").strip(),
            dns_forwarder=environ.get("ES4PS_DNS_FORWARDER", "").strip(),
            tls_cert_file=environ.get("ES4PS_TLS_CERT_FILE", "").strip(),
            tls_key_file=environ.get("ES4PS_TLS_KEY_FILE", "").strip(),
            tls_ca_file=environ.get("ES4PS_TLS_CA_FILE", "").strip(),
            role=environ.get("ES4PS_DC_ROLE", "").strip() or "provision",
            join_server=environ.get("ES4PS_JOIN_SERVER", "").strip(),
            extra_options=environ.get("ES4PS_SAMBA_OPTIONS", ""),
            tls_check_seconds=_positive_seconds(environ, "ES4PS_TLS_CHECK_SECONDS", 60.0),
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse settings samba-tool would choke on later, with a message naming the variable."""
        if len(self.netbios_name) > 15:
            raise ConfigError("ES4PS_NETBIOS_NAME must be at most 15 characters")
        if len(self.hostname) > 15:
            raise ConfigError("ES4PS_DC_HOSTNAME must be at most 15 characters (it is the DC's NetBIOS name)")
        if self.role not in ("provision", "join"):
            raise ConfigError("ES4PS_DC_ROLE must be 'provision' or 'join'")
        if self.role == "join" and not self.join_server:
            raise ConfigError("ES4PS_JOIN_SERVER is required when ES4PS_DC_ROLE is 'join'")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise ConfigError("ES4PS_HOST_IP must be an IP address") from None
        tls = [self.tls_cert_file, self.tls_key_file, self.tls_ca_file]
        if any(tls) and not all(tls):
            raise ConfigError("set all of ES4PS_TLS_CERT_FILE, ES4PS_TLS_KEY_FILE and ES4PS_TLS_CA_FILE, or none")
        parse_options(self.extra_options)

    @property
    def smb_conf(self) -> Path:
        return self.data_dir / "etc" / "smb.conf"

    @property
    def run_dir(self) -> Path:
        """Runtime state (pid files, sockets): cleared on every start, so stale pid files never block samba."""
        return self.data_dir / "run"

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER_NAME

    @property
    def bind_interfaces(self) -> str:
        """What Samba listens on: ES4PS_INTERFACES, else 127.0.0.1 plus the advertised address.

        Not the interface `lo`: on a host network it also carries other services'
        addresses (a node-local DNS cache, say), whose ports Samba must leave alone.
        """
        return self.interfaces or " ".join(filter(None, ["127.0.0.1/8", self.host_ip]))

    @property
    def probe_address(self) -> str:
        """Where the probes reach LDAP: the advertised address, else loopback."""
        return self.host_ip or "127.0.0.1"

    def admin_password(self) -> str:
        try:
            password = self.admin_password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read ES4PS_ADMIN_PASSWORD_FILE: {exc.strerror}") from None
        if not password:
            raise ConfigError("ES4PS_ADMIN_PASSWORD_FILE is empty")
        return password


def _positive_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not 0 < seconds <= 86400:
        raise ConfigError(f"{name} must be between 0 and 86400 seconds")
    return seconds


def parse_options(text: str) -> dict[str, str]:
    """Parse "name = value" lines (blank lines and '#' comments ignored) into smb.conf options."""
    options = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"ES4PS_SAMBA_OPTIONS: expected 'name = value', found {line[:80]!r}")
        options[name.strip().lower()] = value.strip()
    return options


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
    }
    if config.dns_forwarder:
        options["dns forwarder"] = config.dns_forwarder
    if config.tls_cert_file:
        tls_dir = config.data_dir / "private" / "tls"
        options.update(
            {
                "tls enabled": "yes",
                "tls certfile": str(tls_dir / "es4ps-cert.pem"),
                "tls keyfile": str(tls_dir / "es4ps-key.pem"),
                "tls cafile": str(tls_dir / "es4ps-ca.pem"),
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


def _tls_sources(config: DCConfig) -> list[tuple[str, str, int]]:
    """(mounted file, name under private/tls, mode) of the LDAPS certificate, key and CA."""
    return [
        (config.tls_cert_file, "es4ps-cert.pem", 0o644),
        (config.tls_ca_file, "es4ps-ca.pem", 0o644),
        (config.tls_key_file, "es4ps-key.pem", 0o600),
    ]


def mounted_tls_digest(config: DCConfig) -> str | None:
    """A digest of the mounted certificate files as they are now; None while one cannot be read."""
    digest = hashlib.sha256()
    try:
        for source, _name, _mode in _tls_sources(config):
            digest.update(Path(source).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def install_tls_files(config: DCConfig) -> str:
    """Copy the mounted certificate into private/tls with the modes Samba insists on; return their digest.

    Samba refuses a key file that is not mode 0600 and owned by its user
    (CVE-2013-4476); a Secret volume does not always give that, so the files
    are copied (on every start, and by `serve` when they are renewed).
    """
    if not config.tls_cert_file:
        return ""
    tls_dir = config.data_dir / "private" / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for source, name, mode in _tls_sources(config):
        content = Path(source).read_bytes()
        digest.update(content)
        target = tls_dir / name
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(temporary, mode)
        temporary.replace(target)
    return digest.hexdigest()


def _samba_tool(*args: str) -> None:
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
    _samba_tool(*args)


def join(config: DCConfig) -> None:
    """Join the existing domain served by ES4PS_JOIN_SERVER as an additional DC (replicates its data)."""
    _samba_tool(
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
    return installed


def ldap_answers(address: str, timeout_s: float) -> bool:
    """True when the DC at `address` accepts a TCP connection on the LDAP port."""
    try:
        with socket.create_connection((address, LDAP_PORT), timeout=timeout_s):
            return True
    except OSError:
        return False


def ready(config: DCConfig) -> bool:
    """Readiness: the domain is provisioned and LDAP serves the root DSE."""
    if not config.marker.exists() or not ldap_answers(config.probe_address, 2):
        return False
    import samba
    from samba.credentials import Credentials
    from samba.param import LoadParm

    lp = LoadParm()
    lp.load(str(config.smb_conf))
    credentials = Credentials()
    credentials.set_anonymous()
    try:
        connection = samba.Ldb(f"ldap://{config.probe_address}", lp=lp, credentials=credentials)
        result = connection.search(base="", scope=samba.ldb.SCOPE_BASE, attrs=["dnsHostName", "isSynchronized"])
    except Exception:  # any failure means "not ready", the probe says no more
        return False
    return len(result) == 1 and str(result[0].get("isSynchronized", idx=0)).upper() == "TRUE"


def _log(message: str) -> None:
    print(f"es4ps-samba-dc: {message}", flush=True)


def _start_samba(config: DCConfig) -> subprocess.Popen:
    # In the foreground, logging to stdout. In this mode samba leads a process group of its own and
    # passes SIGTERM on to it, so its pid is also the group to wait for.
    return subprocess.Popen(["samba", "--interactive", f"--configfile={config.smb_conf}"])  # noqa: S603, S607


def _stop_samba(samba: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM samba and wait until its whole process group is gone (its ports are free again)."""
    samba.terminate()
    deadline = time.monotonic() + timeout_s
    while True:
        samba.poll()
        _reap_orphans(keep=samba.pid)
        try:
            os.killpg(samba.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(samba.pid, signal.SIGKILL)
        time.sleep(0.1)
    samba.wait()


def _reap_orphans(keep: int) -> None:
    """Collect exited children other than `keep`: as a container's PID 1 this process inherits orphans."""
    while True:
        try:
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is None or exited.si_pid == keep:
            return
        os.waitpid(exited.si_pid, 0)


def serve(config: DCConfig, installed_digest: str) -> int:
    """Run samba until it exits or this process is told to stop; restart it on a renewed certificate.

    cert-manager renews the LDAPS certificate before it expires and the kubelet
    swaps the files of the mounted Secret, but Samba reads them only at start:
    without a restart LDAPS would serve the old certificate until it expires.
    A restart takes 1-3 s, once per renewal; clients reconnect.
    """
    samba = _start_samba(config)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        samba.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            status = samba.wait(config.tls_check_seconds)
        except subprocess.TimeoutExpired:
            _reap_orphans(keep=samba.pid)
            if stopping:  # the signal reached a samba that was going down or not started yet
                _stop_samba(samba)
                return 0
            mounted = mounted_tls_digest(config) if config.tls_cert_file else None
            if mounted is not None and mounted != installed_digest:
                _log("the mounted LDAPS certificate changed: restarting samba to serve it")
                _stop_samba(samba)
                if stopping:  # told to stop while samba was going down: stay down
                    return 0
                installed_digest = install_tls_files(config)
                samba = _start_samba(config)
            continue
        if stopping:
            _stop_samba(samba)  # also waits for the rest of its process group
            return 0
        _log(f"samba exited with status {status}")
        return status if status > 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es4ps-samba-dc", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "prepare", "ready", "live"])
    args = parser.parse_args(argv)
    try:
        config = DCConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2
    if args.command == "ready":
        return 0 if ready(config) else 1
    if args.command == "live":
        return 0 if ldap_answers(config.probe_address, 5) else 1
    try:
        installed = prepare(config)
    except (ConfigError, OSError) as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 1
    if args.command == "prepare":
        return 0
    return serve(config, installed)


if __name__ == "__main__":
    sys.exit(main())
