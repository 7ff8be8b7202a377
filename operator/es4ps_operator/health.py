"""Replication health of a domain, as its DCs report it on their health endpoints.

Each DC's entrypoint serves /replication (es4ps_samba.dc.health) on its own
address; a timer of the operator asks every DC of a domain once a minute and
reduces the answers to one Check for the ReplicationHealthy condition: False
naming the failing links when a DC reports one, Unknown while a DC does not
answer, True when every DC reports none. A domain of one DC has nothing to
replicate: True.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from . import naming
from .config import OperatorConfig
from .domain import Domain
from .status import Check, name_list

TIMEOUT_S = 5


def dc_health_url(domain: Domain, config: OperatorConfig, index: int) -> str:
    """The health endpoint of DC `index`, through its headless Service (the Pod's address, or its node's)."""
    host = f"{naming.dc(domain, index)}.{domain.namespace}.svc.{config.cluster_domain}"
    return f"http://{host}:{naming.DC_HEALTH_PORT}/replication"


def replication_check(domain: Domain, reports: Mapping[str, dict[str, Any] | None]) -> Check:
    """One Check from each DC's /replication answer (None: it did not answer)."""
    if domain.directory.replicas == 1:
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


async def _fetch(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return None
            return await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def poll_replication(domain: Domain, config: OperatorConfig) -> Check:
    """Ask every DC of the domain, at once, and reduce the answers."""
    if domain.directory.replicas == 1:
        return replication_check(domain, {})
    indexes = range(domain.directory.replicas)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answers = await asyncio.gather(*(_fetch(session, dc_health_url(domain, config, i)) for i in indexes))
    return replication_check(domain, {naming.dc_hostname(domain, i): a for i, a in zip(indexes, answers, strict=True)})
