"""A DC's own locator records (the SRV records and the `<guid>._msdcs` CNAME by which clients and the other DCs
find it), restored within about a minute when they are missing from its zone.

Only samba's `samba_dnsupdate` (smb.conf's `dns update command`) writes them.
Samba runs it once at start with 20 s to finish (not enough on a loaded node)
and then only every `dnsupdate:name interval`, 10 minutes. And `remove` of a
DC's former self (es4ps_samba.dc.lifecycle), before it joins again under its
name, deletes every record naming it. Either way clients asking the domain's
DNS would not find the DC for up to 10 minutes (seen on 2026-12-07: dc1's
records missing on every DC for more than 8 minutes after it joined again).

So with each health check the DC looks for a few of those records in its own
copy of the zone (local reads: about 60 ms of CPU, opening the database) and,
when one is missing and samba's own first try had its time, runs the command
samba runs, with more time to finish; at most every RETRY_S. `samba_dnsupdate` itself asks the DNS
for each record of its list and writes what is missing, these among them.
Running it every minute instead (a smaller `dnsupdate:name interval`) would
cost every DC about 0.36 s of CPU a minute, plus samba_spnupdate's 0.25 s, and
still stop it after 20 s.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass

from ..samdb import open_samdb_at
from .config import DCConfig
from .smbconf import managed_options

# SRV records every writable DC registers (samba's dns_update_list, ${IF_RWDC} lines): (name, port). When
# samba_dnsupdate runs it restores the rest of its list too (site, GC, DNS partition records).
LOCATOR_SRV = (
    ("_ldap._tcp.{domain}", 389),
    ("_ldap._tcp.dc._msdcs.{domain}", 389),
    ("_kerberos._tcp.{domain}", 88),
    ("_kerberos._tcp.dc._msdcs.{domain}", 88),
)
# Samba gives its own run at start 20 s: ours comes after that, so that a first try that works is not repeated.
SAMBA_FIRST_TRY_S = 30.0
# While the records stay missing after a run (the DNS could not be written), the next run waits this long.
RETRY_S = 120.0
# Longer than samba's 20 s: on a loaded node the run is slow, not wrong.
RUN_TIMEOUT_S = 180.0


def missing_records(samdb, fqdn: str) -> list[str]:
    """The locator records naming `fqdn` (this DC) that this DC's copy of the zone lacks, as `TYPE name`."""
    from samba.dcerpc import dnsp

    domain, forest = samdb.domain_dns_name(), samdb.forest_dns_name()
    wanted = [(dnsp.DNS_TYPE_SRV, name.format(domain=domain), port) for name, port in LOCATOR_SRV]
    wanted.append((dnsp.DNS_TYPE_CNAME, f"{samdb.get_ntds_GUID()}._msdcs.{forest}", None))
    missing = []
    for kind, name, port in wanted:
        if not any(_names(record, kind, fqdn, port) for record in _records(samdb, name)):
            missing.append(f"{'SRV' if kind == dnsp.DNS_TYPE_SRV else 'CNAME'} {name}")
    return missing


def _records(samdb, name: str) -> list:
    import ldb
    from samba import WERRORError

    try:
        return samdb.dns_lookup(name)[1]
    except (ldb.LdbError, WERRORError, RuntimeError):  # no such name (deleted, or never written)
        return []


def _names(record, kind: int, fqdn: str, port: int | None) -> bool:
    """Whether `record` is of `kind` and points at `fqdn` (and `port`, for SRV)."""
    if record.wType != kind:
        return False
    target = record.data.nameTarget if port is not None else record.data
    return str(target).rstrip(".").lower() == fqdn.lower() and (port is None or record.data.wPort == port)


def update_due(missing: list[str], samba_started: float, last_run: float | None, now: float) -> bool:
    """Whether to run samba_dnsupdate now: a record is missing, samba's own first try had its time, and no run of
    ours since the records were last all there was in the last RETRY_S."""
    return (
        bool(missing) and now - samba_started >= SAMBA_FIRST_TRY_S and (last_run is None or now - last_run >= RETRY_S)
    )


def dns_update_command(config: DCConfig) -> list[str]:
    """What samba runs to register the DC in DNS (smb.conf's `dns update command`, as the entrypoint writes it),
    with this DC's smb.conf. Not read back through samba's loadparm: in the entrypoint's process that returned
    `--current-ip=<address>` cut at the `=`."""
    return [*shlex.split(managed_options(config)["dns update command"]), f"--configfile={config.smb_conf}"]


@dataclass
class LocatorCheck:
    """Keeps the DC's own locator records in its zone; `check` runs with each health check, in the health thread."""

    config: DCConfig
    last_run: float | None = None

    def check(self, samba_started: float) -> list[str]:
        """Look for the records, run samba_dnsupdate when due; returns the records still missing."""
        fqdn = f"{self.config.hostname}.{self.config.realm.lower()}"
        missing = missing_records(open_samdb_at(self.config.data_dir), fqdn)
        now = time.time()
        if not missing:
            self.last_run = None  # records that go missing again later get a run at once
        if not update_due(missing, samba_started, self.last_run, now):
            return missing
        self.last_run = now
        _log(f"{fqdn}'s records missing from its zone ({', '.join(missing)}): running samba_dnsupdate")
        try:
            result = subprocess.run(  # noqa: S603 (smb.conf's command)
                dns_update_command(self.config), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _log(f"samba_dnsupdate failed: {exc}")
            return missing
        missing = missing_records(open_samdb_at(self.config.data_dir), fqdn)
        if result.returncode != 0 or missing:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            _log(f"samba_dnsupdate exited {result.returncode}, still missing: {missing or 'none'}: {' | '.join(tail)}")
        else:
            _log(f"{fqdn}'s locator records are back")
        return missing


def _log(message: str) -> None:
    print(f"es4ps-samba-dc: {message}", flush=True)
