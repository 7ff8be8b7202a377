"""End to end on Kubernetes: a person registers through the deployed portal and logs in to the domain.

Then the operations a platform team lives with: the portal Pod dies, the
broker restarts with a registration queued, the domain changes by
`helm upgrade`. The tests run in this order and share the one deployment.
"""

from __future__ import annotations

import json
import uuid

import pytest
from es4ps_localcluster import demo
from es4ps_testkit.registration import GOOD_PASSWORD

pytestmark = pytest.mark.e2e
WRONG_PASSWORD = "Wrong-Horse-42"  # noqa: S105 - a test password


def register_and_verify(deployment, person, username: str) -> dict:
    """Register, take the link from the mail the SMTP server caught, confirm it; the status once ready."""
    email = f"{username}@acme.example"
    registered = person.register(username, email)
    assert registered.status_code == 200 and "/status/" in registered.url, registered.text[:500]
    mail = deployment.mail.wait_for(email, timeout_s=120)
    confirmed = person.confirm_link(mail.link("/verify/"))
    assert confirmed.status_code == 200, confirmed.text[:500]
    return person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=180)


def pod_uid(deployment, name: str) -> str:
    return deployment.kube.get("pod", name, namespace="acme")["metadata"]["uid"]


def test_a_person_registers_verifies_and_logs_in_to_the_domain(deployment):
    person = deployment.person()
    username = f"ada{uuid.uuid4().hex[:5]}"
    status = register_and_verify(deployment, person, username)
    assert status["state"] == "ready", status
    assert status["email_verified"] is True

    # The directory's own answer, in the DC's Pod: the chosen password works, another does not.
    assert deployment.password_authenticates(username, GOOD_PASSWORD)
    assert not deployment.password_authenticates(username, WRONG_PASSWORD)
    signed_in = person.login(username, GOOD_PASSWORD)
    assert signed_in.status_code == 200 and "/login/" not in signed_in.url


# Run in a probe Pod: wait until every target expected open answers (a new Pod's address reaches the
# policy controller a moment after it starts), then try the others once each.
PROBE = """
import json, socket, sys, time
targets = json.loads(sys.argv[1])
def answers(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False
deadline = time.monotonic() + 60
while not all(answers(h, p) for n, (h, p, open_) in targets.items() if open_) and time.monotonic() < deadline:
    time.sleep(1)
print(json.dumps({n: "open" if answers(h, p) else "blocked" for n, (h, p, open_) in targets.items()}))
"""


def probe_from(deployment, namespace: str, targets: dict[str, tuple[str, int, bool]]) -> dict[str, str]:
    """Connect from a Pod in `namespace` to each (host, port, expected open); "open" or "blocked" per target.

    The namespace is made for the probe unless it exists (a cluster may run a real ingress controller
    there), and only what the probe made is deleted afterwards.
    """
    kube = deployment.kube
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
                    "image": demo.images.IMAGES["operator"].ref,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", PROBE, json.dumps(targets)],
                }
            ],
        },
    }
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
    return json.loads(logs.strip().splitlines()[-1])


def test_network_policies_admit_only_the_intended_clients(deployment):
    """The operator's NetworkPolicies, enforced by the node (kube-router here, kindnet on kind)."""
    kube = deployment.kube
    portal = (kube.get("pod", "acme-portal-0", "acme")["status"]["podIP"], 8000)
    broker = (kube.get("pod", "acme-broker-0", "acme")["status"]["podIP"], 5671)
    dc = (deployment.platform.dc_address, 389)  # no policy: a control that the probe's network works

    # The example domain admits the portal's clients from the ingress controller's namespace.
    from_ingress = probe_from(deployment, "ingress-nginx", {"portal": (*portal, True), "broker": (*broker, False)})
    assert from_ingress == {"portal": "open", "broker": "blocked"}
    elsewhere = probe_from(
        deployment,
        f"outsider-{uuid.uuid4().hex[:5]}",
        {"dc": (*dc, True), "portal": (*portal, False), "broker": (*broker, False)},
    )
    assert elsewhere == {"dc": "open", "portal": "blocked", "broker": "blocked"}


