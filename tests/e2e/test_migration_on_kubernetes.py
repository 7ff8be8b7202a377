"""Moving an ES4PS-Containers installation onto the operator, on the real node (docs/migration.md, issue 28).

The old installation: its Samba AD DC as a plain process of this machine
(es4ps_testkit.legacy: provisioned and filled the way ES4PS-Containers'
worker does it, accounts with passwords) on an address of `lo` the node's
Pods reach, and its portal's database. The domain `college`, applied beside
the deployment's `acme` with `spec.directory.bootstrap.join`, joins it through
the operator: first with a wrong Administrator password (the check Job refuses,
Joined names the reason, nothing is written anywhere), then, the Secret fixed
and the Job deleted as the runbook says, the check passes, dc0 joins, the
Joined and ReplicationHealthy conditions. Then the runbook, step by step as an administrator runs it with
kubectl: the old people sign in on dc0 with their old passwords, a new
registration through the portal reaches the old DC, the old portal's people
are imported and moved, one claims their account, the FSMO roles move to dc0,
the old DC is stopped and removed, dc0 restarts as the domain's only DC, and
registrations go on. Each step prints how long it took (pytest -s); those are
the times in docs/migration.md. The tests run in this order and share the
domain; -x stops at the first failing step.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import json
import uuid

import ldb
import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.directory_checks import admin_connection
from es4ps_testkit.e2e import POD_SECURITY_LEVELS, enforce_pod_security
from es4ps_testkit.legacy import LegacyDC, LegacyPerson, legacy_portal_database
from es4ps_testkit.legacy import migration_step as step
from es4ps_testkit.live_domain import LiveDomain, example_domain_as
from es4ps_testkit.plugins.services import started_legacy_dc
from es4ps_testkit.registration import GOOD_PASSWORD

# The join, the restart and the waits for replication take minutes on two shared cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = NAMESPACE = "college"
HOST = "accounts.college.localhost"
MAIL_DOMAIN = "college.example"
STAFF_SECRET = "college-staff"
JOIN_SECRET = "old-domain-admin"
WRONG_ADMIN_PASSWORD = "Not-the-Old-Admin-Pass-9"
DC0_POD, PORTAL_POD = f"{NAME}-dc0-0", f"{NAME}-portal-0"
PEOPLE = [
    LegacyPerson("ana.lima", f"ana.lima@{MAIL_DOMAIN}", "Ana", "Lima", "Old-Pass-ana-1"),
    LegacyPerson("bruno", f"bruno@{MAIL_DOMAIN}", "Bruno", "Sá", "Old-Pass-bruno-2"),
    LegacyPerson("carla", f"carla@{MAIL_DOMAIN}", "Carla", "Reis", "Old-Pass-carla-3", verified=False),
]
ENABLED = [person for person in PEOPLE if person.verified]
NEW_PASSWORD = "Claimed-Pass-77"


class College(LiveDomain):
    """The joined domain, with the runbook's kubectl steps in its Pods."""

    def exec(self, pod: str, container: str, script: str, timeout: float = 600) -> str:
        """`kubectl exec <pod> -c <container> -- sh -c <script>`; its stdout (AssertionError with both streams)."""
        done = self.kube.kubectl(
            "exec", pod, "-n", self.namespace, "-c", container, "--", "sh", "-c", script, check=False, timeout=timeout
        )
        assert done.returncode == 0, f"{script} in {pod} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    def diagnostics(self) -> str:
        """The conditions, the Pods and the end of the join's logs: why the domain is not Ready, for the report."""
        conditions = self.get().get("status", {}).get("conditions", [])
        parts = [json.dumps([{k: c.get(k) for k in ("type", "status", "reason", "message")} for c in conditions])]
        parts.append(self.kube.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False).stdout)
        for target in (f"job/{NAME}-join-check", f"pod/{DC0_POD}"):
            for previous in ([], ["--previous"]):
                log = self.kube.kubectl(
                    "logs", target, "-n", self.namespace, "--all-containers", "--tail=60", *previous, check=False
                )
                parts.append(f"--- {target} {' '.join(previous)}:\n{log.stdout}{log.stderr}")
        events = self.kube.kubectl("get", "events", "-n", self.namespace, "--sort-by=.lastTimestamp", check=False)
        parts.append(events.stdout[-3000:])
        return "\n".join(parts)

    def copy_into(self, local, pod: str, container: str, path: str) -> None:
        self.kube.kubectl("cp", str(local), f"{self.namespace}/{pod}:{path}", "-c", container)

    def copy_out(self, pod: str, container: str, path: str, local) -> None:
        self.kube.kubectl("cp", f"{self.namespace}/{pod}:{path}", str(local), "-c", container)


