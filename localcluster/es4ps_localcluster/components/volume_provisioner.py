"""A small dynamic volume provisioner for the local cluster (what kind's local-path provisioner does).

The local cluster has no storage system, yet the operator's StatefulSets claim
volumes. This process, started by the cluster with the admin kubeconfig, serves the default
StorageClass `local`: each pending claim of that class gets a hostPath
PersistentVolume in a folder under the cluster's state (world-writable, since
hostPath volumes ignore fsGroup and the product's containers run as their own
users); a volume whose claim is gone (reclaim policy Delete) is deleted with
its folder. On KWOK nodes nothing mounts the folders; on the real node the
kubelet does.

    python -m es4ps_localcluster.components.volume_provisioner KUBECONFIG VOLUMES_DIR
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
from lightkube.models.core_v1 import ObjectReference, PersistentVolumeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass

from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster

PROVISIONER = "es4ps.io/local-path"
STORAGE_CLASS = "local"
INTERVAL_S = 1.0

log = logging.getLogger("volume-provisioner")


def storage_class() -> StorageClass:
    return StorageClass(
        metadata=ObjectMeta(name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        provisioner=PROVISIONER,
        reclaimPolicy="Delete",
        volumeBindingMode="Immediate",
    )


class Provisioner:
    def __init__(self, client: Client, volumes: Path) -> None:
        self.client = client
        self.volumes = volumes

    def run_once(self) -> None:
        for claim in self.client.list(PersistentVolumeClaim, namespace="*"):
            if (
                (claim.status is None or claim.status.phase == "Pending")
                and not claim.spec.volumeName
                and claim.spec.storageClassName == STORAGE_CLASS
            ):
                self.provision(claim)
        for volume in self.client.list(PersistentVolume, labels={"es4ps.io/provisioned-by": "local-path"}):
            if volume.status is not None and volume.status.phase in ("Released", "Failed"):
                self.delete(volume)

    def provision(self, claim: PersistentVolumeClaim) -> None:
        meta = claim.metadata
        name = f"pvc-{meta.uid}"
        folder = self.volumes / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        volume = PersistentVolume(
            metadata=ObjectMeta(
                name=name,
                labels={"es4ps.io/provisioned-by": "local-path"},
                annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER},
            ),
            spec=PersistentVolumeSpec(
                capacity={"storage": claim.spec.resources.requests["storage"]},
                accessModes=claim.spec.accessModes,
                hostPath={"path": str(folder), "type": "DirectoryOrCreate"},
                persistentVolumeReclaimPolicy="Delete",
                storageClassName=STORAGE_CLASS,
                claimRef=ObjectReference(namespace=meta.namespace, name=meta.name, uid=meta.uid),
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
        shutil.rmtree(self.volumes / name, ignore_errors=True)
        log.info("deleted %s (its claim is gone)", name)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kubeconfig, volumes = argv[1], Path(argv[2])
    client = Client(KubeConfig.from_file(kubeconfig), field_manager="es4ps-volume-provisioner")
    client.apply(storage_class(), force=True)
    provisioner = Provisioner(client, volumes)
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
    ]


def ready(cluster: Cluster) -> bool:
    return cluster.query("get", "storageclass", STORAGE_CLASS) is not None


VOLUME_PROVISIONER = Component("volume-provisioner", command, ready, start_timeout_s=60)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
