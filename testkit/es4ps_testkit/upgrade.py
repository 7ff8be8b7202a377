"""An organisation on the previous release, upgraded in place to this checkout's, as a GitOps pipeline does it.

Campus installs from the registry (es4ps_testkit.releases) exactly as the
README says: the `es4ps-crds` chart, then the `es4ps` chart as its own release
(`campus`, namespace `campus-system`, serving only the namespace `campus`),
with a values file it keeps in git: the pull secret, the broker image it
chose, log format. Every product image is pulled by the kubelet from the
registry with the pull secret (the domain's Pods through the namespace's
default ServiceAccount). Its domain has two DCs, backups to a volume and
registered people. The upgrade is what a pipeline runs when the version in
git changes: `helm upgrade` of the CRD chart, then of the operator's, with
the same values file.

`UpgradeWatch` looks at the domain from outside while that happens: the
portal's page through the ingress controller every quarter second (how long
it did not answer: `upgrade_unavailable_s`), the domain's Ready condition,
and people registering all along (each retried until the portal takes it, as
a person would, and then followed until the account is ready).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
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


def backup(kube, name: str, domain: str = NAME, timeout: float = 600) -> dict:
    """An ES4PSBackup of the domain, waited for; its status (Completed, or the test fails with the Job's log)."""
    kube.apply(
        json.dumps(
            {
                "apiVersion": "es4ps.io/v1alpha1",
                "kind": "ES4PSBackup",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"domain": domain},
            }
        )
    )
    phase = kube.eventually(
        lambda: kube.get("es4psbackup", name, NAMESPACE).get("status", {}).get("phase") in ("Completed", "Failed"),
        timeout=timeout,
        interval=3,
        message=f"the backup {name} finishing",
    )
    status = kube.get("es4psbackup", name, NAMESPACE)["status"]
    assert phase and status["phase"] == "Completed", status
    return status


@dataclass(frozen=True)
class PodState:
    uid: str
    restarts: int
    images: tuple[str, ...]


def data_path(kube, domain: str = NAME) -> dict[str, tuple[dict, dict[str, PodState]]]:
    """Each StatefulSet of the domain's data path -> (its Pod template, {Pod name: its uid, restarts, images})."""
    selector = f"app.kubernetes.io/instance={domain}"
    found: dict[str, tuple[dict, dict[str, PodState]]] = {}
    for statefulset in kube.get("statefulsets", namespace=NAMESPACE)["items"]:
        labels = statefulset["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/instance") == domain:
            found[statefulset["metadata"]["name"]] = (statefulset["spec"]["template"], {})
    pods = kube.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    for pod in json.loads(pods)["items"]:
        owner = next((o["name"] for o in pod["metadata"].get("ownerReferences", []) if o["kind"] == "StatefulSet"), "")
        if owner in found:
            statuses = pod.get("status", {}).get("containerStatuses", [])
            found[owner][1][pod["metadata"]["name"]] = PodState(
                pod["metadata"]["uid"],
                sum(s.get("restartCount", 0) for s in statuses),
                tuple(sorted(c["image"] for c in pod["spec"]["containers"])),
            )
    return found


def settled(kube, digests: set[str], domain: str = NAME) -> bool:
    """Every StatefulSet of the domain rolled out to images of `digests`: its Pods on that revision and ready.

    The images matter: between two steps of the DCs' roll every StatefulSet can look rolled out and the
    domain Ready, while dc0 and the portal still wait for their turn on the previous release.
    """
    for statefulset in kube.get("statefulsets", namespace=NAMESPACE)["items"]:
        if statefulset["metadata"].get("labels", {}).get("app.kubernetes.io/instance") != domain:
            continue
        containers = statefulset["spec"]["template"]["spec"]["containers"]
        if any(container["image"].rsplit("@", 1)[-1] not in digests for container in containers):
            return False
        status, wanted = statefulset.get("status", {}), statefulset["spec"].get("replicas", 1)
        if statefulset["metadata"]["generation"] != status.get("observedGeneration"):
            return False
        if status.get("updateRevision") != status.get("currentRevision") or status.get("readyReplicas", 0) != wanted:
            return False
    return True


