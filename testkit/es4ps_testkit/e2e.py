"""The product deployed as a platform team would, for the end-to-end tests (fixture `deployment`, plugins.e2e).

The same steps as `make demo` (es4ps_devtools.deployment): images on the node,
Traefik as the ingress controller, the es4ps-crds and es4ps charts with the
example domain from values, wait for Ready and for Traefik to serve the
portal's Ingress. The test's own SMTP server catches the portal's mail.

Where it runs: the local cluster's real node (CI here), its multi-node
cluster (`LocalNodes`: three real nodes, fixture `multi_deployment`) or a kind
cluster (`make e2e-kind`, ES4PS_E2E_PLATFORM=kind). A platform answers the few
questions that differ between them: how images reach the nodes, which
address the nodes' pods use to reach this machine (the test's SMTP server),
where the DC answers LDAP, and how this machine reaches the ingress
controller. Everything else, the test itself included, is shared.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from es4ps_devtools import deployment as steps
from es4ps_devtools.images import IMAGES as PRODUCT_IMAGES
from es4ps_localcluster import Cluster, ingress
from es4ps_localcluster import images as local_images
from es4ps_localcluster.components.node import DNS_ADDRESS, host_ip
from es4ps_localcluster.components.node_network import GATEWAY, NODE_NETWORK
from es4ps_localcluster.paths import BIN
from es4ps_localcluster.processes import free_port, port_open, wait_until
from es4ps_operator.config import full_image_name

from .ca import CertFiles
from .directory_checks import ldap_bind
from .kube import KubeCluster
from .mail import MailCatcher
from .portal_client import PortalClient

IMAGES = [*(PRODUCT_IMAGES[name] for name in ("operator", "portal", "samba", "rabbitmq")), local_images.TRAEFIK]
# The e2e domain's own setting, kept across its `helm upgrade`s: a small per-address limit of
# password-reset requests, so a test can show whose address the portal counts behind the controller.
RESET_REQUESTS_PER_ADDRESS = 3
SESSION_SPEC_CHANGES = {"portal.rateLimits.reset.perAddress.requests": RESET_REQUESTS_PER_ADDRESS}


class LocalNode:
    """The local cluster with a real node (containerd + kubelet on this machine)."""

    name = "real-node"
    cluster_dns_ip = DNS_ADDRESS  # no kube-dns Service here: the operator is told the node's DNS address

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
        return {"directory.nodeCIDRs": [f"{self.node_ip}/32"]}

    def ingress_entry(self) -> tuple[str, int]:
        return ingress.HOST_ADDRESS, ingress.HTTPS_PORT  # the Traefik Pod's hostPort

    def tag_image(self, source: str, target: str) -> None:
        """The node's image `source` also under the name `target` (a "new" image without a registry)."""
        socket = str(Cluster().node.containerd_socket)
        source, target = full_image_name(source), full_image_name(target)
        subprocess.run(
            ["ctr", "--address", socket, "-n", "k8s.io", "images", "tag", "--force", source, target], check=True
        )

    def close(self) -> None:
        pass


class LocalNodes:
    """The local cluster with several real nodes, each in a network namespace of its own (es4ps_localcluster)."""

    name = "real-nodes"
    cluster_dns_ip = DNS_ADDRESS  # each node's CoreDNS on its own DNS address (no kube-dns Service)

    def __init__(self, kube: KubeCluster, local: Cluster) -> None:
        self.kube = kube
        self.local = local

    def load_images(self) -> None:
        self.local.load_images(IMAGES)

    @property
    def smtp_host(self) -> str:
        return GATEWAY  # this machine, on the nodes' bridge

    @property
    def dc_address(self) -> str:
        """dc0's node's address (host network: the DC answers there)."""
        return self.kube.get("pod", "acme-dc0-0", "acme")["status"]["hostIP"]

    def spec_changes(self) -> dict:
        # the broker admits the host-network workers of every node
        return {"directory.nodeCIDRs": [NODE_NETWORK]}

    def ingress_entry(self) -> tuple[str, int]:
        """Traefik's Service: this machine reaches ClusterIPs through a node's kube-proxy."""
        service = self.kube.get("service", ingress.NAME, ingress.NAMESPACE)
        return service["spec"]["clusterIP"], ingress.HTTPS_PORT

    def tag_image(self, source: str, target: str) -> None:
        source, target = full_image_name(source), full_image_name(target)
        for node in self.local.nodes:
            ctr = ["ctr", "--address", str(node.containerd_socket), "-n", "k8s.io"]
            subprocess.run([*ctr, "images", "tag", "--force", source, target], check=True)

    def close(self) -> None:
        pass


