"""The one module that writes to the Kubernetes API (kopf only watches and posts events).

Children are written with server-side apply under the field manager
"es4ps-operator", forced, so whatever someone else changed in the fields the
operator owns is set back. Generated Secrets are created, never applied, so
their values are never overwritten.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import LimitRange, PersistentVolumeClaim, Pod, Secret, Service
from lightkube.types import CascadeType, PatchType

from . import naming
from .builders.common import Manifest
from .domain import BACKUP_KIND, BACKUP_PLURAL, GROUP, KIND, PLURAL, VERSION, Domain

logger = logging.getLogger(__name__)

ES4PSDomain = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
ES4PSBackup = create_namespaced_resource(GROUP, VERSION, BACKUP_KIND, BACKUP_PLURAL)
Certificate = create_namespaced_resource("cert-manager.io", "v1", "Certificate", "certificates")
Issuer = create_namespaced_resource("cert-manager.io", "v1", "Issuer", "issuers")
# The Prometheus Operator's kinds: written only where the cluster serves them (spec.monitoring).
MONITORING_KINDS = (
    create_namespaced_resource("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
    create_namespaced_resource("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
)


@dataclasses.dataclass(frozen=True)
class StepEnd:
    """How one container of a Job's Pod ended: its name, exit code and termination message."""

    container: str
    exit_code: int
    message: str


class KubeError(RuntimeError):
    """A request failed; the message names the object and the API server's reason, never a secret value."""


def _describe(error: ApiError) -> str:
    status = error.status
    return f"{status.code} {status.reason or ''}: {status.message or ''}".strip()


