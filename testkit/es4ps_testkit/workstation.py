"""A Debian workstation of the domain on this machine: winbind or sssd, NSS and PAM as an administrator sets them up.

The workstation lives in namespaces of its own (network, mount, UTS), so it never
touches this machine's configuration: a veth pair gives it an address of its own
(10.250.x.y/30, claimed with a lock file like the test DCs' loopback addresses)
with a route to the DC's address, and its /etc/samba, /etc/sssd, /etc/pam.d,
/etc/nsswitch.conf, /etc/hosts, /etc/resolv.conf, /var/lib/samba, /var/lib/sss,
/run (winbindd's socket is always /run/samba/winbindd), /home and /tmp are bind
mounts of folders in its directory. Inside, the machine's own Debian packages
run as on a workstation: `net ads join` or `adcli join`, `pam-auth-update`,
winbindd or sssd, `getent`, `id`, `pamtester`.

Two clients, the two ways docs/directory.md describes: `winbind` (joined by an
administrator with `net ads join`) and `sssd` (joined with `adcli`, by an
administrator or with a pre-staged computer's one-time password). Their
settings are es4ps_testkit.member_config's.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from es4ps_localcluster.paths import ROOT
from es4ps_localcluster.processes import start_process, stop_process_group, wait_until

from . import ServiceError
from .claims import unclaimed
from .member_config import DEFAULT_ID_RANGE, SSSD_KEYTAB, member_smb_conf, nsswitch_conf, sssd_conf
from .samba import SambaDC

# /30 networks a workstation may take: 10.250.0.0/16, one per running workstation of any session.
_SLOTS = range(16384)
# Folders and files of the workstation's own, bind-mounted over the machine's; /tmp last (it hides the rest).
_PRIVATE_DIRS = (
    "etc/samba",
    "etc/sssd",
    "etc/pam.d",
    "var/lib/pam",
    "var/lib/samba",
    "var/cache/samba",
    "var/lib/sss",
    "var/log",
    "run",
    "home",
)
# Folders the workstation's programs expect inside those (sssd's databases, pipes and caches, winbindd's run
# folder, the logs; a login's session writes lastlog and wtmp there too).
_INNER_DIRS = (
    "etc/sssd/conf.d",
    "var/log/samba",
    "var/log/sssd",
    "var/lib/samba/private",
    "var/lib/sss/db",
    "var/lib/sss/pipes/private",
    "var/lib/sss/mc",
    "var/lib/sss/pubconf/krb5.include.d",
    "var/lib/sss/gpo_cache",
    "run/samba",
)
# The NSS and PAM name of each client.
_NSS_MODULE = {"winbind": "winbind", "sssd": "sss"}
_PRIVATE_FILES = ("etc/nsswitch.conf", "etc/hosts", "etc/resolv.conf")
# The environment of every program on the workstation: nothing of this process's (Samba's Python bindings set
# SMB_CONF_PATH once they loaded a DC's smb.conf, and winbindd would read that one).
_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _processes_in(namespace: str) -> list[int]:
    """The processes whose network namespace is `namespace` (as /proc/<pid>/ns/net names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "net") == namespace:
                    found.append(int(entry.name))
    return found


def _claim_slot() -> tuple[int, int]:
    """A /30 slot no other workstation holds; returns it and the open lock file (keep it open)."""
    claimed = next(unclaimed(_SLOTS, "es4ps-workstation"), None)
    if claimed is None:
        raise ServiceError("no free network for a workstation")
    return claimed