# Run in the worker container with its own directory account: what may it do outside its OU?
WORKER_PROBE = """
import json, pathlib, ldb
from samba.credentials import Credentials
from samba.param import LoadParm
from samba.samdb import SamDB
import os
lp = LoadParm()  # the worker's container has no smb.conf, as for the worker itself
lp.set("realm", os.environ["ES4PS_REALM"])
lp.set("workgroup", os.environ["ES4PS_NETBIOS_NAME"])
creds = Credentials()
creds.guess(lp)
creds.set_domain(os.environ["ES4PS_NETBIOS_NAME"])
creds.set_username("es4ps-worker")
creds.set_password(pathlib.Path("/etc/es4ps/worker-credentials/password").read_text().strip())
samdb = SamDB(url="ldap://127.0.0.1", credentials=creds, lp=lp)
base = str(samdb.domain_dn())
def attempt(change):
    try:
        change()
        return "allowed"
    except ldb.LdbError as error:
        return "refused" if error.args[0] == ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS else f"error {error.args[0]}"
administrator = f"CN=Administrator,CN=Users,{base}"
def describe_administrator():
    message = ldb.Message(ldb.Dn(samdb, administrator))
    message["description"] = ldb.MessageElement("taken", ldb.FLAG_MOD_REPLACE, "description")
    samdb.modify(message)
def join_domain_admins():
    message = ldb.Message(ldb.Dn(samdb, f"CN=Domain Admins,CN=Users,{base}"))
    message["member"] = ldb.MessageElement(f"CN=es4ps-worker,CN=Users,{base}", ldb.FLAG_MOD_ADD, "member")
    samdb.modify(message)
def add_user_outside():
    samdb.add({"dn": f"CN=intruder,CN=Users,{base}", "objectClass": "user", "sAMAccountName": "intruder"})
print(json.dumps({
    "administrator": attempt(describe_administrator),
    "domain_admins": attempt(join_domain_admins),
    "user_outside_ou": attempt(add_user_outside),
    "admin_password_mounted": pathlib.Path("/etc/es4ps/admin").exists(),
}))
"""


def test_the_workers_directory_account_is_refused_outside_its_ou(deployment):
    """In the DC's Pod, with the worker's own credential: nothing outside OU=ES4PS, and no Administrator password."""
    probed = deployment.kube.kubectl(
        "exec", "acme-dc0-0", "-n", "acme", "-c", "worker", "--", "python3", "-c", WORKER_PROBE
    )
    assert json.loads(probed.stdout.strip().splitlines()[-1]) == {
        "administrator": "refused",
        "domain_admins": "refused",
        "user_outside_ou": "refused",
        "admin_password_mounted": False,
    }


def portal_shell(deployment, code: str) -> str:
    """Python in the portal's Django (`es4ps-portal manage shell -c`), as a staff member with kubectl could."""
    command = ["exec", "acme-portal-0", "-n", "acme", "-c", "portal", "--", "es4ps-portal", "manage", "shell", "-c"]
    return deployment.kube.kubectl(*command, code).stdout


def test_a_username_registered_again_after_its_record_is_lost_cannot_take_the_account(deployment):
    """The account follows the registration that made it, not its name (the takeover of the hardening issue)."""
    person = deployment.person()
    username = f"own{uuid.uuid4().hex[:5]}"
    assert register_and_verify(deployment, person, username)["state"] == "ready"
    forget = f"from es4ps_portal.accounts.models import User; User.objects.filter(username='{username}').delete()"
    portal_shell(deployment, forget)  # a lost portal volume, an admin's mistake in the database

    # Someone else registers the name with an address of their own and confirms it.
    other = deployment.person()
    other_password = "Another-Horse-77"  # noqa: S105 - a test password
    email = f"{username}.x@acme.example"
    assert other.register(username, email, password=other_password).status_code == 200
    other.confirm_link(deployment.mail.wait_for(email, timeout_s=120).link("/verify/"))
    status = other.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=180)
    assert status["state"] == "failed", status
    assert deployment.password_authenticates(username, GOOD_PASSWORD)
    assert not deployment.password_authenticates(username, other_password)

    # A third never confirms; when the expiry deletes that registration, the account stays.
    portal_shell(deployment, forget)
    third = f"{username}.y@acme.example"
    assert deployment.person().register(username, third, password=other_password).status_code == 200
    expire = (
        "import datetime; from django.utils import timezone; from es4ps_portal.accounts.models import User; "
        f"User.objects.filter(username='{username}').update(date_joined=timezone.now() - datetime.timedelta(days=30))"
    )
    portal_shell(deployment, expire)
    command = ["exec", "acme-portal-0", "-n", "acme", "-c", "portal", "--", "es4ps-portal", "manage"]
    assert "1 unverified registrations expired" in deployment.kube.kubectl(*command, "expire_registrations").stdout
    # The delete task goes through the broker to the worker, which refuses it and says so.
    deployment.kube.eventually(
        lambda: (
            f"(delete_user {username}): "
            in deployment.kube.kubectl("logs", "acme-dc0-0", "-n", "acme", "-c", "worker").stdout
        ),
        timeout=120,
        interval=2,
        message=f"the worker's verdict on deleting {username}",
    )
    assert deployment.password_authenticates(username, GOOD_PASSWORD)


def test_helm_test_checks_the_operator_and_the_crd(deployment):
    """The chart's own test hook, run in a Pod of the operator image."""
    result = deployment.kube.helm("test", demo.RELEASE, "-n", demo.OPERATOR_NAMESPACE, "--logs")
    assert "operator healthy" in result.stdout and "CRD served" in result.stdout, result.stdout


