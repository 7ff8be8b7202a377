"""The deployed domain's edges, as an auditor and a stranger meet them on the real node.

Every TLS port of the running domain (the DC's LDAP ports, its health
endpoint, the broker, the portal behind the ingress) is scanned by sslyze and
has no finding; a TLS 1.1 client is refused by LDAPS and the broker. From a
network namespace of this machine (a client outside the cluster: neither the
node nor a Pod) the host-network DC's DNS answers the AD zone and no cluster
name, its health endpoint gives a stranger nothing and the worker's metrics
are not there at all; meanwhile the DC's own Pod resolves cluster names, the
kubelet finds the DC ready, and a Pod in the cluster scrapes both through the
endpoint with the monitoring certificate.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from es4ps_devtools import deployment as steps
from es4ps_operator import naming
from es4ps_testkit.ca import CertFiles
from es4ps_testkit.outsider import Outsider
from es4ps_testkit.tls_scan import Port, scan, tls11_client_handshake

pytestmark = pytest.mark.e2e

NAMESPACE = "acme"
CLUSTER_NAME = "kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def monitoring(deployment, tmp_path_factory) -> CertFiles:
    return deployment.certificate_files("acme-monitoring-tls", tmp_path_factory.mktemp("monitoring"))


@pytest.fixture(scope="module")
def outsider():
    outsider = Outsider()
    outsider.start()
    yield outsider
    outsider.stop()


def dc_ports(deployment, monitoring: CertFiles) -> list[Port]:
    address, name = deployment.platform.dc_address, deployment.directory_name
    return [
        Port("dc ldaps", address, 636, name),
        Port("dc global catalog ssl", address, 3269, name),
        Port("dc ldap starttls", address, 389, name, starttls="ldap"),
        Port("dc global catalog starttls", address, 3268, name, starttls="ldap"),
        Port(
            "dc health endpoint",
            address,
            naming.DC_HEALTH_PORT,
            f"acme-directory.{NAMESPACE}.svc",
            client_cert=monitoring.cert_file,
            client_key=monitoring.key_file,
        ),
    ]


def test_every_tls_port_of_the_running_domain_has_no_finding(deployment, monitoring, tmp_path):
    worker = deployment.certificate_files("acme-dc0-worker-tls", tmp_path / "worker")
    ingress = Port(
        "portal behind the ingress",
        deployment.ingress_address,
        urlsplit(deployment.portal_url).port or 443,
        steps.PORTAL_HOST,
    )
    # The broker at its Pod's address, which this machine (the node) reaches: through a port-forward sslyze
    # takes the relay's closed connections for a server that rejects it.
    broker = deployment.kube.get("pod", "acme-broker-0", NAMESPACE)["status"]["podIP"]
    ports = [
        *dc_ports(deployment, monitoring),
        Port(
            "broker amqps",
            broker,
            naming.BROKER_PORT,
            f"acme-broker.{NAMESPACE}.svc",
            client_cert=worker.cert_file,
            client_key=worker.key_file,
        ),
        ingress,
    ]
    findings = scan(ports)
    refused = {p.label: tls11_client_handshake(p) for p in ports if p.label in ("dc ldaps", "broker amqps")}
    assert findings == {p.label: [] for p in ports}
    assert all(outcome.startswith("refused") for outcome in refused.values()), refused


ASK_THE_DC = """
import json, sys
import dns.message, dns.query, dns.rcode
server, questions = json.loads(sys.argv[1])
answers = {}
for name, kind in questions:
    response = dns.query.udp(dns.message.make_query(name, kind), server, timeout=5)
    answers[name] = [dns.rcode.to_text(response.rcode()), [r.to_text() for s in response.answer for r in s]]
