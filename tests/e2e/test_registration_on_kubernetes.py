"""End to end on Kubernetes: a person registers through the deployed portal and logs in to the domain.

Then the operations a platform team lives with: the portal Pod dies, the
broker restarts with a registration queued, every metrics endpoint moves with
a registration, the broker is away while twenty people register, the domain
changes by `helm upgrade`. The tests run in this order and share the one deployment.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_devtools import deployment as steps
from es4ps_localcluster import ingress
from es4ps_operator import naming
from es4ps_operator.builders.monitoring import BROKER_METRICS_PORT_NUMBER
from es4ps_testkit.e2e import RESET_REQUESTS_PER_ADDRESS
from es4ps_testkit.metrics import scrape
from es4ps_testkit.portal_client import PortalClient
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


# Run in a probe Pod (standard library only). Each target is an address, expected open or not, and
# optionally the HTTP requests to send there (`host`: the Host header, and the SNI name with `ca`,
# the PEM to verify the server with). A form is sent the way a browser does: its page first, for
# the CSRF token and cookie. The probe waits until every target expected open answers (a new Pod's
# address reaches the policy controller a moment after it starts), then tries each target once:
# "blocked", "open", or the status of each request.
PROBE = r"""
import http.client, json, re, socket, ssl, sys, time, urllib.parse
targets = json.loads(sys.argv[1])

def connect(target, timeout):
    sock = socket.create_connection(tuple(target["address"]), timeout=timeout)
    if target.get("ca"):
        sock = ssl.create_default_context(cadata=target["ca"]).wrap_socket(sock, server_hostname=target["host"])
    return sock

def answers(target):
    try:
        connect(target, 3).close()
        return True
    except OSError:
        return False

