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
  volumes stay unless deletionPolicy is Delete (`on_domain_deleted`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from . import naming
from .children import WATCHED_KINDS, ChildSummary, summarize
from .domain import GROUP, PLURAL, VERSION, Domain
from .observability import (
    CHILDREN_WRITTEN,
    DOMAINS,
    RECONCILE_SECONDS,
    RECONCILES,
    SECRETS_GENERATED,
)
from .reconcile import reconcile

# Watch requests end after this long on the server side, and the client gives up a little later; without
# both, a watch can hang silently forever and the operator goes blind (kopf has no default).
WATCH_SERVER_TIMEOUT_S = 300
WATCH_CLIENT_TIMEOUT_S = 330
# After a wake-up, wait this long so a burst of child events becomes one reconciliation.
SETTLE_S = 0.2
# Retry delays after a failed reconciliation: doubling from the first to the last.
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 300.0
FINALIZER = f"{GROUP}/operator"
INDEX_PREFIX = "children_"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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


def _domain_key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    return namespace, labels.get(naming.INSTANCE_LABEL)


def _index_child(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_domain_key(namespace, labels): summarize(body)}


def _wake_owner(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    wakeup = memo.wakeups.get(_domain_key(namespace, labels))
    if wakeup is not None:
        wakeup.set()


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
    wakeup = memo.wakeups.get((namespace, name))
    if wakeup is not None:
        wakeup.set()


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
            failed = await _reconcile_once(body, observed_children(kwargs, namespace, name), memo, logger)
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
    body: kopf.Body, children: list[ChildSummary], memo: kopf.Memo, logger: logging.Logger
) -> bool:
    """One reconciliation with its Events, logs and metrics; True when it failed."""
    started = time.monotonic()
    try:
        result = await reconcile(body, children, memo.api, memo.config)
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
    for event_type, reason, message in result.events:
        kopf.event(body, type=event_type, reason=reason, message=message)
        (logger.warning if event_type == "Warning" else logger.info)(f"{reason}: {message}")
    return result.error is not None


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def on_domain_deleted(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Children go with the domain (owner references); under Delete, also what garbage collection misses."""
    domain = Domain.from_body(body)
    if domain.delete_data:
        await memo.api.delete_leftovers(domain)
        logger.info("deletionPolicy Delete: removed the domain's certificates and secrets; its volumes follow")
    else:
        logger.info("deletionPolicy Retain: the volumes and the secrets that unlock them are kept")