print(json.dumps(answers))
"""


def test_an_outsider_gets_the_ad_zone_from_the_dc_and_no_cluster_name(deployment, outsider):
    node, realm = deployment.platform.dc_address, deployment.realm.lower()
    questions = [[f"dc0.{realm}", "A"], [f"_ldap._tcp.{realm}", "SRV"], [CLUSTER_NAME, "A"]]
    answers = outsider.python(ASK_THE_DC, [node, questions])
    assert answers[f"dc0.{realm}"] == ["NOERROR", [node]]
    assert answers[f"_ldap._tcp.{realm}"][1] and all(f"dc0.{realm}." in r for r in answers[f"_ldap._tcp.{realm}"][1])
    assert answers[CLUSTER_NAME][1] == [], f"the DC told an outsider a cluster name: {answers[CLUSTER_NAME]}"


def test_the_dcs_own_pod_still_resolves_the_cluster_and_the_realm(deployment):
    for name in (CLUSTER_NAME, f"acme-broker.{NAMESPACE}.svc.cluster.local", f"dc0.{deployment.realm.lower()}"):
        found = deployment.kube.kubectl(
            "exec", "-n", NAMESPACE, "acme-dc0-0", "-c", "dc", "--", "getent", "hosts", name
        )
        assert found.stdout.strip(), f"the DC's Pod cannot resolve {name}"


KNOCK = """
import json, socket, ssl, sys
address, health, metrics, ldaps = json.loads(sys.argv[1])
seen = {}
def attempt(what, action):
    try:
        seen[what] = "answered: " + action()
    except (OSError, ssl.SSLError) as error:
        seen[what] = "nothing: " + type(error).__name__
def said(s):
    data = s.recv(200)
    if not data:
        raise ConnectionError("closed without a word")
    return data.decode(errors="replace")
def plain():
    with socket.create_connection((address, health), timeout=5) as s:
        s.sendall(b"GET /replication HTTP/1.0\\r\\n\\r\\n")
        return said(s)
def tls():
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection((address, health), timeout=5)) as s:
        s.sendall(b"GET /replication HTTP/1.0\\r\\n\\r\\n")
        return said(s)
def connected(port):
    socket.create_connection((address, port), timeout=5).close()
    return "connected"
attempt("health over plain HTTP", plain)
attempt("health over TLS without a certificate", tls)
attempt("the worker's metrics port", lambda: connected(metrics))
attempt("LDAPS (the node is reachable)", lambda: connected(ldaps))
print(json.dumps(seen))
"""

SCRAPE = """
import json, socket, ssl, sys, tempfile, os
address, port, server_name, pems = json.loads(sys.argv[1])
directory = tempfile.mkdtemp()
for key, pem in pems.items():
    open(os.path.join(directory, key), "w").write(pem)
context = ssl.create_default_context(cafile=os.path.join(directory, "ca.crt"))
context.load_cert_chain(os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key"))
bodies = {}
for path in ("/metrics", "/worker-metrics"):
    with context.wrap_socket(socket.create_connection((address, port), timeout=10), server_hostname=server_name) as s:
        s.sendall(f"GET {path} HTTP/1.0\\r\\nHost: {server_name}\\r\\n\\r\\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    bodies[path] = data.decode(errors="replace")
print(json.dumps(bodies))
"""


def test_health_and_metrics_give_a_stranger_nothing_while_the_kubelet_and_a_scrape_from_inside_work(
    deployment, outsider, monitoring
):
    node = deployment.platform.dc_address
    seen = outsider.python(KNOCK, [node, naming.DC_HEALTH_PORT, naming.WORKER_METRICS_PORT, 636])
    assert seen.pop("LDAPS (the node is reachable)") == "answered: connected", seen
    assert all(outcome.startswith("nothing") for outcome in seen.values()), seen

    pod = deployment.kube.get("pod", "acme-dc0-0", namespace=NAMESPACE)
    ready = {c["name"]: c["ready"] for c in pod["status"]["containerStatuses"]}
    assert ready == {"resolver": True, "dc": True, "worker": True}, ready

    pems = {key: (monitoring.directory / key).read_text() for key in ("ca.crt", "tls.crt", "tls.key")}
    server_name = f"acme-directory.{NAMESPACE}.svc"
    bodies = deployment.python_in_pod("monitoring", SCRAPE, [node, naming.DC_HEALTH_PORT, server_name, pems])
    assert bodies["/metrics"].startswith("HTTP/1.0 200") and "es4ps_dc_replication_links" in bodies["/metrics"]
    assert bodies["/worker-metrics"].startswith("HTTP/1.0 200"), bodies["/worker-metrics"][:300]
    assert "es4ps_worker_tasks_total" in bodies["/worker-metrics"]