def request(target, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(target["host"], timeout=30)
    connection.sock = connect(target, 30)
    connection.request(method, path, body=body, headers={"Host": target["host"], **(headers or {})})
    response = connection.getresponse()
    cookies = [c.split(";", 1)[0] for c in response.msg.get_all("Set-Cookie") or []]
    return response.status, cookies, response.read().decode(errors="replace")

def send(target, step):
    if "get" in step:
        return request(target, "GET", step["get"], headers=step.get("headers"))[0]
    path = step["form"]
    _, cookies, page = request(target, "GET", path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    scheme = "https" if target.get("ca") else "http"
    headers = {
        "Cookie": "; ".join(cookies),
        "Referer": f"{scheme}://{target['host']}{path}",
        "Content-Type": "application/x-www-form-urlencoded",
        **step.get("headers", {}),
    }
    body = urllib.parse.urlencode({**step["data"], "csrfmiddlewaretoken": token})
    return request(target, "POST", path, body, headers)[0]

deadline = time.monotonic() + 60
while not all(answers(t) for t in targets.values() if t["open"]) and time.monotonic() < deadline:
    time.sleep(1)
results = {}
for name, target in targets.items():
    if not answers(target):
        results[name] = "blocked"
    else:
        results[name] = [send(target, step) for step in target["requests"]] if "requests" in target else "open"
print(json.dumps(results))
"""


def probe_from(deployment, namespace: str, targets: dict[str, dict]) -> dict:
    """PROBE in a Pod in `namespace`: per target "blocked", "open" or its requests' statuses."""
    return deployment.python_in_pod(namespace, PROBE, targets)


def tcp(address: str, port: int, expect_open: bool) -> dict:
    return {"address": [address, port], "open": expect_open}


def through_the_ingress(deployment, *requests: dict) -> dict:
    """HTTPS to the portal's public name through Traefik's Service, as a client inside the cluster."""
    service = deployment.kube.get("service", ingress.NAME, ingress.NAMESPACE)
    return {
        "address": [service["spec"]["clusterIP"], ingress.HTTPS_PORT],
        "open": True,
        "host": steps.PORTAL_HOST,
        "ca": deployment.portal_ca.read_text(),
        "requests": list(requests),
    }


def outsider() -> str:
    """A namespace of its own, neither the controller's nor the domain's."""
    return f"outsider-{uuid.uuid4().hex[:5]}"


def test_network_policies_admit_only_the_intended_clients(deployment):
    """The operator's NetworkPolicies, enforced by the node (kube-router here, kindnet on kind)."""
    kube = deployment.kube
    portal = (kube.get("pod", "acme-portal-0", "acme")["status"]["podIP"], 8000)
    broker = (kube.get("pod", "acme-broker-0", "acme")["status"]["podIP"], 5671)
    dc = (deployment.platform.dc_address, 389)  # no policy: a control that the probe's network works

    # The domain admits the portal's clients from the ingress controller's namespace (spec.portal.ingress.allowFrom).
    from_ingress = probe_from(
        deployment, ingress.NAMESPACE, {"portal": tcp(*portal, True), "broker": tcp(*broker, False)}
    )
    assert from_ingress == {"portal": "open", "broker": "blocked"}
    elsewhere = probe_from(
        deployment, outsider(), {"dc": tcp(*dc, True), "portal": tcp(*portal, False), "broker": tcp(*broker, False)}
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
    # The account is made at confirmation: the worker finds the name taken by another registration's account.
    status = other.wait_for_status(lambda s: s["state"] in ("ready", "failed", "name_taken"), timeout_s=180)
    assert status["state"] == "name_taken", status
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
    # An unconfirmed registration never reached the directory, so its expiry sends it nothing.
    worker_log = deployment.kube.kubectl("logs", "acme-dc0-0", "-n", "acme", "-c", "worker").stdout
    assert f"(delete_user {username}): " not in worker_log
    assert deployment.password_authenticates(username, GOOD_PASSWORD)


def test_the_ingress_controller_serves_the_portals_ingress(deployment):
    """Traefik took the operator's Ingress: its class, its host rule, the certificate of the Secret it names."""
    found = steps.portal_ingress()
    assert found["spec"]["ingressClassName"] == ingress.INGRESS_CLASS
    assert [rule["host"] for rule in found["spec"]["rules"]] == [steps.PORTAL_HOST]
    secret_name = found["spec"]["tls"][0]["secretName"]
    secret = deployment.kube.get("secret", secret_name, steps.DOMAIN_NAMESPACE)
    expected = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))

    address, port = deployment.ingress_address, urlsplit(deployment.portal_url).port or 443
    context = ssl.create_default_context(cafile=str(deployment.portal_ca))
    with (
        socket.create_connection((address, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=steps.PORTAL_HOST) as tls,
    ):
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert served == expected, (
        f"served {served.subject}, serial {served.serial_number}; the Secret {secret_name} holds another"
    )

    # Only the portal's name is routed: another name gets Traefik's own 404, not the portal.
    other = PortalClient(f"https://other.acme.localhost:{port}", connect_to=address)
    other.http.trust_env = False  # else REQUESTS_CA_BUNDLE would win over verify=False
    other.http.verify = False  # Traefik answers an unknown name with its default certificate
    assert other.get("/register/").status_code == 404
    assert "csrfmiddlewaretoken" in deployment.person().get("/register/").text


def test_the_portal_is_reached_through_the_ingress_and_not_around_it(deployment):
    """From a Pod outside the controller's namespace: the portal's Service refuses, the Ingress answers."""
    service = steps.portal_service()
    straight = {
        "address": [service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]],
        "open": False,
        "host": steps.PORTAL_HOST,
        "requests": [{"get": "/register/"}],
    }
    result = probe_from(
        deployment, outsider(), {"service": straight, "ingress": through_the_ingress(deployment, {"get": "/register/"})}
    )
    assert result == {"service": "blocked", "ingress": [200]}


def test_rate_limits_count_the_client_behind_the_controller_not_the_controller(deployment):
    """Traefik appends the address it saw to X-Forwarded-For (a client's own entries it drops); the portal,
    trusting one proxy (spec.portal.ingress.trustedProxies: 1), counts that address."""
    limit = RESET_REQUESTS_PER_ADDRESS

    def reset(headers: dict | None = None) -> dict:
        step = {"form": "/password/reset/", "data": {"email": f"nobody{uuid.uuid4().hex[:8]}@acme.example"}}
        return {**step, "headers": headers} if headers else step

    # One client uses up its address's attempts; claiming another address does not help it.
    first = probe_from(
        deployment,
        outsider(),
        {
            "ingress": through_the_ingress(
                deployment, *[reset() for _ in range(limit + 1)], reset({"X-Forwarded-For": "192.0.2.7"})
            )
        },
    )["ingress"]
    assert 429 not in first[:limit], first
    assert first[limit:] == [429, 429], first
    # Another client, through the same controller, still has all of its own.
    second = probe_from(deployment, outsider(), {"ingress": through_the_ingress(deployment, reset())})["ingress"]
    assert second == [200], second


def test_helm_test_checks_the_operator_and_the_crd(deployment):
    """The chart's own test hook, run in a Pod of the operator image."""
    result = deployment.kube.helm("test", steps.RELEASE, "-n", steps.OPERATOR_NAMESPACE, "--logs")
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
    # Traefik routes to the new Pod once it sees its endpoint (its own 404 until then).
    deployment.kube.eventually(
        lambda: deployment.person().get("/login/").status_code == 200, timeout=60, message="the portal through Traefik"
    )

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
    # The directory's account is made only once the address is proven: the confirmation queues the tasks,
    # and the portal's outbox relay publishes them within a moment.
    mail = deployment.mail.wait_for(f"{username}@acme.example", timeout_s=60)
    confirmed = person.confirm_link(mail.link("/verify/"))
    assert confirmed.status_code == 200 and "/status/" in confirmed.url, confirmed.text[:500]
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
    steps.wait_ready(timeout_s=300)
    status = person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=300)
    assert status["state"] == "ready", status
    assert deployment.password_authenticates(username, GOOD_PASSWORD)


