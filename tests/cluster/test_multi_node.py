"""Several real nodes on one machine: each in a network namespace of its own with its own address, containerd
and kubelet; Pods, Services, cluster DNS and NetworkPolicies across nodes; node-local volumes; a node lost
without warning and brought back; and nothing left behind once the cluster is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from es4ps_devtools.images import IMAGES
from es4ps_localcluster.components import node_network
from es4ps_localcluster.components.node import CGROUPS, DNS_ADDRESS, NETNS_DIR

pytestmark = [pytest.mark.multinode, pytest.mark.timeout(900)]
NODES = ["node1", "node2", "node3"]
ECHO_PORT = 8080

# A Pod that answers every GET with the address it saw the request come from.
ECHO_SERVER = f"""
import http.server
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.client_address[0].encode())
http.server.HTTPServer(("", {ECHO_PORT}), Echo).serve_forever()
"""

# A Pod that GETs each target (a URL, or host:port for a bare TCP connection): it waits until those expected to
# answer do (a new Pod reaches the policy controllers a moment after it starts), then tries each once and prints
# {name: what the server saw, "open", or "blocked"} as JSON.
CLIENT = r"""
import json, socket, sys, time, urllib.request
targets = json.loads(sys.argv[1])
def attempt(target):
    try:
        if target["url"].startswith("http"):
            return urllib.request.urlopen(target["url"], timeout=3).read().decode()
        host, port = target["url"].rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=3).close()
        return "open"
    except OSError:
        return "blocked"
deadline = time.monotonic() + 90
while time.monotonic() < deadline and any(attempt(t) == "blocked" for t in targets.values() if t["open"]):
    time.sleep(1)
print(json.dumps({name: attempt(target) for name, target in targets.items()}))
"""


@pytest.fixture(scope="module")
def python_image(multi_cluster, local_cluster) -> str:
    """An image with Python (the operator's), on every node."""
    local_cluster.load_images([IMAGES["operator"]])
    return IMAGES["operator"].ref


def pod(name: str, node: str, image: str, argv: list[str], labels: dict | None = None, **spec) -> dict:
    """A Pod placed on `node` by the scheduler (a nodeSelector, as volumes bound on first use need)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "command": argv}],
            **spec,
        },
    }


def apply(kube, namespace: str, *objects: dict) -> None:
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}), namespace=namespace)


def start_echo_servers(kube, namespace: str, image: str, nodes: list[str]) -> dict[str, str]:
    """An echo Pod on each node, and a Service for each; node -> the Pod's address."""
    for node in nodes:
        apply(
            kube,
            namespace,
            pod(f"echo-{node}", node, image, ["python3", "-c", ECHO_SERVER], {"app": "echo", "node": node}),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"echo-{node}"},
                "spec": {"selector": {"app": "echo", "node": node}, "ports": [{"port": ECHO_PORT}]},
            },
        )
    for node in nodes:
        kube.wait_for("pod", f"echo-{node}", namespace=namespace, timeout=180)
    return {node: kube.get("pod", f"echo-{node}", namespace)["status"]["podIP"] for node in nodes}


def run_client(kube, namespace: str, image: str, name: str, node: str, targets: dict, labels=None) -> dict:
    """CLIENT in a Pod on `node`; its JSON answer and the Pod's address."""
    argv = ["python3", "-c", CLIENT, json.dumps(targets)]
    apply(kube, namespace, pod(name, node, image, argv, labels, restartPolicy="Never"))
    kube.eventually(
        lambda: kube.get("pod", name, namespace)["status"].get("phase") in ("Succeeded", "Failed"),
        timeout=240,
        message=f"the client Pod {name} on {node} to finish",
    )
    logs = kube.kubectl("logs", name, "-n", namespace).stdout.strip()
    address = kube.get("pod", name, namespace)["status"]["podIP"]
    try:
        return {"answers": json.loads(logs.splitlines()[-1]), "address": address}
    except (ValueError, IndexError):
        raise AssertionError(f"the client Pod {name} failed:\n{logs[-3000:]}") from None


