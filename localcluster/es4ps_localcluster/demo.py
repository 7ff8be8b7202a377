"""`make demo`: the whole product on a real local Kubernetes node, as a platform team would run it.

    python -m es4ps_localcluster demo up     cluster with a real node, images, Traefik as the ingress
                                             controller, the Helm chart with the example domain and a
                                             mail catcher; prints where to go next
    python -m es4ps_localcluster demo mail   print the newest mail the portal sent (verification link and code)
    python -m es4ps_localcluster demo down   stop everything `up` started (the cluster too)

The same steps back the end-to-end test (tests/e2e, es4ps_testkit.e2e):
`install_ingress_controller`, `local_domain_values`, `install`, `wait_ready`,
`portal_ca_file` and `wait_ingress_served` are shared.
"""

from __future__ import annotations

import argparse
import base64
import copy
import email
import email.policy
import http.client
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from . import images, ingress
from .cluster import Cluster, ClusterError
from .components.node import DNS_ADDRESS, host_ip
from .paths import BIN, LOCAL, ROOT
from .processes import Supervisor, wait_until

RELEASE = "es4ps"
CRD_RELEASE = "es4ps-crds"
OPERATOR_NAMESPACE = "es4ps-system"
DOMAIN = "acme"
DOMAIN_NAMESPACE = "acme"
# Browsers and curl send *.localhost to the loopback address by themselves: no /etc/hosts entry needed.
PORTAL_HOST = "accounts.acme.localhost"
EXAMPLE = ROOT / "examples" / "acme.yaml"
CHART = ROOT / "charts" / "es4ps"
CRD_CHART = ROOT / "charts" / "es4ps-crds"
STATE = LOCAL / "demo"
# The demo's own background process (the mail catcher): STATE/<name>.pid and .log.
BACKGROUND = Supervisor(STATE, STATE)
SMTP_PORT = 2525
STAFF_SECRET = "acme-staff"  # noqa: S105 - the Secret's name


def log(step: str) -> None:
    print(f"==> {step}", flush=True)


# --------------------------------------------------------------------------- shared with the e2e test


# The cluster the functions below act on; the e2e test points it at its own (a kind cluster, say).
kubeconfig: Path = Cluster().kubeconfig


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


