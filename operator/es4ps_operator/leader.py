"""Leader election with a coordination.k8s.io Lease: one replica works, the others wait.

Why a Lease rather than kopf's peering: peering pauses every operator when two
have the same priority, and the replicas of one Deployment all do; a Lease is
the standard Kubernetes mechanism (client-go's leader election works the same
way), needs no extra CRD and `kubectl get lease` shows who leads.

The rules, as in client-go: the holder renews the Lease every `renew_seconds`;
another replica takes it over only when it has seen the same record unchanged
for `lease_seconds` on its own clock (so clocks need not agree). Every write
carries the resourceVersion it read, so two replicas can never both win. A
leader that cannot renew for `lease_seconds` stops working before anyone else
may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time

from lightkube import ApiError, AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.types import PatchType

logger = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 30,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        # The holder renews three times per lease; a waiting replica looks six times.
        self.renew_seconds = lease_seconds / 3
        self.retry_seconds = lease_seconds / 6
        # The other holder's record as last seen, and when (monotonic) it was first seen like that.
        self._observed: tuple[str | None, object] | None = None
        self._observed_at = 0.0
        self._last_renewal = 0.0
        # Who else holds the Lease, as last read (None: nobody or this replica).
        self.other_holder: str | None = None
        # The Lease's version after this replica's last write: renewing needs no read while it holds.
        self._resource_version: str | None = None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or `stop` is set (False)."""
        logger.info("waiting to lead: Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not stop.is_set():
            if await self._try_acquire_or_renew():
                logger.info("leading: Lease %s/%s", self.namespace, self.name)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_seconds)
        return False

    async def hold(self) -> None:
        """Renew the Lease until it cannot be renewed for `lease_seconds`; then return (leadership lost)."""
        while True:
            await asyncio.sleep(self.renew_seconds)
            if await self._try_acquire_or_renew():
                continue
            if self.other_holder or time.monotonic() - self._last_renewal >= self.lease_seconds - self.renew_seconds:
                logger.error(
                    "lost the Lease %s/%s (holder: %s): stopping",
                    self.namespace,
                    self.name,
                    self.other_holder or "unknown",
                )
                return

    async def release(self) -> None:
        """Hand the Lease over at once (on a clean shutdown) so a waiting replica need not wait for it to expire."""
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec.holderIdentity != self.identity:
                return
            patch = {
                "metadata": {"resourceVersion": lease.metadata.resourceVersion},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _micro_time()},
            }
            await self.client.patch(Lease, self.name, patch, namespace=self.namespace, patch_type=PatchType.MERGE)
            logger.info("released the Lease %s/%s", self.namespace, self.name)
        except ApiError as error:
            logger.warning("could not release the Lease: %s", error.status.message)

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._acquire_or_renew()
        except ApiError as error:
            if error.status.code != 409:  # 409: another replica wrote first, which is normal
                logger.warning("Lease %s/%s: %s", self.namespace, self.name, error.status.message)
            return False
        except OSError as error:  # the API server is unreachable
            logger.warning("Lease %s/%s: %s", self.namespace, self.name, error)
            return False

    async def _acquire_or_renew(self) -> bool:
        now = _micro_time()
        if self._resource_version is not None:
            # The holder renews with one conditional write on the version it wrote last.
            patch = {"metadata": {"resourceVersion": self._resource_version}, "spec": {"renewTime": now}}
            try:
                lease = await self.client.patch(
                    Lease, self.name, patch, namespace=self.namespace, patch_type=PatchType.MERGE
                )
            except ApiError as error:
                self._resource_version = None
                if error.status.code not in (404, 409):
                    raise
            else:
                self._renewed(lease)
                return True
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            lease = await self.client.create(
                Lease(
                    metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                    spec=LeaseSpec(
                        holderIdentity=self.identity,
                        leaseDurationSeconds=self.lease_seconds,
                        acquireTime=now,
                        renewTime=now,
                        leaseTransitions=0,
                    ),
                )
            )
            self._renewed(lease)
            return True

        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity
        self.other_holder = holder if holder != self.identity else None
        if holder and holder != self.identity:
            record = (holder, spec.renewTime)
            if record != self._observed:
                self._observed, self._observed_at = record, time.monotonic()
                return False
            if time.monotonic() - self._observed_at < (spec.leaseDurationSeconds or self.lease_seconds):
                return False
            logger.info("the Lease of %s expired: taking over", holder)
        taking_over = holder != self.identity
        patch_spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds, "renewTime": now}
        if taking_over:
            patch_spec |= {"acquireTime": now, "leaseTransitions": (spec.leaseTransitions or 0) + 1}
        # The resourceVersion makes the write conditional: it fails (409) if anyone wrote since the read.
        patch = {"metadata": {"resourceVersion": lease.metadata.resourceVersion}, "spec": patch_spec}
        self._renewed(
            await self.client.patch(Lease, self.name, patch, namespace=self.namespace, patch_type=PatchType.MERGE)
        )
        return True

    def _renewed(self, lease: Lease) -> None:
        self._resource_version = lease.metadata.resourceVersion
        self._last_renewal = time.monotonic()
        self.other_holder = None