def test_three_nodes_each_in_a_network_namespace_of_its_own(multi_cluster, local_cluster):
    nodes = {n["metadata"]["name"]: n for n in multi_cluster.get("nodes")["items"]}
    assert sorted(nodes) == NODES
    own_netns = os.stat("/proc/self/ns/net").st_ino
    for index, name in enumerate(NODES, start=1):
        node = nodes[name]
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == node_network.node_address(index)
        assert node["spec"]["podCIDR"] == node_network.pod_cidr(index)
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", name
        # every process of the node runs in the node's network namespace, none in this machine's
        netns = os.stat(NETNS_DIR / node_network.netns_name(name)).st_ino
        for component in ("containerd", "kubelet", "kube-proxy", "coredns", "kube-router"):
            pid = local_cluster.processes.pid(f"{name}-{component}")
            assert pid, f"{component} of {name} does not run"
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == netns != own_netns, f"{component} of {name}"
    # each kubelet its own cgroup root, holding its Pods
    assert all((CGROUPS / "memory" / f"es4ps-{name}" / "kubepods").is_dir() for name in NODES)


def test_pods_services_and_dns_work_across_nodes(multi_cluster, multi_namespace, python_image):
    kube, namespace = multi_cluster, multi_namespace
    servers = start_echo_servers(kube, namespace, python_image, NODES)
    assert len(set(servers.values())) == 3
    for index, node in enumerate(NODES, start=1):  # each Pod has an address of its node's range
        assert servers[node].startswith(f"10.244.{index}.")
    targets = {"api": {"url": "kubernetes.default.svc.cluster.local:443", "open": True}}
    for node, address in servers.items():
        targets[f"pod-{node}"] = {"url": f"http://{address}:{ECHO_PORT}/", "open": True}
        # the Service by name: the client's node's CoreDNS, then its kube-proxy
        targets[f"service-{node}"] = {"url": f"http://echo-{node}.{namespace}.svc:{ECHO_PORT}/", "open": True}
    for node in NODES:
        client = run_client(kube, namespace, python_image, f"client-{node}", node, targets)
        answers = client["answers"]
        assert answers.pop("api") == "open", f"the API from {node}"
        # every server, directly and through its Service, saw the client's own address: nothing masquerades
        assert answers == dict.fromkeys(answers, client["address"]), f"from {node}: {answers}"

    # this machine reaches Pods on every node (routes per Pod CIDR) and a Service (through one node's kube-proxy)
    for address in servers.values():
        with urllib.request.urlopen(f"http://{address}:{ECHO_PORT}/", timeout=5) as reply:
            assert reply.read().decode() == node_network.GATEWAY
    service_ip = kube.get("service", "echo-node2", namespace)["spec"]["clusterIP"]
    with urllib.request.urlopen(f"http://{service_ip}:{ECHO_PORT}/", timeout=5) as reply:
        assert reply.status == 200


# Asks the node's CoreDNS (node.DNS_ADDRESS) from inside the node's network namespace: the rcode of each name.
ASK_DNS = """
import json, sys, dns.message, dns.query
answers = {}
for name in sys.argv[2:]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), sys.argv[1], timeout=10)
    answers[name] = dns.rcode.to_text(reply.rcode())
print(json.dumps(answers))
"""


def test_each_nodes_dns_answers_cluster_names_and_refuses_outside_names_at_once(multi_cluster):
    """A node reaches no resolver outside: CoreDNS says "no such name" itself (a Samba DC joining its domain asks
    outside names first), rather than forwarding to this machine's resolvers and failing after a timeout."""
    names = ["kubernetes.default.svc.cluster.local.", "ad.acme.example.", "www.example.org."]
    for node in NODES:
        asked = subprocess.run(
            ["ip", "netns", "exec", node_network.netns_name(node), sys.executable, "-c", ASK_DNS, DNS_ADDRESS, *names],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert asked.returncode == 0, f"{node}: {asked.stderr[-2000:]}"
        assert json.loads(asked.stdout) == {
            "kubernetes.default.svc.cluster.local.": "NOERROR",
            "ad.acme.example.": "NXDOMAIN",
            "www.example.org.": "NXDOMAIN",
        }, node


def test_a_network_policy_holds_across_nodes(multi_cluster, multi_namespace, python_image):
    """Only Pods labelled friend reach the echo Pod on node1, from any node; a stranger on another node does not."""
    kube, namespace = multi_cluster, multi_namespace
    server = start_echo_servers(kube, namespace, python_image, ["node1"])["node1"]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "echo-friends-only"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "echo"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}]}],
        },
    }
    apply(kube, namespace, policy)
    url = f"http://{server}:{ECHO_PORT}/"
    friend = run_client(
        kube, namespace, python_image, "friend", "node2", {"echo": {"url": url, "open": True}}, {"role": "friend"}
    )
    assert friend["answers"] == {"echo": friend["address"]}
    for name, node in (("stranger-node3", "node3"), ("stranger-node1", "node1")):
        stranger = run_client(kube, namespace, python_image, name, node, {"echo": {"url": url, "open": False}})
        assert stranger["answers"] == {"echo": "blocked"}, name
    # the control: without the policy the stranger on node3 gets through
    kube.kubectl("delete", "networkpolicy", "echo-friends-only", "-n", namespace)
    after = run_client(kube, namespace, python_image, "stranger-after", "node3", {"echo": {"url": url, "open": True}})
    assert after["answers"] == {"echo": after["address"]}


