"""The file server's Prometheus metrics, served by `es4ps-files run` on `ES4PS_FILES_METRICS_PORT` (/metrics).

What smbd, winbindd and CUPS say is asked at each scrape (a few milliseconds:
`smbstatus --json`, `wbinfo -t`, `lpstat`); what the volume holds is walked by a
thread every `ES4PS_FILES_USAGE_INTERVAL_SECONDS` (a walk of every home is too
slow for each scrape), and the last walk is served. No series names a person:
homes are counted and summed, and their connections count under the share
`homes`.

    es4ps_files_sessions{encryption}        SMB sessions open, by the cipher encrypting them
    es4ps_files_connections{share}          connections to each share (every home's under `homes`)
    es4ps_files_open_files                  files open through SMB
    es4ps_files_trust_ok                    1 while the computer's trust with the domain holds (`wbinfo -t`)
    es4ps_files_print_jobs_queued           print jobs CUPS has not finished
    es4ps_files_homes                       home folders on the volume
    es4ps_files_homes_bytes                 what the homes' files take
    es4ps_files_homes_over_quota            homes holding more than the quota (it is reported, not enforced)
    es4ps_files_homes_quota_bytes           the quota of each home
    es4ps_files_share_bytes{share}          what each group share's files take
    es4ps_files_printed_documents           PDFs the print share made on the volume
    es4ps_files_volume_size_bytes, es4ps_files_volume_free_bytes
    es4ps_files_usage_checked_timestamp_seconds   when the last walk of the volume ended
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

from .config import FilesConfig
from .folders import tree_bytes
from .smbconf import PRINT_QUEUE, PRINT_SHARE

logger = logging.getLogger(__name__)

# Where smbd's own shares count: its IPC$ is no share of people's.
HOMES_LABEL = "homes"
IPC_SHARE = "ipc$"


@dataclass(frozen=True)
class SmbActivity:
    """What `smbstatus --json` reports, counted: sessions by cipher, connections by share, open files."""

    sessions: dict[str, int]
    connections: dict[str, int]
    open_files: int


def smb_activity(status: dict[str, Any], group_shares: set[str]) -> SmbActivity:
    """Count `smbstatus --json`'s output. A connection to a share that is neither a group share nor the print
    share is a home (a home's share name is its person's: never a label)."""
    shares = {name.lower(): name for name in (*group_shares, PRINT_SHARE)}
    sessions = Counter(
        (session.get("encryption") or {}).get("cipher") or "none" for session in (status.get("sessions") or {}).values()
    )
    connections: Counter[str] = Counter()
    for tcon in (status.get("tcons") or {}).values():
        service = str(tcon.get("service", "")).lower()
        if service != IPC_SHARE:
            connections[shares.get(service, HOMES_LABEL)] += 1
    return SmbActivity(dict(sessions), dict(connections), len(status.get("open_files") or {}))


@dataclass
class VolumeUsage:
    """One walk of the volume: the homes, the group shares, the printed files, the file system."""

    checked_at: float = 0.0
    homes: int = 0
    homes_bytes: int = 0
    homes_over_quota: int = 0
    share_bytes: dict[str, int] = field(default_factory=dict)
    printed_documents: int = 0
    volume_size_bytes: int = 0
    volume_free_bytes: int = 0


def survey(config: FilesConfig) -> VolumeUsage:
    """Walk the volume once (folders of people or shares removed meanwhile count as empty)."""
    usage = VolumeUsage()
    if config.homes_dir.is_dir():
        for home in config.homes_dir.iterdir():
            if home.is_dir():
                used = tree_bytes(home)
                usage.homes += 1
                usage.homes_bytes += used
                usage.homes_over_quota += bool(config.homes_quota_bytes and used > config.homes_quota_bytes)
    usage.share_bytes = {share.name: tree_bytes(config.shares_dir / share.name) for share in config.shares}
    if config.printed_dir.is_dir():
        usage.printed_documents = sum(
            1 for _folder, _dirs, files in os.walk(config.printed_dir) for name in files if name.endswith(".pdf")
        )
    volume = os.statvfs(config.data_dir)
    usage.volume_size_bytes = volume.f_blocks * volume.f_frsize
    usage.volume_free_bytes = volume.f_bavail * volume.f_frsize
    usage.checked_at = time.time()
    return usage


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=20)  # noqa: S603


class FilesCollector:
    """The file server's numbers as Prometheus gauges, at each scrape; the volume's from the last walk."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.usage: VolumeUsage | None = None
        self._lock = threading.Lock()

    def walk_volume(self) -> None:
        usage = survey(self.config)
        with self._lock:
            self.usage = usage

    def activity(self) -> SmbActivity | None:
        result = _run("smbstatus", f"--configfile={self.config.smb_conf}", "--json")
        try:
            return smb_activity(json.loads(result.stdout), {share.name for share in self.config.shares})
        except ValueError:
            logger.warning("smbstatus gave no JSON: %s", (result.stderr or result.stdout).strip()[-200:])
            return None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        activity = self.activity()
        if activity is not None:
            yield from _activity_families(activity)
        trust = _run("wbinfo", "-t").returncode == 0
        yield GaugeMetricFamily(
            "es4ps_files_trust_ok",
            "1 while the file server's computer account is trusted by the domain (wbinfo -t), else 0.",
            value=int(trust),
        )
        if self.config.printing:
            queued = _run("lpstat", "-h", "/run/cups/cups.sock", "-o", PRINT_QUEUE)
            if queued.returncode == 0:
                yield GaugeMetricFamily(
                    "es4ps_files_print_jobs_queued",
                    "Print jobs CUPS has not finished.",
                    value=len(queued.stdout.splitlines()),
                )
        with self._lock:
            usage = self.usage
        if usage is not None:
            yield from _usage_families(usage, self.config.homes_quota_bytes)