def signs_in_on_legacy(legacy: LegacyDC, username: str, password: str) -> bool:
    """Whether the old DC accepts the account's password (a bind over LDAP as the person)."""
    try:
        legacy.samdb(username, password)
    except ldb.LdbError:
        return False
    return True


def pod_ready_again(college: College, uid: str) -> bool:
    """Whether a Pod other than `uid` of dc0 runs and is Ready."""
    pod = college.kube.get("pod", DC0_POD, NAMESPACE, check=False)
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return bool(pod) and pod["metadata"]["uid"] != uid and conditions.get("Ready") == "True"


@pytest.fixture(scope="module")
def legacy(deployment, tmp_path_factory):
    with step("the legacy DC provisioned and filled (the fixture)"):
        dc = started_legacy_dc(tmp_path_factory.mktemp("legacy"), PEOPLE, pod_reachable=True)
    yield dc
    dc.close()


def join_secret(password: str) -> dict:
    """The Secret the join reads the old Administrator password from."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": JOIN_SECRET, "namespace": NAMESPACE},
        "stringData": {"password": password},
    }


@pytest.fixture(scope="module")
def refused_join(deployment, legacy, tmp_path_factory):
    """The domain applied with a wrong old Administrator password: (the domain, the old DC's USN before)."""
    kube = deployment.kube
    staff = {"name": STAFF_SECRET, "password": "Staff-" + uuid.uuid4().hex}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    items = [
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": staff["name"], "namespace": NAMESPACE},
            "stringData": {"password": staff["password"]},
        },
        join_secret(WRONG_ADMIN_PASSWORD),
    ]
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    enforce_pod_security(kube, NAMESPACE, POD_SECURITY_LEVELS["Service"])
    directory = {
        "replicas": 1,
        "networkMode": "Service",
        "storage": {"size": "1Gi"},
        # The cluster's DNS does not know the old realm: the old DC answers it (the runbook's setting).
        "dnsForwarder": legacy.address,
        "bootstrap": {
            "join": {"realm": legacy.realm, "server": legacy.address, "credentialsSecretRef": {"name": JOIN_SECRET}}
        },
    }
    manifest = example_domain_as(
        deployment, NAME, realm=legacy.realm, netbios_name=legacy.netbios_name, organization="College",
        mail_domain=MAIL_DOMAIN, host=HOST, staff_secret=STAFF_SECRET, directory=directory,
    )  # fmt: skip
    manifest["metadata"]["namespace"] = NAMESPACE
    domain = College(deployment, tmp_path_factory.mktemp("college"), NAME, NAMESPACE, HOST, legacy.realm, MAIL_DOMAIN)
    usn_before = legacy.highest_usn()
    try:
        with step("the join check refusing a wrong password, until Joined names the reason"):
            kube.apply(json.dumps(manifest))
            try:
                kube.eventually(
                    lambda: domain.condition("Joined").get("reason") == "JoinCredentialsRefused",
                    timeout=300,
                    interval=1,
                    message="Joined naming the refused password",
                )
            except AssertionError as failure:
                raise AssertionError(f"{failure}\n{domain.diagnostics()}") from None
        yield domain, usn_before
    finally:
        kube.kubectl("delete", "es4psdomain", NAME, "-n", NAMESPACE, "--wait=true", "--timeout=300s", check=False)
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def college(refused_join, legacy):
    """The domain joined: the runbook's fix of a refused check (the Secret right, the check's Job deleted)."""
    domain, _ = refused_join
    with step("1. the join: the Secret fixed and the Job deleted, until the domain is Ready (check, dc0, portal)"):
        domain.kube.apply(json.dumps(join_secret(legacy.admin_password)))
        domain.kube.kubectl("delete", "job", f"{NAME}-join-check", "-n", NAMESPACE)
        try:
            domain.wait_ready(timeout=600)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{domain.diagnostics()}") from None
    domain.open_portal()
    return domain


