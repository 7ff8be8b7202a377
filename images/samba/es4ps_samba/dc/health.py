"""The DC's health endpoint: replication as this DC sees it, and its numbers, for the operator and Prometheus.

A thread of the entrypoint asks the local DC for its replication neighbours
(`samba-tool drs showrepl --json`, with the DC's machine account) every
`ES4PS_HEALTH_INTERVAL_SECONDS` (every 15 s while a link fails or the check
does), counts the accounts of the managed OU and reads how many of the
domain's RIDs are handed out and left (every account, group or computer takes
one for good; a new account's uidNumber is a uid range's start + its RID); the
health endpoint on `ES4PS_HEALTH_PORT` (es4ps_samba.dc.endpoint: HTTPS on the
DC's address for the monitoring certificate only) answers what the last check
found:

    GET /replication   {"healthy": true | false | null, "checkedAt": ..., "failing": [...], "error": ...}
    GET /metrics       Prometheus text: es4ps_dc_replication_*, es4ps_dc_managed_accounts, es4ps_dc_rids_*

A link fails when it has consecutive failures (what `samba-tool drs showrepl
--summary` reports); a DC with no replication
partner (the only DC) is healthy. The operator reads /replication of every DC
for the domain's ReplicationHealthy condition.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..samdb import open_samdb_at
from .config import DCConfig
from .endpoint import HealthEndpoint
from .locator import LocatorCheck
from .peers import PeerCheck

logger = logging.getLogger(__name__)

# While something fails: a DC that recovers shows it (and one that needs a restart gets it) within seconds.
RECHECK_WHILE_FAILING_S = 15.0


@dataclass
class Link:
    direction: str  # inbound (repsFrom) or outbound (repsTo)
    partner: str  # the other DC, e.g. Default-First-Site-Name\DC1
    naming_context: str
    failures: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "partner": self.partner,
            "namingContext": self.naming_context,
            "failures": self.failures,
            "message": self.message,
        }


def replication_links(showrepl: dict[str, Any]) -> tuple[list[Link], list[Link]]:
    """(every link, the failing ones) of `samba-tool drs showrepl --json`'s output."""
    links, failing = [], []
    for key, direction in (("repsFrom", "inbound"), ("repsTo", "outbound")):
        for rep in showrepl.get(key, []):
            if rep.get("is deleted"):
                continue
            link = Link(
                direction,
                rep.get("DSA") or rep.get("NTDS DN", "?"),
                rep.get("NC dn", "?"),
                int(rep.get("consecutive failures", 0)),
                str(rep.get("last attempt message", "")),
            )
            links.append(link)
            # Only failures count: Samba leaves "last success" unset on outbound links (they say whom this DC
            # notifies) and, for a while, on the inbound link of a DC that joined again (its attempts succeed);
            # a link that really never works accumulates consecutive failures.
            if link.failures:
                failing.append(link)
    return links, failing


@dataclass
class HealthReport:
    healthy: bool | None = None
    checked_at: float | None = None
    links: list[Link] = field(default_factory=list)
    failing: list[Link] = field(default_factory=list)
    error: str = ""
    managed_accounts: int | None = None
    rids: tuple[int, int] | None = None  # (handed out, left) in the domain

    def replication(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checkedAt": self.checked_at,
            "links": len(self.links),
            "failing": [link.as_dict() for link in self.failing],
            "error": self.error,
        }

    def metrics(self) -> bytes:
        """The report in Prometheus' text format (written by prometheus_client)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ReportCollector(self))
        return generate_latest(registry)


class _ReportCollector:
    """The numbers of one HealthReport as Prometheus gauges."""

    def __init__(self, report: HealthReport) -> None:
        self.report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report = self.report
        healthy = GaugeMetricFamily(
            "es4ps_dc_replication_healthy", "1 when no replication link of this DC fails, 0 when one does."
        )
        if report.healthy is not None:
            healthy.add_metric([], int(report.healthy))
        yield healthy
        yield GaugeMetricFamily(
            "es4ps_dc_replication_links",
            "Replication links of this DC (per naming context and partner).",
            value=len(report.links),
        )
        failures = GaugeMetricFamily(
            "es4ps_dc_replication_consecutive_failures",
            "Consecutive failures of each replication link.",
            labels=["direction", "partner", "nc"],
        )
        for link in report.links:
            failures.add_metric([link.direction, link.partner, link.naming_context], link.failures)
        yield failures
        yield GaugeMetricFamily(
            "es4ps_dc_health_checked_timestamp_seconds", "When the last health check ran.", value=report.checked_at or 0
        )
        if report.managed_accounts is not None:
            yield GaugeMetricFamily(
                "es4ps_dc_managed_accounts",
                "User accounts in the managed OU, as this DC sees them.",
                value=report.managed_accounts,
            )
        if report.rids is not None:
            yield GaugeMetricFamily(
                "es4ps_dc_rids_issued",
                "The domain's RIDs handed out (to the DCs' pools), as this DC sees it.",
                value=report.rids[0],
            )
            yield GaugeMetricFamily(
                "es4ps_dc_rids_remaining",
                "The domain's RIDs not handed out yet, as this DC sees it.",
                value=report.rids[1],
            )


def showrepl(config: DCConfig, timeout_s: float = 120) -> dict[str, Any]:
    """The local DC's replication neighbours (raises RuntimeError with samba-tool's complaint)."""
    result = subprocess.run(  # noqa: S603 (fixed arguments)
        [
            "samba-tool",
            "drs",
            "showrepl",
            config.probe_address,
            "--json",
            "--machine-pass",
            f"--configfile={config.smb_conf}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if result.returncode != 0:
        raise RuntimeError(samba_tool_complaint(result.stderr) or "samba-tool drs showrepl failed")
    return json.loads(result.stdout)


def samba_tool_complaint(stderr: str) -> str:
    """samba-tool's own error line (`ERROR(...): ...`, before any traceback), else its last line."""
    lines = stderr.strip().splitlines()
    complaint = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
    return complaint[:300]


