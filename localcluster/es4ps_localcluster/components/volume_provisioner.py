"""A small dynamic volume provisioner for the local cluster (what kind's local-path provisioner does).

The local cluster has no storage system, yet the operator's StatefulSets claim
volumes. This process, started by the cluster with the admin kubeconfig, serves the default
StorageClass `local`: each pending claim of that class gets a hostPath
PersistentVolume in a folder under the cluster's state (world-writable, since
hostPath volumes ignore fsGroup and the product's containers run as their own
users); a volume whose claim is gone (reclaim policy Delete) is deleted with
its folder. On KWOK nodes nothing mounts the folders; on the real node the
kubelet does.

With several real nodes (`--node-local`) a volume belongs to one node, as a
real local volume does: the class binds when the first Pod is scheduled
(`WaitForFirstConsumer`), the volume is made for the node the scheduler chose
(the claim's `volume.kubernetes.io/selected-node`), under
`VOLUMES_DIR/<node>/`, with a node affinity to it. A Pod of that claim then
runs on that node only: if the node is lost, so is the volume for the cluster.

    python -m es4ps_localcluster.components.volume_provisioner KUBECONFIG VOLUMES_DIR [--node-local]
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.core_v1 import (
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectReference,
    PersistentVolumeSpec,
    VolumeNodeAffinity,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass

from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster

PROVISIONER = "localcluster.local/local-path"
STORAGE_CLASS = "local"
INTERVAL_S = 1.0
SELECTED_NODE = "volume.kubernetes.io/selected-node"  # written on a claim by the scheduler

log = logging.getLogger("volume-provisioner")


def storage_class(node_local: bool = False) -> StorageClass:
    return StorageClass(
        metadata=ObjectMeta(name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        provisioner=PROVISIONER,
        reclaimPolicy="Delete",
        volumeBindingMode="WaitForFirstConsumer" if node_local else "Immediate",
    )


class Provisioner:
    def __init__(self, client: Client, volumes: Path, node_local: bool = False) -> None:
        self.client = client
        self.volumes = volumes
        self.node_local = node_local

    def run_once(self) -> None:
        for claim in self.client.list(PersistentVolumeClaim, namespace="*"):
            if (
                (claim.status is None or claim.status.phase == "Pending")
                and not claim.spec.volumeName
                and claim.spec.storageClassName == STORAGE_CLASS
                and (not self.node_local or SELECTED_NODE in (claim.metadata.annotations or {}))
            ):
                self.provision(claim)
        for volume in self.client.list(PersistentVolume, labels={"localcluster.local/provisioned-by": "local-path"}):
            if volume.status is not None and volume.status.phase in ("Released", "Failed"):
                self.delete(volume)

    def provision(self, claim: PersistentVolumeClaim) -> None:
        meta = claim.metadata
        name = f"pvc-{meta.uid}"
        node = (meta.annotations or {}).get(SELECTED_NODE) if self.node_local else None
        folder = self.volumes / node / name if node else self.volumes / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        volume = PersistentVolume(
            metadata=ObjectMeta(
                name=name,
                labels={"localcluster.local/provisioned-by": "local-path"},
                annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER},
            ),
            spec=PersistentVolumeSpec(
                capacity={"storage": claim.spec.resources.requests["storage"]},
                accessModes=claim.spec.accessModes,
                hostPath={"path": str(folder), "type": "DirectoryOrCreate"},
                persistentVolumeReclaimPolicy="Delete",
                storageClassName=STORAGE_CLASS,
                claimRef=ObjectReference(namespace=meta.namespace, name=meta.name, uid=meta.uid),
                nodeAffinity=on_node(node) if node else None,
            ),
        )
        try:
            self.client.create(volume)
            log.info("provisioned %s for %s/%s", name, meta.namespace, meta.name)
        except ApiError as error:
            if error.status.code != 409:  # 409: made in an earlier round, binding under way
                raise

    def delete(self, volume: PersistentVolume) -> None:
        name = volume.metadata.name
        with contextlib.suppress(ApiError):
            self.client.delete(PersistentVolume, name)
        folder = Path(volume.spec.hostPath.path)
        if self.volumes in folder.parents:  # only what this provisioner made
            shutil.rmtree(folder, ignore_errors=True)
        log.info("deleted %s (its claim is gone)", name)


def on_node(node: str) -> VolumeNodeAffinity:
    """A volume's affinity to the node its folder is on."""
    requirement = NodeSelectorRequirement(key="kubernetes.io/hostname", operator="In", values=[node])
    term = NodeSelectorTerm(matchExpressions=[requirement])
    return VolumeNodeAffinity(required=NodeSelector(nodeSelectorTerms=[term]))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kubeconfig, volumes = argv[1], Path(argv[2])
    node_local = "--node-local" in argv[3:]
    client = Client(KubeConfig.from_file(kubeconfig), field_manager="es4ps-volume-provisioner")
    client.apply(storage_class(node_local), force=True)
    provisioner = Provisioner(client, volumes, node_local)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        try:
            provisioner.run_once()
        except Exception as error:  # noqa: BLE001 - the API server restarting, say: try again next round
            log.warning("round failed: %s", error)
        time.sleep(INTERVAL_S)
    return 0


def command(cluster: Cluster) -> list[str]:
    return [
        sys.executable,
        "-m",
        "es4ps_localcluster.components.volume_provisioner",
        str(cluster.kubeconfig),
        str(cluster.state / "volumes"),
        *(["--node-local"] if cluster.mode == "multi" else []),
    ]


def ready(cluster: Cluster) -> bool:
    return cluster.query("get", "storageclass", STORAGE_CLASS) is not None


VOLUME_PROVISIONER = Component("volume-provisioner", command, ready, start_timeout_s=60)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
