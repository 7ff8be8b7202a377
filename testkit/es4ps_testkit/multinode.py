"""The example domain in its default topology on three real nodes, for the multi-node e2e tests and benchmarks.

`acme` as the chart installs it (es4ps_testkit.e2e.deploy) on the local
cluster's multi-node mode (es4ps_localcluster, `NODES=3`), with what the
default topology needs more than one node for: two DCs in the default
`HostNetwork` mode (a required anti-affinity keeps one per node; each serves
at its node's address), three broker members and two portal replicas, which
share a PostgreSQL database (running on this machine at the nodes' gateway
address). Where the scheduler put each Pod is read back, never set here.

`Registrations` keeps people registering through the ingress controller
while something happens to the cluster (a drain, a lost node) and measures
how long each waited and whether any was lost.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import dns.resolver
import requests
import yaml
from es4ps_devtools.paths import CHART
from es4ps_localcluster import Cluster, ingress
from es4ps_localcluster.components.node import CLUSTER_CIDR
from es4ps_localcluster.components.node_network import GATEWAY, NODE_NETWORK

from .directory_checks import kerberos_login, ldap_bind
from .e2e import Deployment, LocalNodes, deploy
from .kube import KubeCluster
from .portal_client import GATEWAY_ERRORS, GatewayRefused
from .postgres import PostgreSQL
from .registration import GOOD_PASSWORD

NAMESPACE = "acme"
DATABASE_SECRET = "acme-database"  # noqa: S105 - a Secret's name
SPEC = {
    "directory.replicas": 2,  # networkMode stays the default, HostNetwork
    "broker.replicas": 3,
    "portal.replicas": 2,
    "portal.databaseURLSecretRef": {"name": DATABASE_SECRET, "key": "url"},
}
COMPONENT_LABEL = "app.kubernetes.io/component"
# What a platform of several nodes runs of its own parts: two operator replicas on two nodes (the chart's CI
# scenario for several nodes), and two ingress controllers (their hostPort keeps them apart).
OPERATOR_VALUES = yaml.safe_load((CHART / "ci" / "nodes-values.yaml").read_text())
INGRESS_REPLICAS = 2


@dataclass
class NodesDeployment:
    """The domain on three nodes, its PostgreSQL, and the local cluster (to lose a node and bring it back)."""

    deployment: Deployment
    database: PostgreSQL
    local: Cluster
    directory: Path  # the test's files (CA files of the DCs)

    @property
    def kube(self) -> KubeCluster:
        return self.deployment.kube

    def close(self) -> None:
        self.deployment.close()
        self.database.close()


def deploy_on_nodes(kube: KubeCluster, local: Cluster, directory: Path, **spec_changes) -> NodesDeployment:
    """PostgreSQL for the portal, its URL in a Secret, then the chart's domain in the default topology."""
    database = PostgreSQL(directory / "postgres", host=GATEWAY, clients=(CLUSTER_CIDR, NODE_NETWORK))
    database.start()
    url = database.create_database("portal")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": DATABASE_SECRET, "namespace": NAMESPACE},
        "stringData": {"url": url},
    }
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, secret]}))
    deployment = deploy(kube, LocalNodes(kube, local), directory, OPERATOR_VALUES, **{**SPEC, **spec_changes})
    kube.kubectl("scale", "deployment", ingress.NAME, "-n", ingress.NAMESPACE, f"--replicas={INGRESS_REPLICAS}")
    kube.kubectl("rollout", "status", f"deployment/{ingress.NAME}", "-n", ingress.NAMESPACE, "--timeout=180s")
    return NodesDeployment(deployment, database, local, directory)


# ---- where things run


def pods(kube: KubeCluster, component: str) -> dict[str, dict]:
    """The domain's Pods of `component` (directory, broker, portal) by name."""
    listed = kube.get("pods", namespace=NAMESPACE)["items"]
    return {p["metadata"]["name"]: p for p in listed if p["metadata"]["labels"].get(COMPONENT_LABEL) == component}