@dataclass
class UpgradeWatch:
    """The portal, the Ready condition and registrations, watched from outside while an upgrade runs."""

    domain: LiveDomain
    registration_every_s: float = 15.0
    unanswered: list[tuple[float, float]] = field(default_factory=list)  # (from, to) seconds after the start
    not_ready: list[tuple[float, float]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    upgrade_s: float | None = None  # from the first `helm upgrade` to every StatefulSet rolled out and Ready

    def __enter__(self) -> UpgradeWatch:
        self._stop = threading.Event()
        self._abandon = threading.Event()  # the upgrade failed: people stop trying
        self._start = time.monotonic()
        self._people: list[threading.Thread] = []
        self._watchers = [
            threading.Thread(target=self._watch, args=(self.domain.portal_answers, self.unanswered, 0.25)),
            threading.Thread(target=self._watch, args=(lambda: self.domain.ready() is not None, self.not_ready, 2)),
            threading.Thread(target=self._register_all_along),
        ]
        for thread in self._watchers:
            thread.daemon = True
        for thread in self._watchers:
            thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Stop watching; wait for every person who started registering to be done (ready, or given up).

        If the upgrade failed, nobody waits for them: the test reports the upgrade's failure.
        """
        self._stop.set()
        if exc_type is not None:
            self._abandon.set()
        for thread in [*self._watchers, *self._people]:
            thread.join(timeout=5 if exc_type is not None else 900)

    def _now(self) -> float:
        return time.monotonic() - self._start

    def _watch(self, probe, gaps: list[tuple[float, float]], interval_s: float) -> None:
        """Record each stretch of time `probe` is false: from the first false answer to the next true one."""
        down_since = None
        while not self._stop.is_set():
            try:
                answered = probe()
            except Exception:  # noqa: BLE001 - any failure to answer is an answer of "no"
                answered = False
            now = self._now()
            if not answered and down_since is None:
                down_since = now
            elif answered and down_since is not None:
                gaps.append((down_since, now))
                down_since = None
            self._stop.wait(interval_s)
        if down_since is not None:
            gaps.append((down_since, self._now()))

    def _register_all_along(self) -> None:
        """A new person every `registration_every_s` while the upgrade runs."""
        index = 0
        while not self._stop.is_set():
            index += 1
            person = threading.Thread(target=self._register, args=(f"up{index}x{uuid.uuid4().hex[:4]}",), daemon=True)
            person.start()
            self._people.append(person)
            self._stop.wait(self.registration_every_s)

    def _register(self, username: str) -> None:
        """Send the form until the portal takes it (a person tries again), then confirm and follow it to ready.

        Once the portal has taken a registration it must complete: a failure after that is recorded.
        """
        email, deadline = f"{username}@{self.domain.mail_domain}", time.monotonic() + 900
        person, last = None, ""
        while person is None and time.monotonic() < deadline and not self._abandon.is_set():
            try:
                candidate = self.domain.person()
                sent = candidate.register(username, email)
                if sent.status_code == 200 and "/status/" in sent.url:
                    person = candidate
                else:
                    last = f"HTTP {sent.status_code} at {sent.url}"
            except Exception as exc:  # noqa: BLE001 - the portal away for a moment: try again
                last = f"{type(exc).__name__}: {str(exc)[:200]}"
            if person is None:
                time.sleep(1)
        if person is None:
            self.failures.append(f"{username}: the portal never took the registration ({last})")
            return
        state = ""
        try:
            person.confirm_link(self.domain.deployment.mail.wait_for(email, timeout_s=300).link("/verify/"))
            while time.monotonic() < deadline and not self._abandon.is_set():
                state = self._state(person, username)
                if state in ("ready", "failed"):
                    break
                time.sleep(1)
            if state != "ready":
                self.failures.append(f"{username}: taken by the portal, ended {state or 'unknown'}")
                return
        except Exception as exc:  # noqa: BLE001 - recorded, and the test fails on it
            self.failures.append(f"{username}: taken by the portal, then {type(exc).__name__}: {exc}")
            return
        self.registered.append(username)
        self.domain.accounts.append(username)

    def _state(self, person, username: str) -> str:
        """The registration's state on the person's status page ("" while it does not answer).

        A page the previous release's portal opened follows the account by its key, this release's by the
        registration's id: once the portal has rolled, it shows no account there (docs/upgrading.md) and the
        person signs in instead, as the page says. Signed in to the portal: ready.
        """
        try:
            return person.status()["state"]
        except requests.HTTPError as exc:
            if exc.response.status_code != 404:
                return ""
        except Exception:  # noqa: BLE001 - the status page away for a moment
            return ""
        try:
            return "ready" if self.domain.logs_in(username) else ""
        except Exception:  # noqa: BLE001 - the portal away for a moment
            return ""

    @staticmethod
    def total(gaps: list[tuple[float, float]]) -> float:
        return round(sum(end - start for start, end in gaps), 2)

    def report(self) -> dict:
        """What was seen, for the test's output and the benchmark."""
        return {
            "upgrade_unavailable_s": self.total(self.unanswered),
            "not_ready_s": self.total(self.not_ready),
            "portal_gaps": [(round(a, 1), round(b, 1)) for a, b in self.unanswered],
            "registered_during_upgrade": len(self.registered),
            "upgrade_s": self.upgrade_s,
        }


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


def upgrade_watched(adopter: Adopter, domain: LiveDomain, settle_s: float = 20) -> UpgradeWatch:
    """`helm upgrade` of both charts to this release while watching; returns once every Pod rolled and settled."""
    kube, published = domain.kube, adopter.published
    started = time.monotonic()
    with UpgradeWatch(domain) as watch:
        time.sleep(10)  # the watch sees the domain serving before the pipeline runs
        helm_started = time.monotonic()
        adopter.install(published.current)
        operator_image = published.image(published.current, "operator")
        kube.eventually(
            lambda: all(
                container["image"] == operator_image
                for pod in kube.get("pods", namespace=OPERATOR_NAMESPACE)["items"]
                for container in pod["spec"]["containers"]
                if pod["status"].get("phase") == "Running"
            ),
            timeout=300,
            message="the operator of this release running",
        )
        released = published.summary(published.current)["images"].values()
        chosen_broker = published.summary(published.previous)["images"]["rabbitmq"]  # the values file's
        digests = {image["digest"] for image in [*released, chosen_broker]}
        kube.eventually(
            lambda: domain.ready() and settled(kube, digests),
            timeout=1500,
            interval=5,
            message="the domain Ready with every StatefulSet rolled out",
        )
        watch.upgrade_s = round(time.monotonic() - helm_started, 1)
        time.sleep(settle_s)  # and serving a while after
    log(f"upgrade {published.previous} -> {published.current} in {time.monotonic() - started:.0f} s: {watch.report()}")
    return watch


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
    """Delete Campus's domains (their volumes go: deletionPolicy Delete) and backups, its operator release and
    namespaces.

    The backups and domains go while Campus's operator still runs: each carries its finalizer, and the
    namespace would wait for them for good once the operator is gone. The CRD release Campus took over goes
    back to this checkout's chart: the other tests of the shared cluster run on it (after a failed upgrade it
    would still be the previous release's).
    """
    delete = ("--wait=true", "--timeout=300s")
    kube.kubectl("delete", "es4psbackup", "--all", "-n", NAMESPACE, *delete, check=False, timeout=330)
    for name in domains:
        kube.kubectl("delete", "es4psdomain", name, "-n", NAMESPACE, *delete, check=False, timeout=330)
    kube.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", check=False)
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        kube.kubectl("delete", "namespace", namespace, *delete, check=False, timeout=330)
    kube.helm("upgrade", "--install", steps.CRD_RELEASE, str(steps.CRD_CHART), "--wait")