def count_managed_accounts(config: DCConfig) -> int:
    """User objects in the managed OU, read from the local database (samba keeps serving meanwhile)."""
    import ldb

    samdb = open_samdb_at(config.data_dir)
    found = samdb.search(
        base=f"{config.users_ou},{samdb.domain_dn()}",
        scope=ldb.SCOPE_SUBTREE,
        expression="(objectClass=user)",
        attrs=["1.1"],
    )
    return len(found)


def rid_pool(config: DCConfig) -> tuple[int, int]:
    """(RIDs handed out, RIDs left) of the domain: the RID Manager's rIDAvailablePool, whose low half is the next
    RID the RID master hands to a DC's pool and whose high half is the last one (Samba: 2^30 - 1)."""
    import ldb

    samdb = open_samdb_at(config.data_dir)
    manager = samdb.search(
        base=f"CN=RID Manager$,CN=System,{samdb.domain_dn()}", scope=ldb.SCOPE_BASE, attrs=["rIDAvailablePool"]
    )
    pool = int(manager[0]["rIDAvailablePool"][0])
    next_free, last = pool & 0xFFFFFFFF, pool >> 32
    return next_free - 1, last - next_free + 1


class HealthMonitor:
    """Checks on a timer, serves the last report over HTTP; both in daemon threads of the entrypoint."""

    def __init__(self, config: DCConfig) -> None:
        self.config = config
        self.report = HealthReport()
        self.peers = PeerCheck(config)
        self.locator = LocatorCheck(config)
        # The DC's own locator records missing from its zone at the last check (es4ps_samba.dc.locator).
        self.missing_records: list[str] = []
        # Why samba must restart (es4ps_samba.dc.peers), for the supervisor; None: it need not.
        self.restart_reason: str | None = None
        self._lock = threading.Lock()
        self._endpoint: HealthEndpoint | None = None

    def samba_started(self) -> None:
        """Samba (re)started, with the certificate installed now: the endpoint serves that one too."""
        with self._lock:
            self.restart_reason = None
            self.peers.samba_started()
        if self._endpoint is not None:
            self._endpoint.reload_certificate()

    def check_once(self) -> HealthReport:
        report = HealthReport(checked_at=time.time())
        try:
            report.links, report.failing = replication_links(showrepl(self.config))
            report.healthy = not report.failing
        except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
            report.error = f"replication status unknown: {exc}"
        try:
            with self._lock:
                self.restart_reason = self.peers.check() or self.restart_reason
        except Exception as exc:  # the DC may be starting; the next check tries again
            logger.warning("checking the other DCs' addresses and identities failed: %s", exc)
        try:
            self.missing_records = self.locator.check(samba_started=self.peers.started)
        except Exception as exc:  # the DC may be starting; the next check tries again
            logger.warning("checking this DC's own locator records failed: %s", exc)
        try:
            report.managed_accounts = count_managed_accounts(self.config)
            report.rids = rid_pool(self.config)
        except Exception as exc:  # the counts are a nicety; the DC may be starting
            logger.info("counting the managed accounts or the RIDs failed: %s", exc)
        with self._lock:
            self.report = report
        return report

    def current(self) -> HealthReport:
        with self._lock:
            return self.report

    def _check_forever(self) -> None:
        while True:
            report = self.check_once()
            time.sleep(self.next_check_in(report))

    def next_check_in(self, report: HealthReport) -> float:
        """The interval; sooner while something fails, so that a recovery shows (and a restart comes) early, and
        while the DC's own locator records are missing (they are written within about a minute)."""
        if report.healthy and self.restart_reason is None and not self.missing_records:
            return self.config.health_interval_seconds
        return min(self.config.health_interval_seconds, RECHECK_WHILE_FAILING_S)

    def start(self) -> None:
        """Serve (es4ps_samba.dc.endpoint) and check every interval, until the process ends."""
        self._endpoint = HealthEndpoint(
            self.config,
            replication=lambda: json.dumps(self.current().replication()).encode(),
            metrics=lambda: self.current().metrics(),
        )
        self._endpoint.start()
        threading.Thread(target=self._check_forever, name="health-check", daemon=True).start()

    def stop(self) -> None:
        if self._endpoint is not None:
            self._endpoint.stop()