def placement(kube: KubeCluster, component: str) -> dict[str, str]:
    """Pod name -> the node the scheduler put it on ("" while unscheduled)."""
    return {name: pod["spec"].get("nodeName", "") for name, pod in pods(kube, component).items()}


def dc_pod(index: int) -> str:
    return f"acme-dc{index}-0"


def dc_address(kube: KubeCluster, index: int) -> str:
    """Where DC `index` serves: its node's address (host network)."""
    return kube.get("pod", dc_pod(index), NAMESPACE)["status"]["hostIP"]


def dc_ca(kube: KubeCluster, index: int, directory: Path) -> tuple[str, Path]:
    """DC `index`'s TLS name and the CA file that verifies it."""
    name = f"dc{index}.{realm(kube).lower()}"
    secrets = kube.get("secrets", namespace=NAMESPACE)["items"]
    for secret in secrets:
        annotations = secret["metadata"].get("annotations") or {}
        if name in annotations.get("cert-manager.io/alt-names", "").split(","):
            path = directory / f"dc{index}-ca.crt"
            path.write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
            return name, path
    raise AssertionError(f"no certificate Secret names {name}")


def realm(kube: KubeCluster) -> str:
    return kube.get("es4psdomain", "acme", NAMESPACE)["spec"]["realm"]


def authenticates(kube: KubeCluster, index: int, username: str, directory: Path, password: str = GOOD_PASSWORD) -> bool:
    """An LDAPS simple bind and a Kerberos login as `username` against DC `index` alone, at its node's address."""
    address, (tls_name, ca) = dc_address(kube, index), dc_ca(kube, index, directory)
    domain_realm = realm(kube)
    user = f"{username}@{domain_realm.lower()}"
    bound = ldap_bind(address, ca, tls_name, user, password)
    return bound and kerberos_login(address, domain_realm, username, password)


# Run in a DC's `dc` container with its own settings (es4ps_samba.dc.config) as `config`.
_IN_DC = "import json, os, sys\nfrom es4ps_samba.dc.config import DCConfig\nconfig = DCConfig.from_env(os.environ)\n"


def _python_in_dc(kube: KubeCluster, index: int, script: str, *args: str, stdin: str | None = None) -> str:
    argv = ["exec", "-i", dc_pod(index), "-n", NAMESPACE, "-c", "dc", "--", "python3", "-c", _IN_DC + script, *args]
    return kube.kubectl(*argv, input=stdin).stdout


def create_account_on(kube: KubeCluster, index: int, username: str, password: str = GOOD_PASSWORD) -> None:
    """An account written into DC `index`'s own database alone: the other DCs get it only by pulling from it."""
    script = "from es4ps_samba.samdb import open_samdb_at\nopen_samdb_at(config.data_dir).newuser(sys.argv[1], input())"
    _python_in_dc(kube, index, script, username, stdin=password + "\n")


def inbound_replication(kube: KubeCluster, index: int) -> list[dict]:
    """DC `index`'s inbound replication links (`repsFrom`) as `samba-tool drs showrepl --json` on it lists them."""
    script = "from es4ps_samba.dc.health import showrepl\nprint(json.dumps(showrepl(config)['repsFrom']))"
    return json.loads(_python_in_dc(kube, index, script).strip().splitlines()[-1])


