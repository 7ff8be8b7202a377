"""The default topology on three real nodes: HostNetwork DCs one per node that replicate and serve, the broker
and the portal spread, NetworkPolicies across nodes.

The chart's `acme` domain on the multi-node cluster (es4ps_testkit.multinode):
two DCs in the default `HostNetwork` mode, three broker members, two portal
replicas on PostgreSQL. The tests share it and change nothing of it.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from es4ps_testkit import multinode
from es4ps_testkit.multinode import NAMESPACE, authenticates, dc_address, placement
from es4ps_testkit.registration import GOOD_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.multinode, pytest.mark.timeout(1800)]
NODES = {"node1", "node2", "node3"}


@pytest.fixture(scope="module")
def domain(multi_deployment):
    return multi_deployment


def condition(kube, kind: str) -> dict:
    conditions = kube.get("es4psdomain", "acme", NAMESPACE).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


def wait_condition(kube, kind: str, status: str, timeout: float = 600) -> dict:
    said = [""]
    started = time.monotonic()

    def reached() -> dict | None:
        found = condition(kube, kind)
        if found.get("message") != said[0]:  # how it got there, in the test's output
            said[0] = found.get("message", "")
            print(f"\n{time.monotonic() - started:5.0f} s {kind}={found.get('status')}: {said[0]}", file=sys.stderr)
        return found if found.get("status") == status else None

    return kube.eventually(reached, timeout=timeout, interval=3, message=lambda: f"{kind} {status} (it says {said[0]})")


def register(domain, prefix: str) -> str:
    """One person registers and confirms through the ingress controller; the username once ready."""
    outcome = multinode.register(domain.deployment, prefix)
    assert outcome.waited_s is not None, outcome
    return outcome.username


def test_each_dc_serves_at_its_own_nodes_address_and_they_replicate(domain):
    kube = domain.kube
    dcs = placement(kube, "directory")
    assert set(dcs) == {"acme-dc0-0", "acme-dc1-0"}
    assert len(set(dcs.values())) == 2 and set(dcs.values()) <= NODES, dcs  # the required anti-affinity
    node_addresses = {
        n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        for n in kube.get("nodes")["items"]
    }
    for name, node in dcs.items():
        status = kube.get("pod", name, NAMESPACE)["status"]
        assert status["podIP"] == status["hostIP"] == node_addresses[node], name
    wait_condition(kube, "ReplicationHealthy", "True")

    username = register(domain, "node")
    for index in (0, 1):
        kube.eventually(
            lambda index=index: authenticates(kube, index, username, domain.directory),
            timeout=300,
            interval=2,
            message=f"{username} authenticating on dc{index} at {dc_address(kube, index)}",
        )
    assert not authenticates(kube, 1, username, domain.directory, GOOD_PASSWORD + "x")


def test_the_domains_dns_names_every_dc_at_its_nodes_address(domain):
    kube = domain.kube
    realm = multinode.realm(kube)
    expected = {f"dc{i}.{realm.lower()}": [dc_address(kube, i)] for i in (0, 1)}
    for index in (0, 1):  # ask either DC: the zone replicates
        # dc1's SRV records come from its samba_dnsupdate once it serves, then replicate to dc0
        kube.eventually(
            lambda index=index: multinode.domain_controllers_in_dns(dc_address(kube, index), realm) == expected,
            timeout=300,
            interval=5,
            message=lambda index=index: (
                f"the DCs in dc{index}'s DNS: "
                f"{multinode.domain_controllers_in_dns(dc_address(kube, index), realm)}, not {expected}"
            ),
        )


def test_broker_members_and_portal_replicas_are_spread_over_the_nodes(domain):
    kube = domain.kube
    brokers, portals = placement(kube, "broker"), placement(kube, "portal")
    assert len(brokers) == 3 and set(brokers.values()) == NODES, brokers
    assert len(portals) == 2 and len(set(portals.values())) == 2, portals
    # the operator's doing: spread over nodes in the Pods' own spec
    for name in [*brokers, *portals]:
        keys = {c["topologyKey"] for c in kube.get("pod", name, NAMESPACE)["spec"]["topologySpreadConstraints"]}
        assert "kubernetes.io/hostname" in keys, name


CONNECT = """
import json, socket, sys
targets = json.loads(sys.argv[1])
def attempt(address):
    try:
        socket.create_connection(tuple(address), timeout=5).close()
        return "open"
    except OSError:
        return "blocked"
print(json.dumps({name: attempt(address) for name, address in targets.items()}))
"""


def test_the_broker_admits_dcs_and_refuses_other_pods_across_nodes(domain):
    kube = domain.kube
    brokers = placement(kube, "broker")
    broker, broker_node = sorted(brokers.items())[0]
    broker_address = [kube.get("pod", broker, NAMESPACE)["status"]["podIP"], 5671]
    dcs = placement(kube, "directory")
    dc_elsewhere, dc_node = next((name, node) for name, node in sorted(dcs.items()) if node != broker_node)
    other_node = sorted(NODES - {broker_node})[0]
    # a Pod of the domain's namespace that is neither the portal nor a DC, on another node
    seen = domain.deployment.python_in_pod(
        NAMESPACE,
        CONNECT,
        {"broker": broker_address, "dc-ldap": [dc_address(kube, 0), 389]},
        node=other_node,
    )
    assert seen == {"broker": "blocked", "dc-ldap": "open"}, f"from a Pod on {other_node} to {broker} on {broker_node}"
    # the DC on another node (its worker, host network) reaches the same broker member
    reached = kube.kubectl(
        "exec", dc_elsewhere, "-n", NAMESPACE, "-c", "worker", "--",
        "python3", "-c", CONNECT, json.dumps({"broker": broker_address}),
    )  # fmt: skip
    assert reached.stdout.strip().endswith('{"broker": "open"}'), f"from {dc_elsewhere} on {dc_node}: {reached.stdout}"