# --- the data path: measured, and a broker away -------------------------------------------------


def scrape_all(urls: dict[str, str], monitoring) -> dict:
    """Each endpoint once; the DC's health endpoint over HTTPS with the monitoring certificate, as a PodMonitor."""
    server_name = "acme-directory.acme.svc"
    return {
        name: scrape(url, monitoring, server_name) if url.startswith("https:") else scrape(url)
        for name, url in urls.items()
    }


def test_the_data_path_is_measured_and_its_numbers_move_with_a_registration(deployment, tmp_path):
    """Every metrics endpoint the PodMonitors name, scraped as Prometheus would, before and after one person."""
    dc_address = deployment.platform.dc_address  # HostNetwork DC: its health endpoint on the node's address
    monitoring = deployment.certificate_files("acme-monitoring-tls", tmp_path / "monitoring")
    with (
        deployment.port_forward("acme-portal-0", naming.PORTAL_METRICS_PORT) as portal,
        deployment.port_forward("acme-portal-0", naming.CONSUMER_METRICS_PORT) as consumer,
        deployment.port_forward("acme-broker-0", BROKER_METRICS_PORT_NUMBER) as broker,
    ):
        urls = {
            "portal": f"{portal}/metrics",
            "consumer": f"{consumer}/metrics",
            "broker": f"{broker}/metrics",
            "worker": f"https://{dc_address}:{naming.DC_HEALTH_PORT}/worker-metrics",
            "dc": f"https://{dc_address}:{naming.DC_HEALTH_PORT}/metrics",
        }
        before = scrape_all(urls, monitoring)
        username = f"met{uuid.uuid4().hex[:5]}"
        assert register_and_verify(deployment, deployment.person(), username)["state"] == "ready"

        def moved(after: dict) -> dict[str, float]:
            def grew(name: str, metric: str, **labels: str) -> float:
                return after[name].value(metric, **labels) - before[name].value(metric, **labels)

            return {
                "registrations accepted": grew("portal", "es4ps_portal_registrations_total", outcome="accepted"),
                "verifications": grew("portal", "es4ps_portal_verifications_total", outcome="verified"),
                "requests timed": grew("portal", "es4ps_portal_request_duration_seconds_count"),
                "tasks published": grew("consumer", "es4ps_portal_tasks_published_total"),
                "results recorded": grew("consumer", "es4ps_portal_task_results_total", outcome="succeeded"),
                "creates applied": grew(
                    "worker", "es4ps_worker_tasks_total", operation="create_user", outcome="succeeded"
                ),
                "enables applied": grew(
                    "worker", "es4ps_worker_tasks_total", operation="enable_user", outcome="succeeded"
                ),
                "publish to apply observed": grew("worker", "es4ps_worker_publish_to_apply_seconds_count"),
                "messages into the broker": grew("broker", "rabbitmq_global_messages_received_total"),
                # The health server counts the managed OU every ES4PS_HEALTH_INTERVAL_SECONDS (60).
                "accounts in the OU": grew("dc", "es4ps_dc_managed_accounts"),
            }

        wanted = {
            "registrations accepted": 1,
            "verifications": 1,
            "requests timed": 3,
            "tasks published": 2,
            "results recorded": 2,
            "creates applied": 1,
            "enables applied": 1,
            "publish to apply observed": 2,
            "messages into the broker": 4,  # two tasks, two result events
            "accounts in the OU": 1,
        }
        last: list[dict] = [{}]

        def all_moved() -> bool:
            last[0] = moved(scrape_all(urls, monitoring))
            return all(last[0][key] >= least for key, least in wanted.items())

        deployment.kube.eventually(
            all_moved, timeout=180, interval=5, message=lambda: f"every number to move (they moved {last[0]})"
        )
        after = scrape_all(urls, monitoring)
    # The broker's own exporter: the provisioning queue has its consumer (the DC's worker) and is empty again.
    queue = {"queue": PROVISIONING_QUEUE}
    assert after["broker"].value("rabbitmq_queue_consumers", **queue) >= 1
    assert after["broker"].value("rabbitmq_queue_messages_ready", **queue) == 0
    assert after["dc"].value("es4ps_dc_replication_healthy") == 1