def test_a_deleted_portal_pod_comes_back_and_accounts_still_work(deployment):
    person = deployment.person()
    username = f"bob{uuid.uuid4().hex[:5]}"
    assert register_and_verify(deployment, person, username)["state"] == "ready"
    before = pod_uid(deployment, "acme-portal-0")

    deployment.kube.kubectl("delete", "pod", "acme-portal-0", "-n", "acme", "--wait=true")
    deployment.kube.eventually(
        lambda: (
            deployment.kube.get("pod", "acme-portal-0", "acme", check=False).get("metadata", {}).get("uid")
            not in (None, before)
        ),
        message="a new portal Pod",
    )
    deployment.kube.wait_for("pod", "acme-portal-0", namespace="acme", timeout=180)

    again = deployment.person()
    signed_in = again.login(username, GOOD_PASSWORD)
    assert signed_in.status_code == 200 and "/login/" not in signed_in.url, signed_in.text[:300]
    assert deployment.password_authenticates(username, GOOD_PASSWORD)


def condition(kube, kind: str) -> str | None:
    conditions = kube.get("es4psdomain", "acme", "acme").get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == kind), None)


def queued_tasks(deployment) -> int:
    listed = deployment.kube.kubectl(
        "exec",
        "acme-broker-0",
        "-n",
        "acme",
        "--",
        "rabbitmqctl",
        "-q",
        "list_queues",
        "-p",
        "es4ps",
        "name",
        "messages",
        "--formatter",
        "json",
    )
    return {q["name"]: q["messages"] for q in json.loads(listed.stdout)}["es4ps.provisioning"]


def test_a_registration_queued_across_a_broker_restart_completes(deployment):
    kube = deployment.kube
    # Hold the directory workers back so the registration waits in the broker: pause the
    # domain (the operator then leaves the children alone) and stop the DC's Pod.
    kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": True}}, "acme")
    kube.kubectl("scale", "statefulset", "acme-dc0", "-n", "acme", "--replicas=0")
    kube.eventually(
        lambda: not kube.get("pod", "acme-dc0-0", "acme", check=False), timeout=120, message="the DC Pod gone"
    )
    kube.eventually(
        lambda: condition(kube, "DirectoryReady") == "False",
        timeout=60,
        message="the domain's status showing its DC down",
    )
    person = deployment.person()
    username = f"eve{uuid.uuid4().hex[:5]}"
    registered = person.register(username, f"{username}@acme.example")
    assert registered.status_code == 200, registered.text[:300]
    # The portal's outbox relay publishes it within a moment.
    kube.eventually(lambda: queued_tasks(deployment) >= 1, timeout=60, message="the registration's task in the queue")

    before = pod_uid(deployment, "acme-broker-0")
    kube.kubectl("delete", "pod", "acme-broker-0", "-n", "acme", "--wait=true")
    kube.eventually(
        lambda: (
            kube.get("pod", "acme-broker-0", "acme", check=False).get("metadata", {}).get("uid") not in (None, before)
        ),
        message="a new broker Pod",
    )
    kube.wait_for("pod", "acme-broker-0", namespace="acme", timeout=180)
    assert queued_tasks(deployment) >= 1, "the queued registration did not survive the broker restart"

    kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": False}}, "acme")
    # the person confirms once the domain is whole again
    demo.wait_ready(timeout_s=300)
    mail = deployment.mail.wait_for(f"{username}@acme.example", timeout_s=60)
    confirmed = person.confirm_link(mail.link("/verify/"))
    assert confirmed.status_code == 200 and "/status/" in confirmed.url, confirmed.text[:500]
    status = person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=300)
    assert status["state"] == "ready", status
    assert deployment.password_authenticates(username, GOOD_PASSWORD)


def test_helm_upgrade_changes_the_domain_and_keeps_its_data(deployment):
    kube = deployment.kube
    claims = {c["metadata"]["name"]: c["metadata"]["uid"] for c in kube.get("pvc", namespace="acme")["items"]}
    person = deployment.person()
    username = f"joe{uuid.uuid4().hex[:5]}"
    assert register_and_verify(deployment, person, username)["state"] == "ready"

    deployment.install(organizationName="ACME Widgets International")
    domain = kube.get("es4psdomain", "acme", "acme")
    assert domain["spec"]["organizationName"] == "ACME Widgets International"
    kube.eventually(
        lambda: "ACME Widgets International" in deployment.person().get("/register/").text,
        timeout=300,
        interval=3,
        message="the portal showing the new organisation name",
    )

    after = {c["metadata"]["name"]: c["metadata"]["uid"] for c in kube.get("pvc", namespace="acme")["items"]}
    assert after == claims, "a volume claim was replaced"
    assert deployment.password_authenticates(username, GOOD_PASSWORD)
    signed_in = deployment.person().login(username, GOOD_PASSWORD)
    assert signed_in.status_code == 200 and "/login/" not in signed_in.url
