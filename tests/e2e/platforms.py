"""Where the end-to-end test runs: the local cluster's real node (CI here) or a kind cluster (`make e2e-kind`).

A platform answers the few questions that differ between the two: how images
reach the node, which address the node's pods use to reach this machine (the
test's SMTP server), where the DC answers LDAP, and how this machine reaches
the portal's Service. Everything else, the test itself included, is shared.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from es4ps_localcluster import Cluster, demo
from es4ps_localcluster import images as local_images
from es4ps_localcluster.components.node import DNS_ADDRESS, host_ip
from support.cluster import ROOT, KubeCluster

IMAGES = ["operator", "portal", "samba", "rabbitmq"]


class LocalNode:
    """The local cluster with a real node (containerd + kubelet on this machine)."""

    name = "real-node"

    def __init__(self, kube: KubeCluster) -> None:
        self.kube = kube
        self.node_ip = host_ip()

    def load_images(self) -> None:
        host = local_images.docker_host()
        local_images.build(IMAGES, host)
        local_images.load(Cluster().node.containerd_socket, IMAGES, host)

    @property
    def smtp_host(self) -> str:
        return self.node_ip

    @property
    def dc_address(self) -> str:
        return self.node_ip

    def spec_changes(self) -> dict:
        # no kube-dns Service here: the DCs forward to the node's DNS address
        return {"directory.dnsForwarder": DNS_ADDRESS, "directory.nodeCIDRs": [f"{self.node_ip}/32"]}

    def portal_backend(self) -> str:
        return demo.portal_backend()  # kube-proxy routes ClusterIPs from this machine too

    def close(self) -> None:
        pass


class Kind:
    """A kind cluster (made by `make e2e-kind`) on a machine with Docker and registry access."""

    name = "kind"

    def __init__(self, kube: KubeCluster, cluster_name: str) -> None:
        self.kube = kube
        self.cluster_name = cluster_name
        node = f"{cluster_name}-control-plane"
        inspect = json.loads(
            subprocess.run(["docker", "inspect", node], capture_output=True, text=True, check=True).stdout
        )[0]
        network = inspect["NetworkSettings"]["Networks"]["kind"]
        self.node_ip = network["IPAddress"]
        self._gateway = network["Gateway"]
        self._port_forward: subprocess.Popen | None = None

    def load_images(self) -> None:
        host = local_images.docker_host()
        local_images.build(IMAGES, host)
        for name in IMAGES:
            subprocess.run(
                [
                    str(ROOT / ".local" / "bin" / "kind"),
                    "load",
                    "docker-image",
                    "--name",
                    self.cluster_name,
                    local_images.IMAGES[name].ref,
                ],
                check=True,
                env={**os.environ, "DOCKER_HOST": host},
            )

    @property
    def smtp_host(self) -> str:
        return self._gateway  # this machine, as the kind node's containers see it

    @property
    def dc_address(self) -> str:
        return self.node_ip

    def spec_changes(self) -> dict:
        # kind has kube-dns: the operator finds it
        return {"directory.nodeCIDRs": [f"{self.node_ip}/32"]}

    def portal_backend(self) -> str:
        """kind's ClusterIPs are not routed from this machine: a port-forward to the portal's Service."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        service = demo.portal_service()
        self._port_forward = subprocess.Popen(
            [
                "kubectl",
                "port-forward",
                "-n",
                demo.DOMAIN_NAMESPACE,
                f"service/{service['metadata']['name']}",
                f"{port}:{service['spec']['ports'][0]['port']}",
            ],
            env=self.kube.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._port_forward:
            self._port_forward.terminate()
