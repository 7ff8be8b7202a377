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
