"""Directory day 2 on the real node: two DCs that replicate, lose a Pod or a volume, roll, leave, and a restore.

A second domain, `beta`, applied as YAML beside the chart's `acme`: two DCs in
`networkMode: Service` (each its own Pod address, both on this one node),
three brokers with quorum queues, backups to a volume, `deletionPolicy: Delete`. The tests run in this order and
share it; the last one deletes it and brings it back from its backup. What
acme lacks is scanned here too: the brokers' Erlang distribution over TLS and
a DC in its own Pod.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_operator import naming
from es4ps_operator.builders.directory import DATA_DIR as DC_DATA_DIR
from es4ps_testkit.directory_checks import admin_connection
from es4ps_testkit.e2e import POD_SECURITY_LEVELS, enforce_pod_security
from es4ps_testkit.live_domain import LiveDomain, example_domain_as
from es4ps_testkit.registration import GOOD_PASSWORD
from es4ps_testkit.tls_scan import Port, scan

# Each test may wait for DCs to provision, join, roll or restore; the first also waits for both domains.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

NAME = NAMESPACE = "beta"
HOST = "accounts.beta.localhost"
REALM = "AD.BETA.EXAMPLE"
MAIL_DOMAIN = "beta.example"
STAFF_SECRET = "beta-staff"  # noqa: S105 - the Secret's name


def beta_domain(deployment, **directory_changes) -> dict:
    """examples/acme.yaml made into `beta`: two DCs in Service mode, three brokers, backups to a volume, data
    deleted with it."""
    directory = {
        "replicas": 2,
        "networkMode": "Service",
        "storage": {"size": "1Gi"},
        "backup": {"keep": 2, "destination": {"volume": {"size": "1Gi"}}},
        **directory_changes,
    }
    domain = example_domain_as(
        deployment, NAME, realm=REALM, netbios_name="BETA", organization="Beta College", mail_domain=MAIL_DOMAIN,
        host=HOST, staff_secret=STAFF_SECRET, directory=directory,
    )  # fmt: skip
    domain["metadata"]["namespace"] = NAMESPACE
    # Three brokers with quorum queues (a broker Pod may go while people register).
    domain["spec"]["broker"] = {**domain["spec"].get("broker", {}), "replicas": 3}
    return domain


class Beta(LiveDomain):
    """The `beta` domain, with what the day-2 tests ask of its replication and topology."""

    def __init__(self, deployment, directory: Path) -> None:
        super().__init__(deployment, directory, NAME, NAMESPACE, HOST, REALM, MAIL_DOMAIN)

    def wait_replication_healthy(self) -> None:
        """Every 15 s while a link fails the DCs check again and the operator asks them (docs/operations.md)."""
        started, said = time.monotonic(), [""]

        def healthy() -> bool:
            condition = self.condition("ReplicationHealthy")
            if condition.get("message") != said[0]:  # how it got there, in the test's output
                said[0] = condition.get("message", "")
                print(f"\n{time.monotonic() - started:5.0f} s ReplicationHealthy: {said[0]}", file=sys.stderr)
            return condition.get("status") == "True"

        try:
            self.kube.eventually(
                healthy,
                timeout=420,
                interval=5,
                message=lambda: f"ReplicationHealthy True (it says {self.condition('ReplicationHealthy')})",
            )
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.replication_diagnostics()}") from None

    def replication_diagnostics(self) -> str:
        """What each DC says of its links, and the end of its log: why replication fails, for the test's report."""
        parts = []
        for index, pod in sorted(self.dc_pods().items()):
            name = pod["metadata"]["name"]
            shown = self.kube.kubectl(
                "exec", name, "-n", NAMESPACE, "-c", "dc", "--",
                "samba-tool", "drs", "showrepl", "--machine-pass", f"--configfile={DC_DATA_DIR}/etc/smb.conf",
                pod["status"].get("podIP", "127.0.0.1"),
                check=False, timeout=120,
            )  # fmt: skip
            log = self.kube.kubectl("logs", name, "-n", NAMESPACE, "-c", "dc", "--tail=60", check=False)
            parts.append(f"--- dc{index} showrepl:\n{shown.stdout}{shown.stderr}\n--- dc{index} log:\n{log.stdout}")
        return "\n".join(parts)

    def directory_names(self, index: int) -> dict[str, set[str]]:
        """What DC `index` says the topology holds: servers, DC computer accounts, DNS names of the zone."""
        address, tls_name, ca = self.dc(index)
        base = ",".join(f"DC={part}" for part in REALM.lower().split("."))
        with admin_connection(address, ca, tls_name, REALM, self.admin_password()) as ldap:
            ldap.search(f"CN=Sites,CN=Configuration,{base}", "(objectClass=server)", attributes=["cn"])
            servers = {str(e.cn).lower() for e in ldap.entries}
            ldap.search(f"OU=Domain Controllers,{base}", "(objectClass=computer)", attributes=["cn"])
            computers = {str(e.cn).lower() for e in ldap.entries}
            # A node whose last record went is kept tombstoned until scavenged (as AD does): not a name.
            zone = f"DC={REALM.lower()},CN=MicrosoftDNS,DC=DomainDnsZones,{base}"
            ldap.search(zone, "(&(objectClass=dnsNode)(!(dNSTombstoned=TRUE)))")
            dns = {e.entry_dn.split(",")[0][3:].lower() for e in ldap.entries}
        return {"servers": servers, "computers": computers, "dns": dns}