def test_a_volume_belongs_to_the_node_its_pod_was_scheduled_to(multi_cluster, multi_namespace, python_image):
    kube, namespace = multi_cluster, multi_namespace
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}},
    }
    writer = pod(
        "writer",
        "node2",
        python_image,
        ["python3", "-c", "open('/data/written', 'w').write('on node2')"],
        restartPolicy="Never",
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    writer["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    apply(kube, namespace, claim, writer)
    kube.eventually(
        lambda: kube.get("pod", "writer", namespace)["status"].get("phase") == "Succeeded",
        timeout=180,
        message="the writer Pod to finish",
    )
    volume = kube.get("pv", kube.get("pvc", "data", namespace)["spec"]["volumeName"])
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node2"]}]}]
    folder = Path(volume["spec"]["hostPath"]["path"])
    assert folder.parent.name == "node2"
    assert (folder / "written").read_text() == "on node2"


@pytest.mark.usefixtures("nodes_restored")
def test_a_node_lost_without_warning_comes_back(multi_cluster, multi_namespace, local_cluster, python_image):
    kube, namespace = multi_cluster, multi_namespace
    servers = start_echo_servers(kube, namespace, python_image, ["node3"])
    first_start = kube.get("pod", "echo-node3", namespace)["status"]["containerStatuses"][0]["state"]["running"]
    local_cluster.lose_node("node3")

    # nothing of node3 runs: its processes, its Pods' processes, its network
    assert not any(name.startswith("node3-") for name in local_cluster.running())
    assert not list((CGROUPS / "pids").glob("es4ps-node3"))
    assert not (NETNS_DIR / node_network.netns_name("node3")).exists()
    with pytest.raises(OSError):
        socket.create_connection((servers["node3"], ECHO_PORT), timeout=3).close()

    def node3_ready() -> str:
        conditions = kube.get("node", "node3")["status"]["conditions"]
        return next(c["status"] for c in conditions if c["type"] == "Ready")

    # the control plane notices (node-monitor-grace-period), as with a real node
    kube.eventually(lambda: node3_ready() == "Unknown", timeout=120, interval=2, message="node3 NotReady")

    started = time.monotonic()
    local_cluster.bring_back_node("node3")
    print(f"\nnode3 Ready again {time.monotonic() - started:.0f} s after it was started")
    assert node3_ready() == "True"

    def running_again() -> dict | None:
        status = kube.get("pod", "echo-node3", namespace)["status"]
        state = (status.get("containerStatuses") or [{}])[0].get("state", {})
        return state.get("running") if status.get("podIP") else None

    again = kube.eventually(running_again, timeout=180, interval=2, message="the echo Pod running again on node3")
    assert again["startedAt"] != first_start["startedAt"]
    address = kube.get("pod", "echo-node3", namespace)["status"]["podIP"]
    with urllib.request.urlopen(f"http://{address}:{ECHO_PORT}/", timeout=5) as reply:
        assert reply.read().decode() == node_network.GATEWAY


@pytest.mark.stops_cluster
def test_down_leaves_nothing_behind(multi_cluster, local_cluster):
    """After `cluster-down`: no namespace, link, rule, route, cgroup, mount or process of the nodes is left."""
    state = local_cluster.state
    assert local_cluster.down() == []
    assert not [p.name for p in NETNS_DIR.glob("es4ps-*")] + [p.name for p in NETNS_DIR.glob("cni-*")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "es4ps" not in links
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "10.244." not in routes and "10.243." not in routes and "10.96." not in routes
    # The nodes' own rule (other fixtures of the session, a test workstation, keep theirs until their teardown).
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert '"es4ps nodes"' not in rules
    assert not list(CGROUPS.glob("*/es4ps-*"))
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(state) not in mounts
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert str(state).encode() not in cmdline, f"process {proc.name} is left: {cmdline[:200]!r}"
