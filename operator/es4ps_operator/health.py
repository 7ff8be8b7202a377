"""Replication health of a domain, as its DCs report it on their health endpoints.

Each DC's entrypoint serves /replication (es4ps_samba.dc.health) on its own
address, over HTTPS to the domain's monitoring client certificate only (the
Secret `<domain>-monitoring-tls`, which the operator reads for it: Python
loads a key only from a file, so it lives in a private temporary directory
for the moment it takes); a timer of the operator asks every DC of a domain once a minute and
reduces the answers to one Check for the ReplicationHealthy condition: False
naming the failing links when a DC reports one, Unknown while a DC does not
answer, True when every DC reports none. A domain of one DC has nothing to
replicate (True without asking), unless it joined an existing domain: its DC
then replicates with the existing DCs until they are demoted, and is asked.

A check speaks for the DCs it asked (`Replication`): once `directory.replicas`
changes, the last one says nothing of the domain (ReplicationHealthy Unknown)
until its DCs of now are asked, at the timer's next tick. (Before, a check of
two DCs stayed "True: all 2 domain controllers replicate" for up to a minute
under the generation that asked for three, while the third had not been
asked, and an image roll-out could go on on its word.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from . import naming
from .config import OperatorConfig
from .domain import Domain
from .kube import KubeApi, KubeError
from .status import Check, name_list

TIMEOUT_S = 5
# While replication is healthy the DCs are asked this often; while it is not, at every tick of the timer.
ASK_HEALTHY_S = 60.0


@dataclasses.dataclass(frozen=True)
class Replication:
    """A replication check and the DCs it asked (none: a domain of one DC, nothing to ask)."""

    dcs: tuple[str, ...]
    check: Check


def dc_health_url(domain: Domain, config: OperatorConfig, index: int) -> str:
    """The health endpoint of DC `index`, through its headless Service (the Pod's address, or its node's)."""
    host = f"{naming.dc(domain, index)}.{domain.namespace}.svc.{config.cluster_domain}"
    return f"https://{host}:{naming.DC_HEALTH_PORT}/replication"


def monitoring_client_context(secret: Mapping[str, bytes]) -> ssl.SSLContext:
    """TLS to the DCs' health endpoints: their CA trusted, the monitoring certificate shown."""
    context = ssl.create_default_context(cadata=secret["ca.crt"].decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="es4ps-monitoring-") as directory:  # mode 0700, removed at once
        certificate, key = Path(directory) / "tls.crt", Path(directory) / "tls.key"
        certificate.write_bytes(secret["tls.crt"])
        key.write_bytes(secret["tls.key"])
        context.load_cert_chain(certificate, key)
    return context


def has_partners(domain: Domain) -> bool:
    """Whether the domain's DCs have replication partners: another of its DCs, or the DCs of the domain it joined."""
    return domain.directory.replicas > 1 or domain.directory.join_server is not None


def asked_dcs(domain: Domain) -> tuple[str, ...]:
    """The DCs a replication check of `domain` asks now."""
    if not has_partners(domain):
        return ()
    return tuple(naming.dc_hostname(domain, index) for index in range(domain.directory.replicas))


def current_check(domain: Domain, replication: Replication | None) -> Check:
    """The last check while it asked the domain's DCs of now; Unknown before any, and once they changed."""
    if replication is None:
        return Check(None, "NotReported", "not reported yet")
    if replication.dcs != asked_dcs(domain):
        return Check(None, "NotReported", f"not asked yet: {name_list(list(asked_dcs(domain)))}")
    return replication.check


def ask_now(domain: Domain, last: Replication | None, seconds_since_asked: float) -> bool:
    """Whether the timer asks the DCs at this tick: nothing known yet, other DCs than those it asked, replication
    not healthy (a recovery shows early), or a minute since it asked."""
    if last is None or last.dcs != asked_dcs(domain) or last.check.ready is not True:
        return True
    return seconds_since_asked >= ASK_HEALTHY_S


def replication_check(domain: Domain, reports: Mapping[str, dict[str, Any] | None]) -> Check:
    """One Check from each DC's /replication answer (None: it did not answer)."""
    if not has_partners(domain):
        return Check(True, "SingleDomainController", "one domain controller: nothing to replicate")
    failing = []
    for dc, report in reports.items():
        for link in (report or {}).get("failing") or []:
            failing.append(
                f"{dc} {link.get('direction', '?')} {link.get('partner', '?')}: "
                f"{link.get('failures', '?')} failures, {str(link.get('message', ''))[:120]}"
            )
    if failing:
        return Check(False, "ReplicationFailing", "failing links: " + name_list(failing))
    unknown = [
        f"{dc} ({(report or {}).get('error') or ('no answer' if not report else 'not checked yet')})"
        for dc, report in reports.items()
        if not report or report.get("healthy") is None
    ]
    if unknown:
        return Check(None, "NotReported", f"no replication report from {name_list(unknown)}")
    return Check(True, "Replicating", f"all {len(reports)} domain controllers replicate without failures")


async def _fetch(session: aiohttp.ClientSession, url: str, context: ssl.SSLContext) -> dict[str, Any] | None:
    try:
        async with session.get(url, ssl=context) as response:
            if response.status != 200:
                return None
            return await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError):
        return None


async def read_reports(urls: Mapping[str, str], context: ssl.SSLContext) -> dict[str, dict[str, Any] | None]:
    """{DC: its /replication answer, or None when it gave none}, asking all at once."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        answers = await asyncio.gather(*(_fetch(session, url, context) for url in urls.values()))
    return dict(zip(urls, answers, strict=True))


async def poll_replication(domain: Domain, config: OperatorConfig, api: KubeApi) -> Replication:
    """Ask every DC of the domain, at once, and reduce the answers."""
    dcs = asked_dcs(domain)
    return Replication(dcs, await _check(domain, config, api, dcs))


async def _check(domain: Domain, config: OperatorConfig, api: KubeApi, dcs: tuple[str, ...]) -> Check:
    if not dcs:
        return replication_check(domain, {})
    try:
        secret = await api.secret_data(naming.monitoring_tls(domain), domain.namespace)
    except KubeError as error:
        return Check(None, "NotReported", f"the monitoring certificate cannot be read: {error}")
    if not secret or not {"ca.crt", "tls.crt", "tls.key"} <= secret.keys():
        return Check(None, "NotReported", f"waiting for the monitoring certificate ({naming.monitoring_tls(domain)})")
    urls = {name: dc_health_url(domain, config, index) for index, name in enumerate(dcs)}
    return replication_check(domain, await read_reports(urls, monitoring_client_context(secret)))