@pytest.fixture(scope="module")
def beta(deployment, tmp_path_factory):
    kube = deployment.kube
    staff = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": STAFF_SECRET, "namespace": NAMESPACE},
        "stringData": {"password": "Staff-" + uuid.uuid4().hex},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, staff]}))
    # Service mode: every Pod of the domain is admitted under `baseline` (docs/operator.md, "Pods").
    enforce_pod_security(kube, NAMESPACE, POD_SECURITY_LEVELS["Service"])
    started = time.monotonic()
    kube.apply(json.dumps(beta_domain(deployment)))
    domain = Beta(deployment, tmp_path_factory.mktemp("beta"))
    domain.wait_ready()
    print(f"\nbeta (2 DCs, Service mode) Ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    domain.open_portal()
    yield domain
    kube.kubectl("delete", "es4psdomain", NAME, "-n", NAMESPACE, "--wait=true", "--timeout=300s", check=False)
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_two_dcs_in_service_mode_replicate_both_ways(beta):
    assert set(beta.dc_pods()) == {0, 1}
    beta.wait_replication_healthy()
    username = beta.register("rep")
    seconds = beta.wait_authenticates((0, 1), username)
    print(f"\nan account ready in the portal authenticated on both DCs {seconds:.1f} s later", file=sys.stderr)
    assert not beta.authenticates(1, username, GOOD_PASSWORD + "x")
    # Both DCs name both in the topology: they replicate with each other.
    for index in (0, 1):
        assert {"dc0", "dc1"} <= beta.directory_names(index)["servers"]


def test_the_clustered_brokers_and_a_dc_in_its_own_pod_have_no_tls_finding(beta, tmp_path):
    """sslyze on beta's TLS ports acme has none of: a broker node's Erlang distribution, a Service-mode DC."""
    deployment = beta.deployment
    broker = deployment.certificate_files(f"{NAME}-broker-tls", tmp_path / "broker", NAMESPACE)
    monitoring = deployment.certificate_files(f"{NAME}-monitoring-tls", tmp_path / "monitoring", NAMESPACE)
    address, tls_name, _ca = beta.dc(0)
    # A broker node at its Pod's address, which this machine (the node) reaches: through a port-forward sslyze
    # takes the relay's closed connections for a server that rejects it.
    broker_node = deployment.kube.get("pod", f"{NAME}-broker-1", NAMESPACE)["status"]["podIP"]
    ports = [
        # A node of the cluster shows the broker certificate to its peers; the scan does the same.
        Port(
            "broker inter-node (Erlang distribution)",
            broker_node,
            25672,
            f"{NAME}-broker.{NAMESPACE}.svc",
            client_cert=broker.cert_file,
            client_key=broker.key_file,
        ),
        Port("service-mode dc ldaps", address, 636, tls_name),
        Port("service-mode dc ldap starttls", address, 389, tls_name, starttls="ldap"),
        Port(  # on the Pod's address only: not where a port-forward arrives
            "service-mode dc health endpoint",
            address,
            naming.DC_HEALTH_PORT,
            f"{NAME}-directory.{NAMESPACE}.svc",
            client_cert=monitoring.cert_file,
            client_key=monitoring.key_file,
        ),
    ]
    findings = scan(ports)
    assert findings == {port.label: [] for port in ports}


def test_registrations_flow_while_a_broker_pod_is_deleted(beta):
    """Three brokers, quorum queues: one broker Pod goes while people register; none refused, none lost."""
    kube = beta.kube
    # The provisioning queue is a quorum queue with a member on every broker (raft state of each).
    members = kube.kubectl(
        "exec", f"{NAME}-broker-1", "-n", NAMESPACE, "-c", "rabbitmq", "--",
        "rabbitmq-queues", "-q", "quorum_status", PROVISIONING_QUEUE, "--vhost", "es4ps", "--formatter", "json",
        timeout=180,
    )  # fmt: skip
    states = {
        member["Node Name"].split("@")[1].split(".")[0]: member["Raft State"] for member in json.loads(members.stdout)
    }
    assert set(states) == {f"{NAME}-broker-{index}" for index in range(3)}, states

    victim = f"{NAME}-broker-0"
    before = kube.get("pod", victim, NAMESPACE)["metadata"]["uid"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        registering = [pool.submit(beta.register, f"q{n}x") for n in range(9)]
        time.sleep(5)  # tasks are flowing
        kube.kubectl("delete", "pod", victim, "-n", NAMESPACE, "--wait=false")
        usernames = [future.result() for future in registering]  # each accepted, created and enabled
    kube.eventually(
        lambda: kube.get("pod", victim, NAMESPACE, check=False).get("metadata", {}).get("uid") not in (None, before),
        timeout=180,
        message="the deleted broker's Pod back",
    )
    beta.wait_ready(timeout=600)
    # Each account was made by one DC's worker (either consumes the queue); replication brings it to the other.
    for username in usernames:
        beta.wait_authenticates((0, 1), username)


def test_registrations_complete_through_dc1_while_dc0_is_away(beta):
    kube = beta.kube
    kube.merge_patch("es4psdomain", NAME, {"spec": {"paused": True}}, NAMESPACE)
    kube.kubectl("scale", "statefulset", f"{NAME}-dc0", "-n", NAMESPACE, "--replicas=0")
    kube.eventually(lambda: 0 not in beta.dc_pods(), timeout=120, message="dc0's Pod gone")

    username = beta.register("away")  # only dc1's worker is there to create and enable it
    assert beta.authenticates(1, username)

    kube.merge_patch("es4psdomain", NAME, {"spec": {"paused": False}}, NAMESPACE)
    beta.wait_ready(timeout=600)
    # dc0 is back and catches up: both DCs hold every account.
    for account in beta.accounts:
        beta.wait_authenticates((0, 1), account)


def test_a_dc_whose_volume_is_lost_joins_again_under_its_name(beta):
    kube = beta.kube
    kube.merge_patch("es4psdomain", NAME, {"spec": {"paused": True}}, NAMESPACE)
    kube.kubectl("scale", "statefulset", f"{NAME}-dc1", "-n", NAMESPACE, "--replicas=0")
    kube.eventually(lambda: 1 not in beta.dc_pods(), timeout=120, message="dc1's Pod gone")
    lost = kube.get("pvc", f"data-{NAME}-dc1-0", NAMESPACE)["metadata"]["uid"]
    kube.kubectl("delete", "pvc", f"data-{NAME}-dc1-0", "-n", NAMESPACE, "--wait=true")

    kube.merge_patch("es4psdomain", NAME, {"spec": {"paused": False}}, NAMESPACE)
    beta.wait_ready(timeout=900)
    assert kube.get("pvc", f"data-{NAME}-dc1-0", NAMESPACE)["metadata"]["uid"] != lost
    for account in beta.accounts:
        beta.wait_authenticates((1,), account)
    assert beta.directory_names(0)["servers"] >= {"dc0", "dc1"}
    beta.wait_replication_healthy()


def test_a_new_samba_image_rolls_one_dc_at_a_time(beta):
    kube = beta.kube
    current = kube.get("statefulset", f"{NAME}-dc0", NAMESPACE)["spec"]["template"]["spec"]["containers"][0]["image"]
    rolled = f"{current.rsplit(':', 1)[0]}:rolled"
    beta.deployment.platform.tag_image(current, rolled)

    kube.merge_patch("es4psdomain", NAME, {"spec": {"directory": {"image": rolled}}}, NAMESPACE)
    order: list[int] = []

    def rolled_out() -> bool:
        for index, pod in beta.dc_pods().items():
            images = {c["image"] for c in pod["spec"]["containers"]}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
            if rolled in images and ready and index not in order:
                order.append(index)
        return len(order) == 2

    kube.eventually(rolled_out, timeout=1200, interval=3, message="both DCs on the new image")
    assert order == [1, 0], f"the DCs rolled in the order {order} (the highest index goes first)"
    jobs = {j["metadata"]["name"] for j in kube.get("jobs", namespace=NAMESPACE)["items"]}
    assert any(name.startswith(f"{NAME}-dbcheck-") for name in jobs) or beta.condition("Ready")["status"] == "True"
    beta.wait_ready(timeout=600)
    for account in beta.accounts:
        assert beta.authenticates(0, account) and beta.authenticates(1, account)


def test_lowering_replicas_demotes_the_leaving_dc(beta):
    kube = beta.kube
    assert "dc1" in beta.directory_names(0)["computers"]
    kube.merge_patch("es4psdomain", NAME, {"spec": {"directory": {"replicas": 1}}}, NAMESPACE)
    kube.eventually(
        lambda: not kube.get("statefulset", f"{NAME}-dc1", NAMESPACE, check=False),
        timeout=600,
        interval=3,
        message="dc1's StatefulSet removed after it left",
    )
    beta.wait_ready(timeout=600)

    def forgotten() -> dict | None:
        names = beta.directory_names(0)
        return names if "dc1" not in names["servers"] else None

    # The remove step runs once dc1's Pod has stopped: the domain forgets it moments after Ready.
    names = kube.eventually(forgotten, timeout=300, interval=5, message="dc0 no longer naming dc1 as a server")
    assert "dc1" not in names["computers"], names
    assert "dc1" not in names["dns"], names
    # deletionPolicy Delete: the leaving DC's volume goes too
    kube.eventually(
        lambda: not kube.get("pvc", f"data-{NAME}-dc1-0", NAMESPACE, check=False),
        timeout=120,
        message="dc1's volume deleted",
    )
    for account in beta.accounts:
        assert beta.authenticates(0, account)


def test_a_deleted_domain_comes_back_from_its_backup(beta, deployment):
    kube = beta.kube
    backup = {
        "apiVersion": "es4ps.io/v1alpha1",
        "kind": "ES4PSBackup",
        "metadata": {"name": "beta-before-delete", "namespace": NAMESPACE},
        "spec": {"domain": NAME},
    }
    started = time.monotonic()
    kube.apply(json.dumps(backup))
    done = kube.eventually(
        lambda: (
            kube.get("es4psbackup", "beta-before-delete", NAMESPACE).get("status", {}).get("phase")
            in ("Completed", "Failed")
        ),
        timeout=600,
        interval=3,
        message="the backup finishing",
    )
    assert done
    status = kube.get("es4psbackup", "beta-before-delete", NAMESPACE)["status"]
    if status["phase"] != "Completed":
        logs = kube.kubectl("logs", "job/beta-before-delete", "-n", NAMESPACE, "--all-containers", check=False)
        pytest.fail(f"the backup failed: {status}\nits Job's log:\n{(logs.stdout + logs.stderr)[-4000:]}")
    print(f"\nbackup Completed in {time.monotonic() - started:.0f} s, {status['sizeBytes']} bytes", file=sys.stderr)
    assert status["location"].startswith(f"volume:{NAME}-backups/")
    kube.eventually(lambda: beta.get()["status"].get("lastBackup"), timeout=120, message="status.lastBackup")
    listed = kube.kubectl("get", "es4psdomains", "-n", NAMESPACE).stdout
    assert "LAST BACKUP" in listed, listed

    person_password_checks = list(beta.accounts)
    kube.kubectl("delete", "es4psdomain", NAME, "-n", NAMESPACE, "--wait=true", "--timeout=300s")
    kube.eventually(
        lambda: not [c for c in kube.get("pvc", namespace=NAMESPACE)["items"] if "-dc" in c["metadata"]["name"]],
        timeout=300,
        message="the DCs' volumes deleted with the domain",
    )
    assert kube.get("pvc", f"{NAME}-backups", NAMESPACE), "the backups' volume went with the domain"

    started = time.monotonic()
    restored = beta_domain(deployment, replicas=2)
    restored["spec"]["directory"]["bootstrap"] = {"recovery": {"backup": "beta-before-delete"}}
    kube.apply(json.dumps(restored))
    domain = beta.wait_ready(timeout=1200)
    print(f"\nbeta restored from its backup, Ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    assert domain["status"].get("directory", {}).get("restored") is True, domain["status"]
    beta.open_portal()  # a new portal certificate (its Secret went with the domain)
    for account in person_password_checks:
        beta.wait_authenticates((0, 1), account, timeout=300)
        assert beta.logs_in(account), f"{account} cannot sign in to the restored portal"