def domain_controllers_in_dns(nameserver: str, domain_realm: str) -> dict[str, list[str]]:
    """What a client asking the domain's DNS at `nameserver` finds, as an AD client locates DCs: the targets of
    `_ldap._tcp.dc._msdcs.<realm>` and the addresses of each."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver]
    resolver.lifetime = 10
    found = {}
    for record in resolver.resolve(f"_ldap._tcp.dc._msdcs.{domain_realm.lower()}", "SRV"):
        target = str(record.target).rstrip(".").lower()
        found[target] = sorted(str(a) for a in resolver.resolve(target, "A"))
    return found


# ---- people registering while something happens


@dataclass
class Outcome:
    """One registration: whether the portal took it, how long until the account was ready (None: never)."""

    username: str
    accepted: bool = False
    waited_s: float | None = None
    error: str = ""


def register(deployment: Deployment, prefix: str, patience_s: float = 180, ready_timeout_s: float = 900) -> Outcome:
    """A person registers, confirms from the mail and waits on the status page until the account is ready.

    What a gateway refuses (502-504, a broken connection: a portal replica or
    the ingress controller's backend gone) the person tries again, for up to
    `patience_s` per step. `waited_s`: from sending the form to "ready".
    """
    outcome = Outcome(f"{prefix}{uuid.uuid4().hex[:6]}")
    try:
        _register(deployment, outcome, patience_s, ready_timeout_s)
    except Exception as error:  # noqa: BLE001 - recorded: the caller reports every failed registration
        outcome.error = f"{type(error).__name__}: {error}"[:300]
    return outcome


def _patiently(step, what: str, patience_s: float) -> requests.Response:
    """Run `step()` until it answers other than a gateway error or a broken connection, for `patience_s`."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            response = step()
            if response.status_code not in GATEWAY_ERRORS:
                return response
            failure = f"HTTP {response.status_code}"
        except (requests.ConnectionError, requests.Timeout, GatewayRefused) as error:
            failure = f"{type(error).__name__}: {error}"[:200]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {failure} after {patience_s:.0f} s")
        time.sleep(1)


def _register(deployment: Deployment, outcome: Outcome, patience_s: float, ready_timeout_s: float) -> None:
    person = deployment.person()
    email = f"{outcome.username}@acme.example"
    started = time.monotonic()
    registered = _patiently(lambda: person.register(outcome.username, email), "registering", patience_s)
    if registered.status_code != 200 or "/status/" not in registered.url:
        outcome.error = f"registration refused: HTTP {registered.status_code}"
        return
    outcome.accepted = True
    link = deployment.mail.wait_for(email, timeout_s=300).link("/verify/")
    _patiently(lambda: person.confirm_link(link), "confirming", patience_s)
    deadline = started + ready_timeout_s
    while time.monotonic() < deadline:
        status = _patiently(lambda: person.get("/status.json"), "the status page", patience_s)
        state = status.json().get("state") if status.status_code == 200 else None
        if state == "ready":
            outcome.waited_s = time.monotonic() - started
            return
        if state == "failed":
            outcome.error = f"failed: {status.json()}"
            return
        time.sleep(0.5)
    outcome.error = f"not ready within {ready_timeout_s:.0f} s"


@dataclass
class Registrations:
    """People registering one after another (`workers` at a time) until `stop()` (es4ps_testkit.multinode.register)."""

    deployment: Deployment
    prefix: str
    workers: int = 2
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.workers)]

    def start(self) -> Registrations:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """No new registration starts; wait for those under way; every outcome."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        return self.outcomes

    @property
    def longest_wait_s(self) -> float:
        return max((o.waited_s for o in self.outcomes if o.waited_s is not None), default=0.0)

    @property
    def lost(self) -> list[Outcome]:
        """Registrations the portal took that never became ready accounts."""
        return [o for o in self.outcomes if o.accepted and o.waited_s is None]

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.outcomes.append(register(self.deployment, self.prefix))


# ---- nodes going away


def node_of(kube: KubeCluster, pod: str) -> str:
    """The node the Pod `pod` is scheduled to ("" while unscheduled); fails if there is no such Pod."""
    return kube.get("pod", pod, NAMESPACE)["spec"].get("nodeName", "")


def placed_on(kube: KubeCluster, pod: str) -> str:
    """`node_of` while waiting for a Pod its StatefulSet makes again: "" while there is no such Pod yet."""
    return kube.get("pod", pod, NAMESPACE, check=False).get("spec", {}).get("nodeName", "")


def node_holding_everything(kube: KubeCluster) -> str:
    """A node running a DC, a broker member and a portal replica (with 2 DCs and 2 portals on 3 nodes, one does)."""
    holding = [set(placement(kube, component).values()) for component in ("directory", "broker", "portal")]
    candidates = sorted(set.intersection(*holding) - {""})
    assert candidates, f"no node runs a DC, a broker member and a portal replica: {holding}"
    return candidates[0]


def drain(kube: KubeCluster, node: str, timeout_s: int = 600) -> subprocess.Popen:
    """`kubectl drain` as a platform engineer runs it before maintenance, in the background: it evicts through
    the PodDisruptionBudgets and retries what a budget refuses until `timeout_s`."""
    return subprocess.Popen(
        ["kubectl", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={timeout_s}s"],
        env=kube.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def uncordon(kube: KubeCluster, node: str) -> None:
    kube.kubectl("uncordon", node)


def wait_domain_ready(kube: KubeCluster, timeout_s: float = 900) -> dict:
    def ready() -> dict | None:
        domain = kube.get("es4psdomain", "acme", NAMESPACE)
        conditions = {c["type"]: c["status"] for c in domain.get("status", {}).get("conditions", [])}
        current = domain.get("status", {}).get("observedGeneration") == domain["metadata"]["generation"]
        return domain if current and conditions.get("Ready") == "True" else None

    return kube.eventually(ready, timeout=timeout_s, interval=3, message="the domain Ready")


# ---- this process as the portal (benchmarks)


@contextlib.contextmanager
def portal_stood_in(kube: KubeCluster, work: Path) -> Iterator[dict[str, str]]:
    """The portal's broker credentials and task keys as an environment for es4ps_testkit.tasks.TaskClient, while
    the domain is paused and its portal scaled to 0 (its consumer would take the result events); the operator
    brings the portal back when the block ends."""
    kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": True}}, NAMESPACE)
    try:
        kube.kubectl("scale", "statefulset", "acme-portal", "-n", NAMESPACE, "--replicas=0")
        kube.eventually(lambda: not pods(kube, "portal"), timeout=180, message="the portal's Pods gone")
        yield _portal_environment(kube, work)
    finally:
        kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": False}}, NAMESPACE)


def _portal_environment(kube: KubeCluster, work: Path) -> dict[str, str]:
    template = kube.get("statefulset", "acme-portal", NAMESPACE)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for c in template["containers"] for e in c.get("env", []) if "value" in e}
    files = {}
    for secret, keys in (
        ("acme-portal-broker-tls", ("ca.crt", "tls.crt", "tls.key")),
        ("acme-task-keys", ("signing-private.key", "sealing-public.key")),
    ):
        data = kube.get("secret", secret, NAMESPACE)["data"]
        for key in keys:
            files[key] = work / f"portal-{key}"
            files[key].write_bytes(base64.b64decode(data[key]))
            files[key].chmod(0o600)
    # Every DC's result key, the public half, as the portal's volume holds them (its consumer verifies events).
    result_keys = work / "result-keys"
    result_keys.mkdir(exist_ok=True)
    for index in range(len(pods(kube, "directory"))):
        public = kube.get("secret", f"acme-dc{index}-result-key", NAMESPACE)["data"]["public.key"]
        (result_keys / f"acme-dc{index}.key").write_bytes(base64.b64decode(public))
    url = env["ES4PS_BROKER_URL"]
    host = urlsplit(url).hostname
    # This machine reaches a broker member at its Pod's address (the domain's policy admits the nodes' network).
    member = pods(kube, "broker")["acme-broker-0"]["status"]["podIP"]
    return {
        "ES4PS_BROKER_URL": url.replace(host, member, 1),
        "ES4PS_BROKER_SERVER_NAME": host,
        "ES4PS_BROKER_CA_FILE": str(files["ca.crt"]),
        "ES4PS_BROKER_CERT_FILE": str(files["tls.crt"]),
        "ES4PS_BROKER_KEY_FILE": str(files["tls.key"]),
        "ES4PS_BROKER_QUEUE_TYPE": env["ES4PS_BROKER_QUEUE_TYPE"],
        "ES4PS_SIGNING_PRIVATE_KEY_FILE": str(files["signing-private.key"]),
        "ES4PS_SEALING_PUBLIC_KEY_FILE": str(files["sealing-public.key"]),
        "ES4PS_RESULT_KEYS_DIR": str(result_keys),
    }
