"""An organisation installing the previous release from the registry, as an adopter does it (`Adopter`).

Campus installs from the registry (es4ps_testkit.releases) exactly as the
README says: the `es4ps-crds` chart, then the `es4ps` chart as its own release
(`campus`, namespace `campus-system`, serving only the namespace `campus`),
with a values file it keeps in git: the pull secret, the broker image it
chose, log format. Every product image is pulled by the kubelet from the
registry with the pull secret (the domain's Pods through the namespace's
default ServiceAccount). Its domain has two DCs, backups to a volume and
registered people.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from es4ps_devtools import deployment as steps
from es4ps_localcluster import Cluster
from es4ps_localcluster.components.kubelet import remove_images
from es4ps_localcluster.components.node import DNS_ADDRESS
from es4ps_localcluster.registry import trust_on_node

from .e2e import POD_SECURITY_LEVELS, enforce_pod_security
from .live_domain import LiveDomain, example_domain_as
from .releases import PULLER, Published

RELEASE = "campus"  # the operator's Helm release
OPERATOR_NAMESPACE = "campus-system"
NAME = NAMESPACE = "campus"
HOST = "accounts.campus.localhost"
REALM = "AD.CAMPUS.EXAMPLE"
MAIL_DOMAIN = "campus.example"
PULL_SECRET = "registry-login"  # noqa: S105 - the Secret's name
STAFF_SECRET = "campus-staff"  # noqa: S105 - the Secret's name
DATA_PATH = ("directory", "broker", "portal")


class Adopter:
    """A platform team with the registry's login, installing and upgrading the charts with helm."""

    def __init__(self, kube, published: Published, directory: Path) -> None:
        self.kube = kube
        self.published = published
        self.directory = directory
        self.registry_config = published.registry.write_auth_config(PULLER, directory / "helm-login")

    def helm(self, *args: str, timeout: float = 600) -> str:
        """helm as the adopter runs it: logged in to the registry, trusting its CA."""
        login = ["--registry-config", str(self.registry_config), "--ca-file", str(self.published.registry.ca_file)]
        return self.kube.helm(*args, *login, timeout=timeout).stdout

    def prepare(self, staff_password: str) -> None:
        """Namespaces, the pull secret in both, the domain's default ServiceAccount using it, the staff Secret."""
        login = json.dumps(self.published.registry.auth_config(PULLER))
        objects = []
        for namespace in (OPERATOR_NAMESPACE, NAMESPACE):
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "kubernetes.io/dockerconfigjson",
                    "metadata": {"name": PULL_SECRET, "namespace": namespace},
                    "stringData": {".dockerconfigjson": login},
                }
            )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": STAFF_SECRET, "namespace": NAMESPACE},
                "stringData": {"password": staff_password},
            }
        )
        self.kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        # The domain's Pods take the secret from their namespace's default ServiceAccount (every release does).
        self.kube.eventually(lambda: self.kube.get("serviceaccount", "default", NAMESPACE, check=False), timeout=60)
        self.kube.merge_patch("serviceaccount", "default", {"imagePullSecrets": [{"name": PULL_SECRET}]}, NAMESPACE)

    def values(self) -> dict:
        """The values file kept in git; a version change in the pipeline does not touch it."""
        return {
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "watchNamespaces": [NAMESPACE],
            "operator": {
                # the broker image this organisation chose (the stock one elsewhere): the same across releases
                "images": {"broker": self.published.image(self.published.previous, "rabbitmq")},
                "logFormat": "plain",
            },
        }

    def install(self, version: str) -> None:
        """`helm upgrade --install` of both charts at `version` from the registry: first install and upgrade alike.

        On a cluster of its own the first one is `helm install`; the e2e cluster is shared, so the CRD
        release the other tests made is taken over (it is the same release name and namespace).
        """
        values = self.directory / "campus-values.yaml"
        values.write_text(yaml.safe_dump(self.values()))
        crds = self.published.chart(version, "es4ps-crds")
        self.helm("upgrade", "--install", steps.CRD_RELEASE, crds, "--version", version, "--wait")
        chart = self.published.chart(version, "es4ps")
        self.helm(
            "upgrade", "--install", RELEASE, chart, "--version", version,
            "-n", OPERATOR_NAMESPACE, "--create-namespace", "-f", str(values), "--wait", "--timeout", "10m",
        )  # fmt: skip


