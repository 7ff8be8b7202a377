"""The product on a cluster as a platform team installs it: the steps `make demo` and the e2e tests share.

The two charts (`es4ps-crds`, then `es4ps` with the example domain from its
values, examples/acme.yaml adjusted to this machine), the local cluster's
Traefik as the ingress controller, then waiting until the domain is Ready and
Traefik serves the portal's Ingress. `kubeconfig` says which cluster (the
local one by default; the e2e tests point it at theirs, a kind cluster say).
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import yaml
from es4ps_localcluster import Cluster, ingress
from es4ps_localcluster.components.node import DNS_ADDRESS
from es4ps_localcluster.images import TRAEFIK
from es4ps_localcluster.paths import BIN
from es4ps_localcluster.processes import wait_until

from .images import IMAGES, LOCAL_REGISTRY
from .paths import CHART, CRD_CHART, EXAMPLE, VERSION

RELEASE = "es4ps"
CRD_RELEASE = "es4ps-crds"
OPERATOR_NAMESPACE = "es4ps-system"
DOMAIN = "acme"
DOMAIN_NAMESPACE = "acme"
# Browsers and curl send *.localhost to the loopback address by themselves: no /etc/hosts entry needed.
PORTAL_HOST = "accounts.acme.localhost"
STAFF_SECRET = "acme-staff"  # noqa: S105 - the Secret's name

# The cluster the functions below act on; the e2e test points it at its own (a kind cluster, say).
kubeconfig: Path = Cluster().kubeconfig


# The chart's TLSOption (values traefikTLSOption: TLS 1.2+, ECDHE with AEAD suites) in the operator's namespace.
TLS_OPTIONS = f"{OPERATOR_NAMESPACE}-es4ps-modern-tls@kubernetescrd"


def domain_ingress() -> dict:
    """The domain's `spec.portal.ingress` for the local cluster's Traefik: class, annotations, who the portal admits."""
    return {
        "className": ingress.INGRESS_CLASS,
        # Not yet TLS_OPTIONS: the real node's Traefik did not serve the portal once an Ingress named it.
        "annotations": dict(ingress.INGRESS_ANNOTATIONS),
        "allowFrom": {"namespaceLabels": {"kubernetes.io/metadata.name": ingress.NAMESPACE}},
    }


def kube_env() -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"}


def run(*argv: str, input: str | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, env=kube_env(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv[:4])} ...` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def set_paths(spec: dict, changes: dict) -> None:
    """Set values in a domain spec by dotted paths ("directory.dnsForwarder": ...), making parents as needed."""
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value


def local_domain_values(smtp_host: str, smtp_port: int, cluster_dns_ip: str = DNS_ADDRESS, **spec_changes) -> dict:
    """Helm values: the operator from the local images, and examples/acme.yaml adjusted to this machine.

    The portal gets a *.localhost name, the local ingress controller (Traefik:
    its class and annotations, its namespace admitted) and the test's or demo's
    SMTP server; the operator is told the cluster DNS address (the node's: there
    is no kube-dns Service; empty: it finds kube-dns); images are the locally
    built ones, already in the node's containerd.
    """
    example = yaml.safe_load(EXAMPLE.read_text())
    spec = copy.deepcopy(example["spec"])
    spec["portal"]["host"] = PORTAL_HOST
    spec["portal"]["ingress"] = domain_ingress()
    spec["portal"]["smtp"] = {"host": smtp_host, "port": smtp_port, "security": "none", "from": "accounts@acme.example"}
    set_paths(spec, spec_changes)
    return {
        "image": {
            "repository": IMAGES["operator"].repository,
            "tag": VERSION,
            "pullPolicy": "IfNotPresent",
        },
        "operator": {
            # The local images' prefix: a domain may name one of them (the e2e rolls DCs to a re-tagged image).
            "images": {
                "broker": IMAGES["rabbitmq"].ref,
                "pullPolicy": "IfNotPresent",
                "allowedRegistries": [LOCAL_REGISTRY],
            },
            "logFormat": "plain",
            "clusterDNSIP": cluster_dns_ip,
        },
        "domain": {"enabled": True, "name": DOMAIN, "namespace": DOMAIN_NAMESPACE, "spec": spec},
    }


def apply_objects(objects: list[dict]) -> None:
    """kubectl apply --server-side of `objects` as one List (idempotent)."""
    run(
        "kubectl",
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


def install_ingress_controller() -> None:
    """Traefik (es4ps_localcluster.ingress) applied and rolled out; its image must be on the node already."""
    apply_objects(ingress.manifests(TRAEFIK.ref))
    run(
        "kubectl",
        "-n",
        ingress.NAMESPACE,
        "rollout",
        "status",
        f"deployment/{ingress.NAME}",
        "--timeout=180s",
        timeout=200,
    )


def prepare_namespaces(staff_password: str) -> None:
    """The domain's namespace and the Secret its staff user's password comes from (idempotent)."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DOMAIN_NAMESPACE}}
    staff = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": STAFF_SECRET, "namespace": DOMAIN_NAMESPACE},
        "stringData": {"password": staff_password},
    }
    apply_objects([namespace, staff])


