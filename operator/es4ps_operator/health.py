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
"""

from __future__ import annotations

import asyncio
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


async def poll_replication(domain: Domain, config: OperatorConfig, api: KubeApi) -> Check:
    """Ask every DC of the domain, at once, and reduce the answers."""
    if not has_partners(domain):
        return replication_check(domain, {})
    try:
        secret = await api.secret_data(naming.monitoring_tls(domain), domain.namespace)
    except KubeError as error:
        return Check(None, "NotReported", f"the monitoring certificate cannot be read: {error}")
    if not secret or not {"ca.crt", "tls.crt", "tls.key"} <= secret.keys():
        return Check(None, "NotReported", f"waiting for the monitoring certificate ({naming.monitoring_tls(domain)})")
    urls = {naming.dc_hostname(domain, i): dc_health_url(domain, config, i) for i in range(domain.directory.replicas)}
    return replication_check(domain, await read_reports(urls, monitoring_client_context(secret)))