def campus_domain(deployment, **directory_changes) -> dict:
    """examples/acme.yaml made into `campus`: two DCs in Service mode, backups to a volume, Traefik's Ingress."""
    directory = {
        "replicas": 2,
        "networkMode": "Service",
        "dnsForwarder": DNS_ADDRESS,
        "storage": {"size": "1Gi"},
        "backup": {"keep": 2, "destination": {"volume": {"size": "1Gi"}}},
        **directory_changes,
    }
    return example_domain_as(
        deployment, NAME, realm=REALM, netbios_name="CAMPUS", organization="Campus", mail_domain=MAIL_DOMAIN,
        host=HOST, staff_secret=STAFF_SECRET, directory=directory,
    )  # fmt: skip


def campus(deployment, directory: Path, name: str = NAME, host: str = HOST) -> LiveDomain:
    """Campus's domain (or one restored from its backup, under another name and host) as people reach it."""
    return LiveDomain(deployment, directory, name, NAMESPACE, host, REALM, MAIL_DOMAIN)


def trust_registry(published: Published) -> None:
    """The real node's containerd trusts the registry's CA (its hosts directory; it holds no login).

    It also forgets the registry's images: its image store is a cache that outlives the cluster,
    and the kubelet must pull the release (with the pull secret) as an adopter's would.
    """
    node = Cluster().node
    trust_on_node(node.registry_hosts, published.registry.address, published.registry.ca_file)
    remove_images(node, published.registry.address + "/")


def log(message: str) -> None:
    print(f"\n{message}", file=sys.stderr, flush=True)


def adopt_previous(
    deployment, published: Published, directory: Path, staff_password: str
) -> tuple[Adopter, LiveDomain]:
    """Campus on the previous release: operator and domain (two DCs) from the registry, Ready, portal served.

    Only Campus's operator may serve `campus`: stop any other that serves every namespace first
    (`paused_operator`).
    """
    adopter = Adopter(deployment.kube, published, directory)
    domain = campus(deployment, directory)
    trust_registry(published)
    adopter.prepare(staff_password)
    enforce_pod_security(deployment.kube, NAMESPACE, POD_SECURITY_LEVELS["Service"])
    started = time.monotonic()
    adopter.install(published.previous)
    deployment.kube.apply(json.dumps(campus_domain(deployment)), namespace=NAMESPACE)
    domain.wait_ready(timeout=1200)
    log(f"campus on {published.previous} (2 DCs) Ready {time.monotonic() - started:.0f} s after its install")
    domain.open_portal()
    return adopter, domain


@contextlib.contextmanager
def paused_operator(kube, name: str, namespace: str) -> Iterator[None]:
    """Another operator's Deployment scaled to zero while the block runs (if it exists), then back to one."""
    present = bool(kube.get("deployment", name, namespace, check=False))
    if present:
        kube.kubectl("scale", "deployment", name, "-n", namespace, "--replicas=0")
    try:
        yield
    finally:
        if present:
            kube.kubectl("scale", "deployment", name, "-n", namespace, "--replicas=1")


def remove(kube, *domains: str) -> None:
    """Delete Campus's domains (their volumes go: deletionPolicy Delete), its operator release and namespaces.

    The CRD release Campus took over goes back to this checkout's chart: the other tests of the shared
    cluster run on it (after a failed upgrade it would still be the previous release's).
    """
    for name in domains:
        kube.kubectl("delete", "es4psdomain", name, "-n", NAMESPACE, "--wait=true", "--timeout=300s", check=False)
    kube.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", check=False)
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        kube.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=300s", check=False)
    kube.helm("upgrade", "--install", steps.CRD_RELEASE, str(steps.CRD_CHART), "--wait")