def install(values: dict, *extra: str) -> None:
    """helm upgrade --install of the CRD chart, then of the chart with these values (waits for the operator)."""
    run("helm", "upgrade", "--install", CRD_RELEASE, str(CRD_CHART), "--wait")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values, file)
        file.flush()
        run(
            "helm",
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "-n",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "-f",
            file.name,
            "--wait",
            "--timeout",
            "5m",
            *extra,
        )


def wait_ready(timeout_s: float = 900, progress=None) -> dict:
    """Wait until the domain's Ready condition is True; returns the domain. `progress(domain)` sees each poll."""
    seen: list[dict] = [{}]

    def ready() -> dict | None:
        domain = json.loads(run("kubectl", "get", "es4psdomain", DOMAIN, "-n", DOMAIN_NAMESPACE, "-o", "json"))
        seen[0] = domain
        conditions = {c["type"]: c for c in domain.get("status", {}).get("conditions", [])}
        if progress:
            progress(domain)
        current = domain.get("status", {}).get("observedGeneration") == domain["metadata"]["generation"]
        return domain if current and conditions.get("Ready", {}).get("status") == "True" else None

    return wait_until(
        ready,
        timeout_s,
        lambda: f"the domain to become Ready (status: {json.dumps(seen[0].get('status', {}), indent=1)})",
        interval_s=3,
        error=RuntimeError,
    )


def certificate_secret(dns_name: str, namespace: str = DOMAIN_NAMESPACE) -> dict:
    """The Secret of the domain's cert-manager Certificate for `dns_name`."""
    certificates = json.loads(run("kubectl", "get", "certificates", "-n", namespace, "-o", "json"))["items"]
    certificate = next(c for c in certificates if dns_name in c["spec"].get("dnsNames", []))
    return json.loads(run("kubectl", "get", "secret", certificate["spec"]["secretName"], "-n", namespace, "-o", "json"))


def portal_ca_file(path: Path, host: str = PORTAL_HOST, namespace: str = DOMAIN_NAMESPACE) -> Path:
    """The CA of the portal's HTTPS certificate (from cert-manager's Secret) written to `path`, for clients."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(certificate_secret(host, namespace)["data"]["ca.crt"]))
    return path


def portal_ingress(domain: str = DOMAIN, namespace: str = DOMAIN_NAMESPACE) -> dict:
    """The portal's Ingress, as the operator wrote it (and the controller's status on it)."""
    return json.loads(run("kubectl", "get", "ingress", f"{domain}-portal", "-n", namespace, "-o", "json"))


def portal_page_through(address: str, port: int, ca: Path, host: str = PORTAL_HOST) -> int | None:
    """The status of GET /register/ for the portal's name sent to address:port over HTTPS (None: no answer)."""
    context = ssl.create_default_context(cafile=str(ca))
    host_header = host if port == 443 else f"{host}:{port}"
    try:
        with (
            socket.create_connection((address, port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            connection = http.client.HTTPConnection(host, timeout=10)
            connection.sock = tls
            connection.request("GET", "/register/", headers={"Host": host_header})
            return connection.getresponse().status
    except OSError:
        return None


def wait_ingress_served(
    address: str,
    port: int,
    ca: Path,
    timeout_s: float = 120,
    domain: str = DOMAIN,
    namespace: str = DOMAIN_NAMESPACE,
    host: str = PORTAL_HOST,
) -> None:
    """Wait until the ingress controller has taken the portal's Ingress and routes it at address:port.

    Traefik writes its address into the Ingress's status when it takes it, and
    applies the new routes a moment later.
    """

    def taken() -> bool:
        addresses = portal_ingress(domain, namespace).get("status", {}).get("loadBalancer", {}).get("ingress") or []
        return any(a.get("ip") == ingress.HOST_ADDRESS for a in addresses)

    wait_until(taken, timeout_s, "the ingress controller to take the portal's Ingress", error=RuntimeError)
    wait_until(
        lambda: portal_page_through(address, port, ca, host) == 200,
        timeout_s,
        f"the portal's page through the ingress controller at {address}:{port}",
        error=RuntimeError,
    )


def portal_service(domain: str = DOMAIN, namespace: str = DOMAIN_NAMESPACE) -> dict:
    """The portal's Service (found by the operator's labels)."""
    services = json.loads(
        run(
            "kubectl",
            "get",
            "services",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={domain},app.kubernetes.io/component=portal",
            "-o",
            "json",
        )
    )["items"]
    return next(s for s in services if s["spec"].get("clusterIP") not in (None, "None"))


def portal_backend(domain: str = DOMAIN, namespace: str = DOMAIN_NAMESPACE) -> str:
    """http://<ClusterIP>:<port> of the portal's Service (kube-proxy routes it from the host too)."""
    service = portal_service(domain, namespace)
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