def test_with_the_broker_away_people_register_and_their_accounts_follow_when_it_returns(deployment):
    """The outbox: twenty people register and confirm while the broker is gone for at least 30 s."""
    kube = deployment.kube
    kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": True}}, "acme")  # the operator leaves it down
    kube.kubectl("scale", "statefulset", "acme-broker", "-n", "acme", "--replicas=0")
    kube.eventually(
        lambda: not kube.get("pod", "acme-broker-0", "acme", check=False), timeout=120, message="the broker Pod gone"
    )
    away_since = time.monotonic()
    people = [(deployment.person(), f"out{n}x{uuid.uuid4().hex[:4]}") for n in range(20)]

    def register_and_confirm(entry) -> None:
        person, username = entry
        email = f"{username}@acme.example"
        registered = person.register(username, email)
        assert registered.status_code == 200 and "/status/" in registered.url, registered.text[:300]
        confirmed = person.confirm_link(deployment.mail.wait_for(email, timeout_s=120).link("/verify/"))
        assert confirmed.status_code == 200, confirmed.text[:300]

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(register_and_confirm, people))
        # Each person's two tasks wait in the outbox, and the status page says so.
        tasks = people[0][0].status()["tasks"]
        assert [(task["operation"], task["state"]) for task in tasks] == [
            ("create_user", "queued"),
            ("enable_user", "queued"),
        ]
        with deployment.port_forward("acme-portal-0", naming.CONSUMER_METRICS_PORT) as consumer:
            # The relay measures the outbox on each try, and tries less often while the broker is away.
            kube.eventually(
                lambda: scrape(f"{consumer}/metrics").value("es4ps_portal_outbox_tasks") >= 2 * len(people),
                timeout=90,
                interval=2,
                message="the consumer's outbox gauge counting every waiting task",
            )
        time.sleep(max(0.0, 30 - (time.monotonic() - away_since)))
    finally:
        kube.kubectl("scale", "statefulset", "acme-broker", "-n", "acme", "--replicas=1")
        kube.merge_patch("es4psdomain", "acme", {"spec": {"paused": False}}, "acme")

    for person, username in people:
        status = person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=300)
        assert status["state"] == "ready", (username, status)
    assert deployment.password_authenticates(people[-1][1], GOOD_PASSWORD)


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