class KubeApi:
    """Requests the operator makes, each idempotent."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    def from_environment(cls) -> KubeApi:
        """A client for the in-cluster service account, or KUBECONFIG, or ~/.kube/config."""
        return cls(AsyncClient(KubeConfig.from_env(), field_manager=naming.FIELD_MANAGER))

    async def close(self) -> None:
        await self.client.close()

    async def apply(self, manifest: Manifest) -> None:
        """Create or converge one child with server-side apply."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        resource = resource_registry.load(manifest["apiVersion"], kind)
        try:
            await self.client.patch(
                resource,
                name,
                manifest,
                namespace=manifest["metadata"]["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=naming.FIELD_MANAGER,
                force=True,
            )
        except ApiError as error:
            raise KubeError(f"applying {kind} {name} failed: {_describe(error)}") from None

    async def create_once(self, manifest: Manifest) -> bool:
        """Create an object that is never applied over (a generated Secret, a volume); False when it exists.

        Its content is then kept as it is: a Secret's values, a claim's data.
        """
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        try:
            await self.client.create(from_dict(manifest))
        except ApiError as error:
            if error.status.code == 409:
                return False
            # Never the error's body: it could quote the object.
            raise KubeError(f"creating {kind} {name} failed: {error.status.code} {error.status.reason or ''}") from None
        return True

    async def claims_being_deleted(self, namespace: str, names: list[str]) -> list[str]:
        """Those of the named PersistentVolumeClaims that exist and are being deleted."""
        found = []
        for name in names:
            try:
                claim = await self.client.get(PersistentVolumeClaim, name, namespace=namespace)
            except ApiError as error:
                if error.status.code == 404:
                    continue
                raise KubeError(f"reading PersistentVolumeClaim {name} failed: {_describe(error)}") from None
            if claim.metadata.deletionTimestamp:
                found.append(name)
        return found

    async def domain_pods(self, domain: Domain) -> list[dict[str, Any]]:
        """The domain's Pods (of its StatefulSets and Jobs), as the API server returns them."""
        labels = {naming.INSTANCE_LABEL: domain.name, naming.MANAGED_BY_LABEL: naming.FIELD_MANAGER}
        try:
            return [pod.to_dict() async for pod in self.client.list(Pod, namespace=domain.namespace, labels=labels)]
        except ApiError as error:
            raise KubeError(f"listing the Pods of {domain.name} failed: {_describe(error)}") from None

    async def list_limit_ranges(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's LimitRanges (what the API server will hold a Pod's resources to)."""
        try:
            return [item.to_dict() async for item in self.client.list(LimitRange, namespace=namespace)]
        except ApiError as error:
            raise KubeError(f"listing the LimitRanges of {namespace} failed: {_describe(error)}") from None

    async def set_owner_references(self, name: str, namespace: str, owner_references: list[dict] | None) -> None:
        """Set (or with None remove) the owner references of a generated Secret without touching its data."""
        patch = {"metadata": {"ownerReferences": owner_references}}
        try:
            await self.client.patch(Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        except ApiError as error:
            raise KubeError(f"updating the owner of Secret {name} failed: {_describe(error)}") from None

    async def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        """Delete a child; one that is already gone is fine."""
        await self._delete(resource_registry.load(api_version, kind), name, namespace)

    async def _delete(self, resource: type, name: str, namespace: str) -> None:
        try:
            # In the background with what it owns: a Job deleted without would leave its Pods (batch/v1's
            # default), and a Pod, even one that ended, keeps the claims it names from being deleted.
            await self.client.delete(resource, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as error:
            if error.status.code != 404:
                raise KubeError(f"deleting {resource.__name__} {name} failed: {_describe(error)}") from None

    async def list_monitoring(self, domain: Domain) -> list[dict[str, Any]] | None:
        """The domain's PodMonitors and PrometheusRules, or None when the cluster does not serve those kinds."""
        selector = {naming.INSTANCE_LABEL: domain.name, naming.MANAGED_BY_LABEL: naming.FIELD_MANAGER}
        found: list[dict[str, Any]] = []
        for resource in MONITORING_KINDS:
            try:
                async for item in self.client.list(resource, namespace=domain.namespace, labels=selector):
                    found.append({**item.to_dict(), "kind": resource._api_info.resource.kind})
            except ApiError as error:
                if error.status.code == 404:
                    return None
                raise KubeError(f"listing {resource.__name__}s failed: {_describe(error)}") from None
            except httpx2.HTTPStatusError as error:
                # An API group the server does not serve answers a plain-text 404, which lightkube leaves as is.
                if error.response.status_code == 404:
                    return None
                raise KubeError(f"listing {resource.__name__}s failed: HTTP {error.response.status_code}") from None
        return found

    async def patch_domain_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Write the status subresource (a merge patch: conditions are replaced as a whole)."""
        try:
            await self.client.patch(
                ES4PSDomain.Status, name, {"status": dict(status)}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as error:
            if error.status.code != 404:  # the domain was deleted meanwhile
                raise KubeError(f"writing the status of ES4PSDomain {name} failed: {_describe(error)}") from None

    # --- backups ---------------------------------------------------------------------------------

    async def patch_backup_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await self.client.patch(
                ES4PSBackup.Status, name, {"status": dict(status)}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as error:
            if error.status.code != 404:
                raise KubeError(f"writing the status of ES4PSBackup {name} failed: {_describe(error)}") from None

    async def delete_backup(self, namespace: str, name: str) -> None:
        await self._delete(ES4PSBackup, name, namespace)

    async def get_domain(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            domain = await self.client.get(ES4PSDomain, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise KubeError(f"reading ES4PSDomain {name} failed: {_describe(error)}") from None
        return domain.to_dict()

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await self.client.get(resource_registry.load("batch/v1", "Job"), name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise KubeError(f"reading Job {name} failed: {_describe(error)}") from None
        return job.to_dict()

    async def step_ends(self, namespace: str, job: str) -> list[StepEnd]:
        """How the containers of a Job's Pods ended (newest Pod first, its steps in order)."""
        return await self.pod_ends(namespace, {"job-name": job})

    async def pod_ends(self, namespace: str, labels: Mapping[str, str]) -> list[StepEnd]:
        """How the containers of the Pods with `labels` ended: their run, or the one before a restart (newest
        Pod first, containers in order)."""
        ends = []
        try:
            pods = [pod async for pod in self.client.list(Pod, namespace=namespace, labels=dict(labels))]
        except ApiError as error:
            raise KubeError(f"listing the Pods labelled {dict(labels)} failed: {_describe(error)}") from None
        pods.sort(key=lambda pod: pod.metadata.creationTimestamp, reverse=True)
        for pod in pods:
            statuses = [*(pod.status.initContainerStatuses or []), *(pod.status.containerStatuses or [])]
            for container in statuses:
                for state in (container.state, container.lastState):
                    terminated = state.terminated if state else None
                    if terminated is not None:
                        ends.append(StepEnd(container.name, terminated.exitCode, terminated.message or ""))
                        break
        return ends

    async def delete_leftovers(self, domain: Domain) -> None:
        """Under deletionPolicy Delete: remove what garbage collection would leave behind.

        cert-manager does not make its Secrets children of their Certificates,
        so the Certificates go first (or cert-manager would issue them again),
        then every Secret of the domain but its backups' keys: the backups outlive
        the domain, and a domain restored from one needs the keys to read it and
        to trust it.
        """
        selector = {naming.INSTANCE_LABEL: domain.name, naming.PART_OF_LABEL: naming.PART_OF}
        kept = {naming.backup_key_secret(domain), naming.backup_signing_secret(domain)}
        try:
            for resource in (Certificate, Secret):
                async for item in self.client.list(resource, namespace=domain.namespace, labels=selector):
                    if resource is Secret and item.metadata.name in kept:
                        continue
                    await self._delete(resource, item.metadata.name, domain.namespace)
        except ApiError as error:
            raise KubeError(f"cleaning up the domain's certificates and secrets failed: {_describe(error)}") from None

    async def secret_data(self, name: str, namespace: str) -> dict[str, bytes] | None:
        """A Secret's values (None while it does not exist), read with the right to list Secrets only."""
        try:
            async for secret in self.client.list(Secret, namespace=namespace, fields={"metadata.name": name}):
                return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
        except ApiError as error:
            raise KubeError(f"reading Secret {name} failed: {_describe(error)}") from None
        return None

    async def cluster_dns_ip(self) -> str | None:
        """The cluster DNS Service's address (kube-system/kube-dns), or None when there is none or it is hidden."""
        try:
            service = await self.client.get(Service, "kube-dns", namespace="kube-system")
        except ApiError as error:
            logger.info("no cluster DNS service found (%s); DCs resolve through themselves only", _describe(error))
            return None
        ip = service.spec.clusterIP
        return ip if ip and ip != "None" else None