class Workstation:
    """A Linux domain member in namespaces of its own, for `dc`'s domain; `client`: "winbind" or "sssd"."""

    # More folders of its own a kind of member needs (a file server: CUPS's).
    extra_private_dirs: tuple[str, ...] = ()

    def __init__(
        self,
        directory: Path,
        dc: SambaDC,
        hostname: str = "ws1",
        id_range: tuple[int, int] = DEFAULT_ID_RANGE,
        client: str = "winbind",
    ) -> None:
        if client not in _NSS_MODULE:
            raise ValueError(f"client must be one of {sorted(_NSS_MODULE)}")
        self.directory = directory
        self.root = directory / "root"  # the workstation's own files, as the paths it mounts them at
        self.dc = dc
        self.hostname = hostname
        self.id_range = id_range
        self.client = client
        self.address = ""
        self.log = directory / "workstation.log"
        self.client_log = directory / f"{client}.log"
        self._gateway = ""
        self._namespace = ""  # the network namespace's id (/proc/<pid>/ns/net), once made
        self._slot: int | None = None
        self._lock: int | None = None
        self._holder: subprocess.Popen | None = None
        self._daemon: subprocess.Popen | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.dc.dns_domain}"

    @property
    def dc_fqdn(self) -> str:
        return f"{self.dc.hostname}.{self.dc.dns_domain}"

    def home(self, username: str) -> Path:
        """A person's home folder as the workstation's /home holds it (seen from this machine)."""
        return self.root / "home" / username

    # -- the machine --------------------------------------------------------------------------

    def start(self) -> None:
        """Namespaces, network and files: the workstation as installed, not joined yet."""
        self._slot, self._lock = _claim_slot()
        third, fourth = divmod(4 * self._slot, 256)
        self._gateway, self.address = f"10.250.{third}.{fourth + 1}", f"10.250.{third}.{fourth + 2}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_files()
        # The holder keeps the namespaces; it ends when its stdin closes (this process gone) or when stopped.
        with self.log.open("ab") as out:
            self._holder = subprocess.Popen(
                ["unshare", "--net", "--mount", "--uts", "--propagation", "private", "cat"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._namespace = wait_until(self._new_namespace, 10, "unshare to make the namespaces", error=ServiceError)
            self._connect()
            paths = (*_PRIVATE_DIRS, *self.extra_private_dirs, *_PRIVATE_FILES)
            mounts = [f"mount --bind {shlex.quote(str(self.root / path))} /{path}" for path in paths]
            # A checkout under /tmp (its sources, its venv) stays where it is under the private /tmp.
            for kept in sorted({ROOT, Path(sys.prefix)}):
                if Path("/tmp") in kept.parents:
                    inside = self.root / "tmp" / kept.relative_to("/tmp")
                    inside.mkdir(parents=True, exist_ok=True)
                    # Quoted: a checkout's path may hold spaces.
                    mounts.append(f"mount --bind {shlex.quote(str(kept))} {shlex.quote(str(inside))}")
            # /tmp last: it hides the folders mounted from under it (--rbind: with the checkout bound inside).
            mounts.append(f"mount --rbind {shlex.quote(str(self.root / 'tmp'))} /tmp")
            self.run_checked(
                "sh",
                "-c",
                f"hostname {self.hostname} && mkdir -p /var/log/samba /var/log/sssd && {' && '.join(mounts)}",
            )
        except ServiceError:
            self.close()
            raise

    def _write_files(self) -> None:
        root = self.root
        for path in (*_PRIVATE_DIRS, *self.extra_private_dirs, *_INNER_DIRS, "tmp"):
            (root / path).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        for source, target in (("/etc/pam.d", "etc/pam.d"), ("/var/lib/pam", "var/lib/pam")):
            shutil.copytree(source, root / target, dirs_exist_ok=True, symlinks=True)
        (root / "etc/samba/smb.conf").write_text(
            member_smb_conf(self.dc.realm, self.dc.netbios_name, self.hostname, self.id_range)
        )
        sssd = root / "etc/sssd/sssd.conf"
        sssd.write_text(sssd_conf(self.dc.realm, self.hostname, self.dc_fqdn))
        sssd.chmod(0o600)  # sssd refuses a configuration others may read
        (root / "etc/nsswitch.conf").write_text(nsswitch_conf(_NSS_MODULE[self.client]))
        (root / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n{self.address} {self.fqdn} {self.hostname}\n"
            f"{self.dc.address} {self.dc_fqdn} {self.dc.hostname}\n"
        )
        (root / "etc/resolv.conf").write_text(f"nameserver {self.dc.address}\nsearch {self.dc.dns_domain}\n")

    def _new_namespace(self) -> str:
        """The holder's network namespace once it is not this process's any more (unshare has made it), else ""."""
        assert self._holder is not None
        with contextlib.suppress(OSError):
            namespace = os.readlink(f"/proc/{self._holder.pid}/ns/net")
            if namespace != os.readlink("/proc/self/ns/net"):
                return namespace
        return ""

    def _connect(self) -> None:
        """The veth pair between this machine and the workstation, and a route to the DC."""
        assert self._holder is not None
        outside, inside = f"es4ws{self._slot}h", f"es4ws{self._slot}w"
        self._host(["ip", "link", "del", outside], check=False)  # a leftover of a session that died
        self._host(
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", str(self._holder.pid)]
        )
        self._host(["ip", "addr", "add", f"{self._gateway}/30", "dev", outside])
        self._host(["ip", "link", "set", outside, "up"])
        # Test DCs listen on 127.0.0.X: loopback addresses must be routable on this link, at both ends, and
        # the workstation's own 127.0.0.0/8 is only its 127.0.0.1.
        self._host(["sysctl", "-qw", f"net.ipv4.conf.{outside}.route_localnet=1"])
        # kube-proxy (a real node of the local cluster, now or earlier) drops packets to 127.0.0.0/8 from other
        # addresses ("block incoming localnet connections"): this link's are let in before that rule.
        self._host(["iptables", *self._accept_rule("-D")], check=False)
        self._host(["iptables", *self._accept_rule("-I")])
        self.run_checked(
            "sh",
            "-c",
            f"ip link set lo up && ip addr add {self.address}/30 dev {inside} && ip link set {inside} up"
            f" && sysctl -qw net.ipv4.conf.{inside}.route_localnet=1"
            " && ip route del local 127.0.0.0/8 dev lo table local",
        )
        self.reach(self.dc.address)

    def _accept_rule(self, action: str) -> list[str]:
        """iptables arguments that insert (-I) or delete (-D) the rule letting this workstation's link in."""
        position = ["1"] if action == "-I" else []
        comment = ["-m", "comment", "--comment", "es4ps test workstation"]
        return [action, "INPUT", *position, "-i", f"es4ws{self._slot}h", *comment, "-j", "ACCEPT"]

    def reach(self, address: str) -> None:
        """Route `address` (a server on this machine: a DC, a file server) through the workstation's link."""
        self.run_checked("ip", "route", "replace", f"{address}/32", "via", self._gateway)

    def _host(self, command: list[str], check: bool = True) -> None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise ServiceError(f"{' '.join(command)}: {result.stderr.strip()[-500:]}")

    def run(self, *command: str, input: str | None = None, env: dict[str, str] | None = None, timeout_s: float = 60):
        """Run a command on the workstation (its namespaces); the CompletedProcess (text)."""
        assert self._holder is not None, "the workstation is not started"
        return subprocess.run(
            ["nsenter", "-t", str(self._holder.pid), "--net", "--mount", "--uts", *command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**_ENVIRONMENT, **(env or {})},
            cwd="/",
        )

    def run_checked(self, *command: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        """`run`, raising ServiceError with the command's error output when it fails; its output."""
        result = self.run(*command, input=input, env=env)
        if result.returncode != 0:
            raise ServiceError(f"{command[0]} on {self.hostname}: {(result.stderr or result.stdout).strip()[-800:]}")
        return result.stdout

    # -- the domain ---------------------------------------------------------------------------

    def join(self, username: str = "Administrator", password: str | None = None) -> None:
        """Join as `username` (the domain's Administrator by default) the client's way, then start its daemon.

        winbind: `net ads join` (DNS records left to the DC's administrator); sssd: `adcli join`. The
        password goes through the environment (PASSWD, Samba's tools) or stdin (adcli), never on a command line.
        """
        secret = self.dc.admin_password if password is None else password
        if self.client == "winbind":
            self.run_checked(
                "net", "ads", "join", "-U", username, "-S", self.dc_fqdn, "--no-dns-updates", env={"PASSWD": secret}
            )
        else:
            self.run_checked(*self._adcli_join(), f"--login-user={username}", "--stdin-password", input=secret)
        self.start_client()

    def join_with_one_time_password(self, password: str) -> None:
        """Join with a computer account pre-staged under this workstation's name and its one-time password, no
        administrator credential (sssd only: Samba 4.17's tools cannot store a machine password adcli set).

        adcli takes the one-time password only on its command line; it is void once the join changed it.
        """
        if self.client != "sssd":
            raise ValueError("a one-time password join is adcli's: use client='sssd'")
        self.run_checked(*self._adcli_join(), f"--one-time-password={password}")
        self.start_client()

    def _adcli_join(self) -> list[str]:
        return [
            "adcli",
            "join",
            f"--domain={self.dc.dns_domain}",
            f"--domain-realm={self.dc.realm.upper()}",
            f"--domain-controller={self.dc_fqdn}",
            f"--computer-name={self.hostname.upper()}",
            f"--host-fqdn={self.fqdn}",
            f"--host-keytab={SSSD_KEYTAB}",
        ]

    def start_client(self, timeout_s: float = 60) -> None:
        """PAM for the client (`pam-auth-update --enable <client> mkhomedir`, as an administrator runs it), then
        winbindd or sssd in the foreground; returns when it answers the domain's questions."""
        assert self._holder is not None
        profile = _NSS_MODULE[self.client]
        self.run_checked("pam-auth-update", "--enable", profile, "mkhomedir", env={"DEBIAN_FRONTEND": "noninteractive"})
        if self.client == "winbind":
            daemon = ["winbindd", "--foreground", "--no-process-group", "--debug-stdout"]

            def answering() -> bool:
                return self.run("wbinfo", "--ping-dc").returncode == 0
        else:
            daemon = ["sssd", "--interactive", "--logger=stderr"]

            def answering() -> bool:
                # Its responders listen (sssctl's status needs the system bus, which the workstation lacks).
                return (
                    self.run("test", "-S", "/var/lib/sss/pipes/nss", "-a", "-S", "/var/lib/sss/pipes/pam").returncode
                    == 0
                )

        namespaces = ["nsenter", "-t", str(self._holder.pid), "--net", "--mount", "--uts"]
        self._daemon = start_process([*namespaces, *daemon], self.client_log, _ENVIRONMENT)
        wait_until(
            answering,
            timeout_s,
            f"{self.client} on {self.hostname}",
            self.client_log,
            self._daemon,
            interval_s=0.5,
            error=ServiceError,
        )

    def stop_client(self) -> None:
        stop_process_group(self._daemon)
        self._daemon = None

    # -- what a person sees -------------------------------------------------------------------

    def passwd(self, username: str) -> dict[str, str] | None:
        """`getent passwd <username>` as its fields (uid, gid, home, shell), or None when unknown."""
        result = self.run("getent", "passwd", username)
        if result.returncode != 0:
            return None
        name, _, uid, gid, _gecos, home, shell = result.stdout.strip().split(":")
        return {"name": name, "uid": uid, "gid": gid, "home": home, "shell": shell}

    def group_names(self, username: str) -> set[str]:
        """The names of the groups `id` lists for the person (groups the workstation cannot name are left out)."""
        result = self.run("id", "-Gn", username)
        return set(result.stdout.split())

    def login(self, username: str, password: str) -> bool:
        """A console login through PAM (`login` service: authenticate, account, session), as pamtester does it."""
        result = self.run(
            "pamtester",
            "login",
            username,
            "authenticate",
            "acct_mgmt",
            "open_session",
            "close_session",
            input=password + "\n",
        )
        return result.returncode == 0

    # -- stop ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the client's daemon, every process left in the workstation's network namespace (Samba's tools
        start samba-dcerpcd, which leaves their process group), and the namespaces (the veth pair goes with
        them); give the network back."""
        self.stop_client()
        # Never this machine's own namespace, whatever happened before.
        if self._namespace and self._namespace != os.readlink("/proc/self/ns/net"):
            for signal_number in (signal.SIGTERM, signal.SIGKILL):
                for pid in _processes_in(self._namespace):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal_number)
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: not _processes_in(self._namespace), 10, "the workstation's processes to stop")
        self._namespace = ""
        if self._holder is not None:
            stop_process_group(self._holder)
            self._holder = None
        if self._slot is not None:
            self._host(["iptables", *self._accept_rule("-D")], check=False)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
