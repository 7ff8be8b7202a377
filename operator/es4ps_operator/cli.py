"""`python -m es4ps_operator` (or `es4ps-operator`): run the operator in the foreground.

    python -m es4ps_operator            run (configuration from the environment, see config.py)
    python -m es4ps_operator --version  print the version

It serves /healthz and /metrics at once, waits for the leader Lease, then runs
kopf over every namespace until SIGTERM/SIGINT or until the Lease is lost
(exit status 1, so Kubernetes restarts the Pod as a waiting replica).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import uuid
from typing import Any

import kopf
from es4ps_contract.environment import SettingError

from . import backup_handlers, handlers, naming  # noqa: F401  (registers the kopf handlers)
from .children import WATCHED_KINDS
from .config import OperatorConfig, operator_version
from .domain import GROUP
from .kube import KubeApi
from .leader import LeaderElector
from .observability import LEADER, start_http_server

logger = logging.getLogger("es4ps_operator")
LEASE_NAME = "es4ps-operator"
# Watch requests end after this long on the server side, and the client gives up a little later; without
# both, a watch can hang silently forever and the operator goes blind (kopf has no default).
WATCH_SERVER_TIMEOUT_S = 300
WATCH_CLIENT_TIMEOUT_S = 330
FINALIZER = f"{GROUP}/operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's settings: watch timeouts, our finalizer and annotations, which children are watched."""
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_S
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_S
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.persistence.finalizer = FINALIZER
    # kopf's bookkeeping lives in annotations under our group, not in the status the users read.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events are posted explicitly for meaningful steps; log lines below WARNING do not become Events.
    settings.posting.level = logging.WARNING
    for kind in WATCHED_KINDS.values():
        settings.watching.label_selectors[kind.api_version, kind.plural] = naming.MANAGED_BY_SELECTOR
    if memo.config.namespaces:
        # Namespaced rights only: no watching of CRDs or namespaces across the cluster, the fixed
        # list of namespaces is served (discovery of the resources needs no rights).
        settings.scanning.disabled = True


async def run(config: OperatorConfig) -> int:
    """Run until stopped; the exit status is 1 when leadership was lost."""
    # SIGTERM/SIGINT end the wait for the Lease; once kopf runs, kopf handles them itself.
    waiting_stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, waiting_stopped.set)
    http = await start_http_server(config.http_port)
    api = KubeApi.from_environment()
    elector: LeaderElector | None = None
    holder: asyncio.Task | None = None
    try:
        if config.leader_election:
            # A fresh suffix: a restarted process must not mistake the Lease of its predecessor for its own.
            identity = f"{config.identity}_{uuid.uuid4().hex[:8]}"
            elector = LeaderElector(
                api.client, config.leader_election_namespace, LEASE_NAME, identity, config.lease_seconds
            )
            if not await elector.acquire(waiting_stopped):
                return 0
            holder = asyncio.create_task(elector.hold(), name="leader lease")
        LEADER.set(1)
        if config.cluster_dns_ip is None:
            config = dataclasses.replace(config, cluster_dns_ip=await api.cluster_dns_ip())
        memo = kopf.Memo(api=api, config=config, wakeups={}, replication={}, replication_asked={})
        scope = {"namespaces": config.namespaces} if config.namespaces else {"clusterwide": True}
        operator = asyncio.create_task(kopf.operator(standalone=True, memo=memo, **scope), name="kopf")
        if holder is not None:
            # Leadership lost: stop working at once (kopf stops gracefully when cancelled).
            holder.add_done_callback(lambda _: operator.cancel())
        with contextlib.suppress(asyncio.CancelledError):
            await operator
        return 1 if holder is not None and holder.done() and not holder.cancelled() else 0
    finally:
        LEADER.set(0)
        if holder is not None and not holder.done():
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
            await elector.release()
        await api.close()
        await http.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="es4ps-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"es4ps-operator {operator_version()}")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    try:
        config = OperatorConfig.from_env()
    except SettingError as error:
        sys.exit(f"es4ps-operator: {error}")
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN,
        log_refkey="object",
    )
    # Every API request, and kopf's "Handler 'wake_on_...' succeeded" for every watch event, at INFO
    # would drown the operator's own messages.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(lambda record: not record.getMessage().startswith("Handler 'wake_on_"))
    logger.info("es4ps-operator %s starting as %s", operator_version(), config.identity)
    sys.exit(asyncio.run(run(config)))
