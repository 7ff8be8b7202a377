"""The kopf handlers: thin glue between watch events and `reconcile`.

How a domain is kept converged:

- each ES4PSDomain gets a daemon (`run_domain`): a loop that reconciles the
  domain, then sleeps until something about it changes (or `resync_seconds`
  pass), and reconciles again;
- the operator watches every kind of child it writes (server-side label
  selector app.kubernetes.io/managed-by=es4ps-operator), keeps a summary of
  each in an in-memory index, and any event on a child or on the domain wakes
  that domain's loop, so status follows the children at once and a deleted
  or edited child is put back;
- on deletion, the children go with the domain (owner references) and the
  volumes stay unless deletionPolicy is Delete (`on_domain_deleted`);
- a timer per domain asks its DCs for their replication health (`watch_domain`);
- backups have their handlers in `backup_handlers`.

The decisions are elsewhere (`reconcile`): these handlers post what it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from . import naming
from .backups.rules import BackupSummary
from .children import WATCHED_KINDS, ChildSummary, summarize
from .domain import GROUP, PLURAL, VERSION, Domain, SpecError
from .health import ask_now, poll_replication
from .observability import CHILDREN_WRITTEN, DOMAINS, LAST_BACKUP, RECONCILE_SECONDS, RECONCILES, SECRETS_GENERATED
from .reconcile import reconcile

# After a wake-up, wait this long so a burst of child events becomes one reconciliation.
SETTLE_S = 0.2
# Retry delays after a failed reconciliation: doubling from the first to the last.
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 300.0
INDEX_PREFIX = "children_"
BACKUPS_INDEX = "es4ps_backups"
# How often a domain's timer ticks: when its DCs are asked for their replication health is health.ask_now's.
WATCH_INTERVAL_S = 15.0


def _index_child(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels.get(naming.INSTANCE_LABEL)): summarize(body)}


def _wake_owner(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    wake(memo, namespace, labels.get(naming.INSTANCE_LABEL))


# One index and one wake-up handler per watched kind (kopf names each index by its id).
for _kind in WATCHED_KINDS.values():
    _labels = {naming.MANAGED_BY_LABEL: naming.FIELD_MANAGER}
    kopf.index(_kind.api_version, _kind.plural, id=INDEX_PREFIX + _kind.plural, labels=_labels)(_index_child)
    kopf.on.event(_kind.api_version, _kind.plural, id=f"wake_on_{_kind.plural}", labels=_labels)(_wake_owner)


def observed_children(indices: Mapping[str, Any], namespace: str, name: str) -> list[ChildSummary]:
    """Every indexed child of one domain, from all the per-kind indices."""
    key = (namespace, name)
    return [
        child
        for index_id, index in indices.items()
        if index_id.startswith(INDEX_PREFIX)
        for child in index.get(key, ())
    ]


@kopf.on.event(GROUP, VERSION, PLURAL)
def wake_on_domain(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    wake(memo, namespace, name)


def wake(memo: kopf.Memo, namespace: str | None, name: str | None) -> None:
    """Wake one domain's reconciliation loop (if it runs)."""
    wakeup = memo.wakeups.get((namespace, name))
    if wakeup is not None:
        wakeup.set()


def all_backups(indices: Mapping[str, Any]) -> list[BackupSummary]:
    """Every ES4PSBackup the operator sees (backup_handlers.index_backup fills the index)."""
    return [backup for summaries in indices.get(BACKUPS_INDEX, {}).values() for backup in summaries]


# Cancelled at once on deletion or shutdown (every step is idempotent), then given 5 s to finish.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_domain(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """Reconcile one domain whenever it or one of its children changes, for as long as it exists."""
    wakeup = memo.wakeups.setdefault((namespace, name), asyncio.Event())
    retry_s = RETRY_FIRST_S
    DOMAINS.inc()
    try:
        while True:
            wakeup.clear()
            children = observed_children(kwargs, namespace, name)
            failed = await _reconcile_once(body, children, all_backups(kwargs), memo, logger)
            delay = retry_s if failed else memo.config.resync_seconds
            retry_s = min(retry_s * 2, RETRY_MAX_S) if failed else RETRY_FIRST_S
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=delay)
                await asyncio.sleep(SETTLE_S)
            except TimeoutError:
                pass
    finally:
        DOMAINS.dec()
        if memo.wakeups.get((namespace, name)) is wakeup:
            del memo.wakeups[(namespace, name)]


async def _reconcile_once(
    body: kopf.Body,
    children: list[ChildSummary],
    backups: list[BackupSummary],
    memo: kopf.Memo,
    logger: logging.Logger,
) -> bool:
    """One reconciliation with its Events, logs and metrics; True when it failed or waits (retry soon)."""
    started = time.monotonic()
    replication = memo.replication.get((body["metadata"]["namespace"], body["metadata"]["name"]))
    try:
        result = await reconcile(body, children, memo.api, memo.config, backups, replication)
    except Exception as error:  # a bug or an unexpected API answer: report it, retry later
        RECONCILES.labels(result="error").inc()
        logger.exception("reconciliation failed")
        kopf.warn(body, reason="ReconcileError", message=f"{type(error).__name__}: {error}"[:1000])
        return True
    finally:
        RECONCILE_SECONDS.observe(time.monotonic() - started)
    RECONCILES.labels(result="error" if result.error else "success").inc()
    for action in ("created", "updated", "restored", "pruned"):
        CHILDREN_WRITTEN.labels(action=action).inc(len(getattr(result, action)))
    SECRETS_GENERATED.inc(len(result.generated_secrets))
    labels = (body["metadata"]["namespace"], body["metadata"]["name"])
    if result.last_backup is None:
        with contextlib.suppress(KeyError):
            LAST_BACKUP.remove(*labels)
    else:
        LAST_BACKUP.labels(*labels).set(result.last_backup.timestamp())
    post_events(body, logger, result.events)
    return result.error is not None or result.waiting


def post_events(body: kopf.Body, logger: logging.Logger, events: list[tuple[str, str, str]]) -> None:
    """Kubernetes Events (type, reason, message) on the object, and the same as log lines."""
    for event_type, reason, message in events:
        kopf.event(body, type=event_type, reason=reason, message=message)
        (logger.warning if event_type == "Warning" else logger.info)(f"{reason}: {message}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def on_domain_deleted(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Children go with the domain (owner references); under Delete, also what garbage collection misses."""
    domain = Domain.from_body(body)
    if domain.delete_data:
        await memo.api.delete_leftovers(domain)
        logger.info("deletionPolicy Delete: removed the domain's certificates and secrets; its volumes follow")
    else:
        logger.info("deletionPolicy Retain: the volumes and the secrets that unlock them are kept")


# --- a timer per domain: replication health ------------------------------------------------------


@kopf.timer(GROUP, VERSION, PLURAL, interval=WATCH_INTERVAL_S, initial_delay=10.0)
async def watch_domain(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """Ask the DCs how replication goes; a change wakes the domain's reconciliation."""
    try:
        domain = Domain.from_body(body)
    except SpecError:
        return
    if domain.directory.external is not None:  # no DC of ours to ask
        return
    key = (namespace, name)
    last = memo.replication.get(key)
    if ask_now(domain, last, time.monotonic() - memo.replication_asked.get(key, 0.0)):
        memo.replication_asked[key] = time.monotonic()
        replication = await poll_replication(domain, memo.config, memo.api)
        if last != replication:
            memo.replication[key] = replication
            wake(memo, namespace, name)