def test_a_refused_join_names_its_reason_and_writes_nothing_in_either_directory_or_cluster(refused_join, legacy):
    domain, usn_before = refused_join
    joined, ready = domain.condition("Joined"), domain.condition("DirectoryReady")
    for condition in (joined, ready):
        assert (condition.get("status"), condition.get("reason")) == ("False", "JoinCredentialsRefused"), condition
    assert "refused the password" in joined["message"] and f"delete the Job {NAME}-join-check" in joined["message"]
    # Not run again on its own (a wrong password again and again could lock the account out).
    job = domain.kube.get("job", f"{NAME}-join-check", NAMESPACE)
    assert job["status"].get("failed") == 1 and not job["status"].get("active"), job["status"]
    # No DC, portal or file server until the check passes (the broker, certificates and policies come up as usual).
    for kind in ("statefulsets", "pods"):
        components = {
            item["metadata"]["name"]: item["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            for item in domain.kube.get(kind, namespace=NAMESPACE)["items"]
        }
        assert not {"directory", "portal", "files"} & set(components.values()), components
    assert legacy.highest_usn() == usn_before, "the refused check wrote to the old directory"
    # The password tried is in no status, event or log.
    events = domain.kube.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
    log = domain.kube.kubectl("logs", f"job/{NAME}-join-check", "-n", NAMESPACE).stdout
    assert "JoinCredentialsRefused" in log, log
    for seen in (json.dumps(domain.get()), events, log):
        assert WRONG_ADMIN_PASSWORD not in seen


def test_the_domain_joins_the_old_dc_and_the_old_accounts_sign_in_on_its_dc(college, legacy):
    joined = college.condition("Joined")
    assert joined.get("status") == "True", joined
    assert legacy.address in joined["message"] and legacy.realm in joined["message"], joined
    assert college.get()["status"]["directory"]["joined"] == legacy.address
    with step("ReplicationHealthy True (dc0 and the old DC replicate both ways)"):
        college.kube.eventually(
            lambda: college.condition("ReplicationHealthy").get("status") == "True",
            timeout=300,
            interval=5,
            message=lambda: f"ReplicationHealthy True (it says {college.condition('ReplicationHealthy')})",
        )
    # Asked of dc0, which replicates with the old DC (not the single DC of a new domain, with nothing to replicate).
    assert college.condition("ReplicationHealthy")["reason"] == "Replicating"
    # Every account the old worker enabled signs in on dc0 (LDAPS and Kerberos) with its old password.
    for person in PEOPLE:
        assert college.authenticates(0, person.username, person.password) is person.verified, person.username
    assert not college.authenticates(0, ENABLED[0].username, "Not-the-Old-Pass-1")


def test_a_registration_through_the_portal_reaches_the_old_dc(college, legacy):
    with step("a registration through the portal until it signs in on the old DC"):
        username = college.register("mig")
        wait_until(lambda: signs_in_on_legacy(legacy, username, GOOD_PASSWORD), 180, f"{username} on the old DC")
    assert college.logs_in(username)
    assert college.authenticates(0, username)
    assert not signs_in_on_legacy(legacy, username, "Not-the-Passw0rd!")


def test_the_old_portals_people_are_imported_moved_and_claim_their_accounts(college, legacy, tmp_path):
    database = legacy_portal_database(tmp_path / "db.sqlite3", PEOPLE)
    college.copy_into(database, PORTAL_POD, "portal", "/tmp/db.sqlite3")
    manage = "es4ps-portal manage import_es4ps_containers /tmp/db.sqlite3"
    with step("import_es4ps_containers (3 rows)"):
        college.exec(
            PORTAL_POD, "portal", f"{manage} --report /tmp/import-report.json --accounts-file /tmp/accounts.json"
        )
    college.copy_out(PORTAL_POD, "portal", "/tmp/import-report.json", tmp_path / "import-report.json")
    report = json.loads((tmp_path / "import-report.json").read_text())
    assert sorted(entry["username"] for entry in report["imported"]) == sorted(p.username for p in ENABLED), report
    college.copy_out(PORTAL_POD, "portal", "/tmp/accounts.json", tmp_path / "accounts.json")
    college.copy_into(tmp_path / "accounts.json", DC0_POD, "dc", "/tmp/accounts.json")
    with step("move-legacy-accounts (the imported accounts into the managed OU)"):
        moved = college.exec(
            DC0_POD, "dc", "ES4PS_LDAP_URL=ldap://$ES4PS_HOST_IP es4ps-samba-dc move-legacy-accounts /tmp/accounts.json"
        )
    assert sorted(json.loads(moved)["moved"]) == sorted(p.username for p in ENABLED), moved
    claimer = ENABLED[0]
    assert college.authenticates(0, claimer.username, claimer.password), "the move changed the old password"
    with step("a claim: the reset mail's link until the new password signs in"):
        owner = college.person()
        assert owner.post("/password/reset/", {"email": claimer.email}).status_code == 200
        link = college.deployment.mail.wait_for(claimer.email, timeout_s=120).link("/password/reset/confirm/")
        token = link.split("token=", 1)[1]
        chosen = owner.post(link, {"token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert chosen.url.endswith("/status/"), chosen.text[-2000:]
        owner.wait_for_status(lambda s: s["state"] == "ready", timeout_s=180)
    assert college.authenticates(0, claimer.username, NEW_PASSWORD)
    assert not college.authenticates(0, claimer.username, claimer.password)
    assert college.logs_in(claimer.username, NEW_PASSWORD)
    # Who has not claimed yet keeps the old password.
    assert college.authenticates(0, ENABLED[1].username, ENABLED[1].password)


def test_the_old_dc_hands_over_its_roles_is_demoted_and_registrations_go_on(college, legacy):
    legacy_step = (
        f"ES4PS_JOIN_SERVER=$ES4PS_HOST_IP ES4PS_LEAVING_DC={legacy.hostname} "
        f"ES4PS_LEAVING_SERVER={legacy.address} es4ps-samba-dc"
    )
    legacy.samdb().newuser("late.one", "Late-Pass-4")  # written on the old DC just before it goes
    with step("2. leave (the seven FSMO roles to dc0, the old DC's last changes pulled)"):
        college.exec(DC0_POD, "dc", f"{legacy_step} leave")
    assert college.authenticates(0, "late.one", "Late-Pass-4"), "leave did not pull the old DC's last change"
    legacy.stop()
    with step("remove (the stopped old DC forgotten)"):
        college.exec(DC0_POD, "dc", f"{legacy_step} remove")
    with step("dc0's restart until the domain is Ready again"):
        before = college.kube.get("pod", DC0_POD, NAMESPACE)["metadata"]["uid"]
        college.kube.kubectl("delete", "pod", DC0_POD, "-n", NAMESPACE)
        try:
            college.kube.eventually(
                lambda: pod_ready_again(college, before), timeout=300, interval=2, message=f"{DC0_POD} Ready again"
            )
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{college.diagnostics()}") from None
        college.wait_ready(timeout=300)
    address, tls_name, ca = college.dc(0)
    base = legacy.base_dn
    with admin_connection(address, ca, tls_name, legacy.realm, legacy.admin_password) as ldap:
        ldap.search(f"CN=Sites,CN=Configuration,{base}", "(objectClass=server)", attributes=["cn"])
        servers = {str(entry.cn).lower() for entry in ldap.entries}
        ldap.search(base, "(objectClass=domainDNS)", attributes=["fSMORoleOwner"], search_scope="BASE")
        pdc = str(ldap.entries[0].fSMORoleOwner)
        ldap.search(base, "(objectClass=domainDNS)", attributes=["ms-DS-MachineAccountQuota"], search_scope="BASE")
        quota = str(ldap.entries[0]["ms-DS-MachineAccountQuota"])
    assert servers == {tls_name.split(".")[0]}, servers
    assert tls_name.split(".")[0].upper() in pdc.upper(), pdc
    assert quota == "0", "dc0 did not apply the domain-wide settings once the domain was its own"
    with step("a registration through the portal after the old DC left"):
        after = college.register("aft")
    assert college.logs_in(after)
    assert college.authenticates(0, ENABLED[1].username, ENABLED[1].password)
    assert college.authenticates(0, ENABLED[0].username, NEW_PASSWORD)