def local_domain_values(smtp_host: str, smtp_port: int, **spec_changes) -> dict:
    """Helm values: the operator from the local images, and examples/acme.yaml adjusted to this machine.

    The portal gets a *.localhost name, the local ingress controller (Traefik:
    its class and annotations, its namespace admitted) and the test's or demo's
    SMTP server; the DCs forward DNS to the node's cluster DNS address (there is
    no kube-dns Service); images are the locally built ones, already in the
    node's containerd.
    """
    example = yaml.safe_load(EXAMPLE.read_text())
    spec = copy.deepcopy(example["spec"])
    spec["portal"]["host"] = PORTAL_HOST
    spec["portal"]["ingress"] = ingress.domain_ingress()
    spec["portal"]["smtp"] = {"host": smtp_host, "port": smtp_port, "security": "none", "from": "accounts@acme.example"}
    spec["directory"]["dnsForwarder"] = DNS_ADDRESS
    set_paths(spec, spec_changes)
    return {
        "image": {
            "repository": images.IMAGES["operator"].repository,
            "tag": images.VERSION,
            "pullPolicy": "IfNotPresent",
        },
        "operator": {
            # The local images' prefix: a domain may name one of them (the e2e rolls DCs to a re-tagged image).
            "images": {
                "broker": images.IMAGES["rabbitmq"].ref,
                "pullPolicy": "IfNotPresent",
                "allowedRegistries": ["es4ps"],
            },
            "logFormat": "plain",
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
    apply_objects(ingress.manifests(images.IMAGES["traefik"].ref))
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


# --------------------------------------------------------------------------- the demo's own background processes


def _start_mail_catcher(listen: str) -> None:
    """aiosmtpd keeping every mail in a Maildir (`demo mail` reads it)."""
    argv = [
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        listen,
        "-c",
        "aiosmtpd.handlers.Mailbox",
        str(STATE / "mailbox"),
    ]
    STATE.mkdir(parents=True, exist_ok=True)
    BACKGROUND.stop("mail")
    BACKGROUND.start("mail", argv)


def up() -> int:
    start = time.monotonic()
    log("local cluster with a real node (containerd, kubelet, kube-proxy, CoreDNS)")
    cluster = Cluster()
    if cluster.healthy() and cluster.mode != "real":
        cluster.down()
    cluster.up(node="real")
    log("container images (built once, then cached): operator, portal, samba, rabbitmq, traefik")
    host = images.docker_host()
    names = ["operator", "portal", "samba", "rabbitmq", "traefik"]
    images.build(names, host)
    images.load(cluster.node.containerd_socket, names, host)
    log(f"Traefik as the ingress controller (namespace {ingress.NAMESPACE}, IngressClass {ingress.INGRESS_CLASS})")
    install_ingress_controller()
    node_ip = host_ip()
    log(f"mail catcher on {node_ip}:{SMTP_PORT} (the portal's SMTP server; `make demo-mail` shows the newest mail)")
    _start_mail_catcher(f"{node_ip}:{SMTP_PORT}")
    staff_file = STATE / "staff-password"
    if not staff_file.exists():
        staff_file.write_text("Staff-" + secrets.token_urlsafe(12) + "\n")
        staff_file.chmod(0o600)
    prepare_namespaces(staff_file.read_text().strip())
    log(
        f"helm upgrade --install {CRD_RELEASE} charts/es4ps-crds; "
        f"helm upgrade --install {RELEASE} charts/es4ps -n {OPERATOR_NAMESPACE} (operator + the example domain)"
    )
    # the broker admits 5671 from the DC's node only (and from the portal's and DCs' Pods)
    install(local_domain_values(node_ip, SMTP_PORT, **{"directory.nodeCIDRs": [f"{node_ip}/32"]}))
    log("waiting for the domain to become Ready (certificates, broker, Samba DC provisioning, portal)")
    seen: set[str] = set()

    def progress(domain: dict) -> None:
        for condition in domain.get("status", {}).get("conditions", []):
            line = f"{condition['type']}={condition['status']} ({condition.get('reason', '')})"
            if line not in seen:
                seen.add(line)
                print(f"    {line}", flush=True)

    domain = wait_ready(progress=progress)
    ca = portal_ca_file(STATE / "portal-ca.crt")
    wait_ingress_served(ingress.HOST_ADDRESS, ingress.HTTPS_PORT, ca)
    url = f"https://{PORTAL_HOST}/"
    print(f"""
The ES4PS demo is up ({time.monotonic() - start:.0f} s). KUBECONFIG={cluster.kubeconfig}

  kubectl get es4psdomains -A    ({domain["status"].get("phase", "")}, DCs {domain["status"].get("domainControllers")})

Register an account:
  1. open {url}  (Traefik on 127.0.0.1:{ingress.HTTPS_PORT} serves the portal's Ingress; its
     certificate comes from the domain's CA: {ca};
     trust it, or accept the browser's warning; curl: --cacert {ca})
  2. register with an address @acme.example, e.g. ada@acme.example, and a password
     like Correct-Horse-42 (8+ characters, 3 of: upper, lower, digit, symbol)
  3. `make demo-mail` prints the verification mail: open its link or type its code
  4. the status page turns "ready"; sign in with your password

See the account in the Active Directory:
  kubectl -n {DOMAIN_NAMESPACE} exec {DOMAIN}-dc0-0 -c dc -- samba-tool user show <username>
  and log in to the DC with your password (the DC runs on this host's network):
  ldbsearch -H ldap://{host_ip()} -U '<username>@{domain["spec"]["realm"]}%<password>' -b '' -s base dnsHostName
Staff admin: {url}admin/ as it-admin, password in {staff_file}

Stop everything: make demo-down
""")
    return 0


def down() -> int:
    BACKGROUND.stop("mail")
    Cluster().down()
    images.stop_dockerd()
    print("demo stopped")
    return 0


def show_mail() -> int:
    import mailbox

    box = mailbox.Maildir(STATE / "mailbox", create=False)
    messages = sorted(box, key=lambda m: m.get_date())
    if not messages:
        print("no mail yet")
        return 1
    message = email.message_from_bytes(messages[-1].as_bytes(), policy=email.policy.default)
    print(f"To: {message['To']}\nSubject: {message['Subject']}\n")
    print(message.get_body(preferencelist=("plain",)).get_content())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m es4ps_localcluster demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "mail"))
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "mail": show_mail}[args.command]()
    except (ClusterError, images.ImageError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
