"""The product deployed as a platform team would, for the end-to-end tests (fixture `deployment`, plugins.e2e).

The same steps as `make demo` (es4ps_localcluster.demo): images on the node,
the es4ps-crds and es4ps charts with the example domain from values, wait for
Ready, the portal behind a local HTTPS entry with its cert-manager
certificate. The test's own SMTP server catches the portal's mail.

Where it runs: the local cluster's real node (CI here) or a kind cluster
(`make e2e-kind`, ES4PS_E2E_PLATFORM=kind). A platform answers the few
questions that differ between the two: how images reach the node, which
address the node's pods use to reach this machine (the test's SMTP server),
where the DC answers LDAP, and how this machine reaches the portal's Service.
Everything else, the test itself included, is shared.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from es4ps_localcluster import Cluster, demo
from es4ps_localcluster import images as local_images
from es4ps_localcluster.components.node import DNS_ADDRESS, host_ip
from es4ps_localcluster.paths import BIN
from es4ps_localcluster.processes import free_port, port_open, wait_until

from .directory_checks import ldap_bind
from .kube import KubeCluster
from .mail import MailCatcher
from .portal_client import PortalClient

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

    def tag_image(self, source: str, target: str) -> None:
        """The node's image `source` also under the name `target` (a "new" image without a registry)."""
        socket = str(Cluster().node.containerd_socket)
        subprocess.run(
            ["ctr", "--address", socket, "-n", "k8s.io", "images", "tag", "--force", source, target], check=True
        )

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
                    str(BIN / "kind"),
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
        port = free_port()
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
        wait_until(lambda: port_open("127.0.0.1", port), 30, "kubectl port-forward", process=self._port_forward)
        return f"http://127.0.0.1:{port}"

    def tag_image(self, source: str, target: str) -> None:
        node = f"{self.cluster_name}-control-plane"
        subprocess.run(
            ["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "tag", "--force", source, target], check=True
        )

    def close(self) -> None:
        if self._port_forward:
            self._port_forward.terminate()


def platform(real_cluster_factory) -> tuple[KubeCluster, LocalNode | Kind]:
    """The cluster and platform to deploy on: kind with ES4PS_E2E_PLATFORM=kind, else the local real node."""
    if os.environ.get("ES4PS_E2E_PLATFORM") == "kind":
        kube = KubeCluster(Path(os.environ["KUBECONFIG"]))
        return kube, Kind(kube, os.environ.get("ES4PS_KIND_CLUSTER", "es4ps-e2e"))
    kube = real_cluster_factory()
    return kube, LocalNode(kube)


@dataclass
class Deployment:
    """The deployed domain, as a person and an operator of the platform reach it."""

    kube: KubeCluster
    platform: LocalNode | Kind
    mail: MailCatcher
    portal_url: str
    ingress_address: str
    portal_ca: Path
    realm: str
    directory_ca: Path
    directory_name: str
    ingress: subprocess.Popen | None = None

    def person(self) -> PortalClient:
        """A new browser session at the portal's public address, through the HTTPS entry."""
        return PortalClient(self.portal_url, connect_to=self.ingress_address, ca_file=str(self.portal_ca))

    def password_authenticates(self, username: str, password: str) -> bool:
        """A simple LDAP bind as the user over LDAPS to the DC in its pod: the directory's own answer."""
        user = f"{username}@{self.realm.lower()}"
        return ldap_bind(self.platform.dc_address, self.directory_ca, self.directory_name, user, password)

    def install(self, **spec_changes) -> None:
        """helm upgrade --install with the local values (plus `spec_changes`, dotted paths)."""
        demo.install(
            demo.local_domain_values(
                self.platform.smtp_host, self.mail.port, **{**self.platform.spec_changes(), **spec_changes}
            )
        )

    def close(self) -> None:
        """Stop what `deploy` started on this machine (the HTTPS entry, the SMTP server); the cluster stays."""
        if self.ingress is not None:
            self.ingress.terminate()
        self.mail.stop()
        self.platform.close()


def deploy(kube: KubeCluster, where: LocalNode | Kind, directory: Path, **spec_changes) -> Deployment:
    """Deploy as `make demo` does: images, charts, the example domain (with `spec_changes`, dotted paths)
    Ready, the portal behind a local HTTPS entry with its cert-manager certificate. `close()` when done."""
    demo.kubeconfig = kube.kubeconfig
    start = time.monotonic()
    where.load_images()
    mail = MailCatcher(host=where.smtp_host)
    mail.start()
    demo.prepare_namespaces("Staff-" + base64.urlsafe_b64encode(os.urandom(9)).decode())
    deployment = Deployment(kube, where, mail, "", "", directory / "portal-ca.crt", "", directory / "dc-ca.crt", "")
    deployment.install(**spec_changes)
    domain = demo.wait_ready(timeout_s=900)
    print(f"\nthe domain was Ready {time.monotonic() - start:.0f} s after the deployment began", file=sys.stderr)
    cert, key, ca = demo.portal_tls_files(directory / "portal-tls")
    deployment.portal_ca = ca
    port = free_port()
    deployment.ingress = demo.start_ingress(f"127.0.0.1:{port}", cert, key, directory / "ingress.log")
    deployment.portal_url = f"https://{demo.PORTAL_HOST}:{port}"
    deployment.ingress_address = "127.0.0.1"
    deployment.realm = domain["spec"]["realm"]
    deployment.directory_name = f"dc0.{deployment.realm.lower()}"
    ldaps = demo.certificate_secret(deployment.directory_name)
    deployment.directory_ca.write_bytes(base64.b64decode(ldaps["data"]["ca.crt"]))
    return deployment