def _activity_families(activity: SmbActivity) -> Iterator[GaugeMetricFamily]:
    sessions = GaugeMetricFamily("es4ps_files_sessions", "SMB sessions open, by cipher.", labels=["encryption"])
    for cipher, count in sorted(activity.sessions.items()):
        sessions.add_metric([cipher], count)
    yield sessions
    connections = GaugeMetricFamily(
        "es4ps_files_connections", "Connections to each share (every home's under 'homes').", labels=["share"]
    )
    for share, count in sorted(activity.connections.items()):
        connections.add_metric([share], count)
    yield connections
    yield GaugeMetricFamily("es4ps_files_open_files", "Files open through SMB.", value=activity.open_files)


def _usage_families(usage: VolumeUsage, quota_bytes: int | None) -> Iterator[GaugeMetricFamily]:
    def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, value=value)

    yield gauge("es4ps_files_homes", "Home folders on the volume.", usage.homes)
    yield gauge("es4ps_files_homes_bytes", "What the homes' files take on the volume.", usage.homes_bytes)
    if quota_bytes:
        yield gauge("es4ps_files_homes_quota_bytes", "The quota of each home.", quota_bytes)
        yield gauge("es4ps_files_homes_over_quota", "Homes holding more than the quota.", usage.homes_over_quota)
    shares = GaugeMetricFamily("es4ps_files_share_bytes", "What each group share's files take.", labels=["share"])
    for share, used in sorted(usage.share_bytes.items()):
        shares.add_metric([share], used)
    yield shares
    yield gauge("es4ps_files_printed_documents", "PDFs the print share made on the volume.", usage.printed_documents)
    yield gauge("es4ps_files_volume_size_bytes", "The size of the file server's volume.", usage.volume_size_bytes)
    yield gauge("es4ps_files_volume_free_bytes", "What is free on the volume.", usage.volume_free_bytes)
    yield gauge(
        "es4ps_files_usage_checked_timestamp_seconds", "When the last walk of the volume ended.", usage.checked_at
    )


def serve_metrics(config: FilesConfig) -> None:
    """Serve /metrics on the metrics port and walk the volume every interval, in daemon threads."""
    collector = FilesCollector(config)
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(config.metrics_port, addr="0.0.0.0", registry=registry)  # noqa: S104 (the Pod's port)

    def walk_forever() -> None:
        while True:
            try:
                collector.walk_volume()
            except OSError as exc:  # a folder that vanished mid-walk, say: the next walk counts again
                logger.warning("walking the volume failed: %s", exc)
            time.sleep(config.usage_interval_seconds)

    threading.Thread(target=walk_forever, name="volume-usage", daemon=True).start()