class Kind:
    """A kind cluster (made by `make e2e-kind`) on a machine with Docker and registry access."""

    name = "kind"
    cluster_dns_ip = ""  # kind has kube-dns: the operator finds it

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
        for image in IMAGES:
            subprocess.run(
                [str(BIN / "kind"), "load", "docker-image", "--name", self.cluster_name, image.ref],
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

    def ingress_entry(self) -> tuple[str, int]:
        """The kind node's loopback is not this machine's: a port-forward to Traefik's Service."""
        self._port_forward, port = start_port_forward(
            self.kube, ingress.NAMESPACE, f"service/{ingress.NAME}", ingress.HTTPS_PORT
        )
        return "127.0.0.1", port

    def tag_image(self, source: str, target: str) -> None:
        node = f"{self.cluster_name}-control-plane"
        source, target = full_image_name(source), full_image_name(target)
        subprocess.run(
            ["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "tag", "--force", source, target], check=True
        )

    def close(self) -> None:
        if self._port_forward:
            self._port_forward.terminate()


# The least Pod Security level a domain's namespace needs, by directory.networkMode (docs/operator.md).
POD_SECURITY_LEVELS = {"HostNetwork": "privileged", "Service": "baseline"}


def enforce_pod_security(kube: KubeCluster, namespace: str, level: str) -> None:
    """Have the API server enforce a Pod Security level in `namespace`, and warn about the next stricter one."""
    stricter = {"privileged": "baseline", "baseline": "restricted"}.get(level, level)
    kube.kubectl(
        "label",
        "--overwrite",
        "namespace",
        namespace,
        f"pod-security.kubernetes.io/enforce={level}",
        f"pod-security.kubernetes.io/warn={stricter}",
    )


def start_port_forward(kube: KubeCluster, namespace: str, target: str, port: int) -> tuple[subprocess.Popen, int]:
    """`kubectl port-forward` of a local port to `port` of `target` (pod/x, service/y); the process and the port.

    Through the kubelet into the Pod's network namespace: no NetworkPolicy is in
    the way, as for a platform engineer looking at one Pod.
    """
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, target, f"{local}:{port}"],
        env=kube.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: port_open("127.0.0.1", local), 30, f"kubectl port-forward to {target}", process=process)
    return process, local


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
    platform: LocalNode | LocalNodes | Kind
    mail: MailCatcher
    portal_url: str
    ingress_address: str
    portal_ca: Path
    realm: str
    directory_ca: Path
    directory_name: str
    # What this deployment's domain always has besides the platform's and the session's settings (dotted paths).
    spec_changes: dict = field(default_factory=dict)
    # The operator chart's own values besides the local ones (replicaCount, say).
    chart_values: dict = field(default_factory=dict)

    def person(self) -> PortalClient:
        """A new browser session at the portal's public address, through the ingress controller."""
        return PortalClient(self.portal_url, connect_to=self.ingress_address, ca_file=str(self.portal_ca))

    def password_authenticates(self, username: str, password: str) -> bool:
        """A simple LDAP bind as the user over LDAPS to the DC in its pod: the directory's own answer."""
        user = f"{username}@{self.realm.lower()}"
        return ldap_bind(self.platform.dc_address, self.directory_ca, self.directory_name, user, password)

    def python_in_pod(self, namespace: str, script: str, argument, node: str | None = None) -> dict:
        """Run `python3 -c script json(argument)` in a throwaway Pod in `namespace`; the JSON of its last line.

        The Pod has its own address (a client other than this machine and the
        controller) and runs the operator image's Python, standard library only.
        The namespace is made for it unless it exists (the ingress controller's,
        say), and only what was made here is deleted afterwards. `node`: the
        node the scheduler must put it on.
        """
        kube = self.kube
        made_namespace = not kube.get("namespace", namespace, check=False)
        if made_namespace:
            kube.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        name = f"es4ps-probe-{uuid.uuid4().hex[:6]}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "probe",
                        "image": PRODUCT_IMAGES["operator"].ref,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "-c", script, json.dumps(argument)],
                    }
                ],
            },
        }
        if node:
            pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
        kube.apply(json.dumps(pod))
        kube.eventually(
            lambda: kube.get("pod", name, namespace)["status"].get("phase") in ("Succeeded", "Failed"),
            timeout=180,
            message=f"the probe Pod in {namespace} finishing",
        )
        logs = kube.kubectl("logs", name, "-n", namespace).stdout
        if made_namespace:
            kube.kubectl("delete", "namespace", namespace, "--wait=false")
        else:
            kube.kubectl("delete", "pod", name, "-n", namespace, "--wait=false")
        lines = logs.strip().splitlines()
        assert lines, f"the probe Pod in {namespace} printed nothing"
        try:
            return json.loads(lines[-1])
        except ValueError:
            raise AssertionError(f"the probe Pod in {namespace} failed:\n{logs[-3000:]}") from None

    def certificate_files(self, secret: str, directory: Path, namespace: str = "acme") -> CertFiles:
        """A cert-manager Secret of the domain (ca.crt, tls.crt, tls.key) as files in `directory`."""
        data = self.kube.get("secret", secret, namespace=namespace)["data"]
        directory.mkdir(parents=True, exist_ok=True)
        for key in ("ca.crt", "tls.crt", "tls.key"):
            (directory / key).write_bytes(base64.b64decode(data[key]))
        return CertFiles(directory)

    def install(self, **spec_changes) -> None:
        """helm upgrade --install with the local values (plus the session's and `spec_changes`, dotted paths)."""
        changes = {**self.platform.spec_changes(), **SESSION_SPEC_CHANGES, **self.spec_changes, **spec_changes}
        values = steps.local_domain_values(
            self.platform.smtp_host, self.mail.port, self.platform.cluster_dns_ip, **changes
        )
        steps.install({**values, **self.chart_values})

    @contextlib.contextmanager
    def port_forward(self, pod: str, port: int, namespace: str = "acme") -> Iterator[str]:
        """http://127.0.0.1:<local port> forwarded to `port` of `pod` while the block runs."""
        process, local = start_port_forward(self.kube, namespace, f"pod/{pod}", port)
        try:
            yield f"http://127.0.0.1:{local}"
        finally:
            process.terminate()
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop what `deploy` started on this machine (the SMTP server, a port-forward); the cluster stays."""
        self.mail.stop()
        self.platform.close()


def deploy(
    kube: KubeCluster,
    where: LocalNode | LocalNodes | Kind,
    directory: Path,
    chart_values: dict | None = None,
    **spec_changes,
) -> Deployment:
    """Deploy as `make demo` does: images, Traefik, charts (with `chart_values`), the example domain (with
    `spec_changes`, dotted paths) Ready, and its Ingress served by Traefik with the portal's cert-manager
    certificate. `close()` when done."""
    steps.kubeconfig = kube.kubeconfig
    start = time.monotonic()
    where.load_images()
    steps.install_ingress_controller()
    mail = MailCatcher(host=where.smtp_host)
    mail.start()
    steps.prepare_namespaces("Staff-" + base64.urlsafe_b64encode(os.urandom(9)).decode())
    # The example runs its DCs in the host network: only `privileged` admits them (docs/operator.md).
    enforce_pod_security(kube, steps.DOMAIN_NAMESPACE, "privileged")
    deployment = Deployment(
        kube,
        where,
        mail,
        "",
        "",
        directory / "portal-ca.crt",
        "",
        directory / "dc-ca.crt",
        "",
        spec_changes,
        chart_values or {},
    )
    deployment.install()
    domain = steps.wait_ready(timeout_s=900)
    print(f"\nthe domain was Ready {time.monotonic() - start:.0f} s after the deployment began", file=sys.stderr)
    steps.portal_ca_file(deployment.portal_ca)
    address, port = where.ingress_entry()
    steps.wait_ingress_served(address, port, deployment.portal_ca)
    deployment.portal_url = f"https://{steps.PORTAL_HOST}" + ("" if port == 443 else f":{port}")
    deployment.ingress_address = address
    deployment.realm = domain["spec"]["realm"]
    deployment.directory_name = f"dc0.{deployment.realm.lower()}"
    ldaps = steps.certificate_secret(deployment.directory_name)
    deployment.directory_ca.write_bytes(base64.b64decode(ldaps["data"]["ca.crt"]))
    return deployment
