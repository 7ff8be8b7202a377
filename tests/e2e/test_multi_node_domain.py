"""The default topology on three real nodes: HostNetwork DCs one per node, spread broker and portal, drains and a
lost node survived, NetworkPolicies across nodes.

The chart's `acme` domain on the multi-node cluster (es4ps_testkit.multinode):
two DCs in the default `HostNetwork` mode, three broker members, two portal
replicas on PostgreSQL. The tests run in this order and share it; each leaves
every node Ready and the domain Ready for the next (a failed one leaves every
node back at least: fixture `nodes_restored`). The drain and node-loss tests
need a node without a DC (the one that never returns moves its DC there), so
the step to three DCs comes last, and the domain keeps them until the
cluster goes down.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
from es4ps_testkit import multinode
from es4ps_testkit.multinode import NAMESPACE, authenticates, dc_address, placement, uncordon
from es4ps_testkit.registration import GOOD_PASSWORD

# nodes_restored: a test that fails with a node lost or cordoned leaves every node back for the next
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.multinode,
    pytest.mark.timeout(1800),
    pytest.mark.usefixtures("nodes_restored"),
]
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


def wait_condition_saying(kube, kind: str, words: str, timeout: float = 300) -> dict:
    """The condition `kind` once its message contains `words`."""
    return kube.eventually(
        lambda: (found := condition(kube, kind)) and words in found.get("message", "") and found,
        timeout=timeout,
        interval=3,
        message=lambda: f"{kind} saying {words!r} (it says {condition(kube, kind).get('message')!r})",
    )


def register(domain, prefix: str) -> str:
    """One person registers and confirms through the ingress controller; the username once ready."""
    outcome = multinode.register(domain.deployment, prefix)
    assert outcome.waited_s is not None, outcome
    return outcome.username


def wait_until_authenticates_on(domain, indexes: tuple[int, ...], username: str) -> None:
    """Until `username`'s password works on each of the DCs `indexes` (the account replicated to each)."""
    kube = domain.kube
    for index in indexes:
        kube.eventually(
            lambda index=index: authenticates(kube, index, username, domain.directory),
            timeout=300,
            interval=2,
            message=f"{username} authenticating on dc{index}",
        )


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
    wait_until_authenticates_on(domain, (0, 1), username)
    assert not authenticates(kube, 1, username, domain.directory, GOOD_PASSWORD + "x")


def wait_until_each_dcs_dns_names_all(kube, indexes: tuple[int, ...]) -> None:
    """Ask each DC's DNS (the zone replicates: either must know) until it names every DC at its node's address.
    A DC's SRV records come from its samba_dnsupdate once it serves, then replicate to the others."""
    realm = multinode.realm(kube)
    expected = {f"dc{i}.{realm.lower()}": [dc_address(kube, i)] for i in indexes}
    for index in indexes:
        kube.eventually(
            lambda index=index: multinode.domain_controllers_in_dns(dc_address(kube, index), realm) == expected,
            timeout=300,
            interval=5,
            message=lambda index=index: (
                f"the DCs in dc{index}'s DNS: "
                f"{multinode.domain_controllers_in_dns(dc_address(kube, index), realm)}, not {expected}"
            ),
        )


def test_the_domains_dns_names_every_dc_at_its_nodes_address(domain):
    wait_until_each_dcs_dns_names_all(domain.kube, (0, 1))


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


def test_a_drained_nodes_pods_wait_for_it_while_registrations_complete(domain):
    """Drain a node holding a DC, a broker member and a portal replica while people register: the budgets let each
    go, the Pods wait for their node (their volumes are on it), and a drain of the other DC's node meanwhile waits
    on the budgets; once the node is uncordoned everything comes back on it, no registration lost."""
    kube = domain.kube
    first = multinode.node_holding_everything(kube)
    on_first = [p for c in ("directory", "broker", "portal") for p, n in placement(kube, c).items() if n == first]
    other_dc = next(p for p, n in placement(kube, "directory").items() if n != first)
    second = multinode.node_of(kube, other_dc)
    people = multinode.Registrations(domain.deployment, "drn").start()
    try:
        time.sleep(10)
        draining = multinode.drain(kube, first)
        output, _ = draining.communicate(timeout=660)
        assert draining.returncode == 0, output
        for name in on_first:  # evicted, made again, and waiting unscheduled: its volume has a node affinity
            pod = kube.eventually(
                lambda name=name: (
                    (p := kube.get("pod", name, NAMESPACE, check=False)).get("status", {}).get("phase") == "Pending"
                    and p
                ),
                timeout=120,
                message=f"{name} back and Pending",
            )
            assert not pod["spec"].get("nodeName"), f"{name} was scheduled elsewhere than its volume's node"

        waiting = multinode.drain(kube, second, timeout_s=45)
        output, _ = waiting.communicate(timeout=120)
        assert waiting.returncode != 0, f"the second drain went through while {first}'s DC was away: {output}"
        assert f'evicting pods/"{other_dc}"' in output and "disruption budget" in output, output
        assert multinode.node_of(kube, other_dc) == second
        uncordon(kube, second)

        uncordon(kube, first)
        multinode.wait_domain_ready(kube)
        for name in on_first:
            assert multinode.node_of(kube, name) == first, f"{name} came back on another node"
        wait_condition(kube, "ReplicationHealthy", "True")
    finally:
        for node in (first, second):
            kube.kubectl("uncordon", node, check=False)
        people.stop()
    waited = [round(o.waited_s, 1) for o in people.outcomes if o.waited_s is not None]
    print(f"\n{len(waited)} registrations during the drain; longest wait {people.longest_wait_s:.1f} s: {waited}")
    assert waited, "no registration completed during the drain"
    assert not people.lost, people.lost
    assert all(o.waited_s is not None for o in people.outcomes), [o for o in people.outcomes if o.error]


def test_a_lost_node_is_named_the_others_serve_and_it_rejoins(domain):
    """The node of dc1 loses power while people register: the domain names what is gone, registrations complete
    and people log in through dc0; the node comes back and everything rejoins with no manual step."""
    kube, local = domain.kube, domain.local
    lost = multinode.node_of(kube, multinode.dc_pod(1))
    broker_lost = next(p for p, n in placement(kube, "broker").items() if n == lost)
    people = multinode.Registrations(domain.deployment, "lost").start()
    try:
        time.sleep(10)
        local.lose_node(lost)
        # the Pods and the node they were on, named: what an administrator needs to know which machine went
        directory = wait_condition_saying(kube, "DirectoryReady", f"{multinode.dc_pod(1)} on {lost}")
        broker = wait_condition_saying(kube, "BrokerReady", f"{broker_lost} on {lost}")
        assert directory["status"] == broker["status"] == "False", (directory, broker)
        while_away = register(domain, "away")
        assert authenticates(kube, 0, while_away, domain.directory)

        started = time.monotonic()
        local.bring_back_node(lost)
        wait_condition(kube, "ReplicationHealthy", "True", timeout=900)
        rejoin_s = time.monotonic() - started
        multinode.wait_domain_ready(kube)
    finally:
        people.stop()
    print(f"\nnode back until ReplicationHealthy True: {rejoin_s:.0f} s")
    kube.eventually(
        lambda: authenticates(kube, 1, while_away, domain.directory),
        timeout=300,
        interval=3,
        message=f"{while_away}, registered while dc1 was away, authenticating on dc1",
    )
    waited = [round(o.waited_s, 1) for o in people.outcomes if o.waited_s is not None]
    print(f"{len(waited)} registrations while the node was lost and back; longest wait {people.longest_wait_s:.1f} s")
    assert not people.lost, people.lost
    assert all(o.waited_s is not None for o in people.outcomes), [o for o in people.outcomes if o.error]


def test_a_dc_whose_node_never_returns_joins_again_on_another_node(domain):
    """A node gone for good: the documented way (docs/operations.md) deletes the Node, the DC's claim and its Pod;
    the DC joins again under its name on the node that has none. The node's other Pods wait for it, and when the
    repaired machine joins the cluster again they come back."""
    kube, local = domain.kube, domain.local
    gone = multinode.node_of(kube, multinode.dc_pod(1))
    spare = sorted(NODES - {gone, multinode.node_of(kube, multinode.dc_pod(0))})[0]
    local.lose_node(gone)
    kube.kubectl("delete", "node", gone)
    kube.kubectl("delete", "pvc", "data-acme-dc1-0", "-n", NAMESPACE, "--wait=false")
    kube.kubectl("delete", "pod", multinode.dc_pod(1), "-n", NAMESPACE, "--force", "--grace-period=0", check=False)
    kube.eventually(  # the StatefulSet makes the Pod again a moment after the delete
        lambda: multinode.placed_on(kube, multinode.dc_pod(1)) == spare,
        timeout=300,
        interval=3,
        message=f"dc1 placed on {spare}, the node without a DC",
    )
    wait_condition(kube, "ReplicationHealthy", "True", timeout=900)
    username = register(domain, "moved")
    wait_until_authenticates_on(domain, (0, 1), username)
    assert dc_address(kube, 1) == next(
        a["address"] for a in kube.get("node", spare)["status"]["addresses"] if a["type"] == "InternalIP"
    )

    # dc0 pulls from the DC that joined again under its name (new NTDS Settings, new key): an account written on
    # dc1 alone reaches dc0, and every inbound link of dc0 from dc1 has succeeded. (dc0's samba first drops its
    # tickets for dc1's former key: es4ps_samba.dc.peers; without that every pull fails for 10 hours.)
    def from_dc1() -> list[dict]:
        links = multinode.inbound_replication(kube, 0)
        return [link for link in links if (link.get("DSA") or "").lower().endswith("\\dc1")]

    written_on_dc1 = f"ondc1{uuid.uuid4().hex[:6]}"
    multinode.create_account_on(kube, 1, written_on_dc1)
    kube.eventually(
        lambda: authenticates(kube, 0, written_on_dc1, domain.directory),
        timeout=300,
        interval=5,
        message=lambda: f"{written_on_dc1}, written on dc1, authenticating on dc0 (dc0 pulls: {from_dc1()})",
    )

    kube.eventually(
        lambda: (
            (links := from_dc1())
            and all(link["consecutive failures"] == 0 and link["last success"] != "NTTIME(0)" for link in links)
        ),
        timeout=300,
        interval=5,
        message=lambda: f"dc0's inbound links from dc1 succeeding: {from_dc1()}",
    )

    local.bring_back_node(gone)  # the repaired machine registers again under its name
    multinode.wait_domain_ready(kube)
    assert {multinode.node_of(kube, p) for p in placement(kube, "broker")} == NODES


def pulls_from(kube, index: int) -> dict[str, bool]:
    """DC `index`'s inbound partners (`dc<j>`) -> whether every link from that partner has succeeded and none fails."""
    partners: dict[str, bool] = {}
    for link in multinode.inbound_replication(kube, index):
        partner = (link.get("DSA") or "").lower().rsplit("\\", 1)[-1]
        succeeded = link["consecutive failures"] == 0 and link["last success"] != "NTTIME(0)"
        partners[partner] = partners.get(partner, True) and succeeded
    return partners


def test_a_third_dc_joins_on_the_node_without_one_and_every_pair_replicates(domain):
    """`directory.replicas: 3`: dc2 joins on the node that has no DC, at that node's address; each DC pulls from
    each of the others, ReplicationHealthy counts three, an account registered through the portal authenticates
    on each DC, one written on dc2 alone reaches the others, and each DC's DNS names all three. The module's last
    test (the cluster goes down after it), so the domain keeps its three DCs."""
    kube = domain.kube
    free = NODES - set(placement(kube, "directory").values())
    assert len(free) == 1, f"two DCs on two of three nodes, one node free: {placement(kube, 'directory')}"
    started = time.monotonic()
    kube.merge_patch("es4psdomain", "acme", {"spec": {"directory": {"replicas": 3}}}, NAMESPACE)
    node = kube.eventually(
        lambda: multinode.placed_on(kube, multinode.dc_pod(2)),
        timeout=300,
        interval=3,
        message="dc2 placed on a node",
    )
    assert {node} == free, f"dc2 on {node}, not on the node without a DC ({free}): the required anti-affinity"
    multinode.wait_domain_ready(kube)
    ready_s = time.monotonic() - started
    healthy = wait_condition(kube, "ReplicationHealthy", "True")
    assert "all 3 domain controllers" in healthy["message"], healthy
    print(f"\nreplicas 3: domain Ready {ready_s:.0f} s, ReplicationHealthy {time.monotonic() - started:.0f} s after")
    status = kube.get("pod", multinode.dc_pod(2), NAMESPACE)["status"]
    addresses = kube.get("node", node)["status"]["addresses"]
    assert status["podIP"] == status["hostIP"] == next(a["address"] for a in addresses if a["type"] == "InternalIP")

    # every pair, both ways: each DC has pulled from each of the two others, and no link fails
    for index in (0, 1, 2):
        expected = {f"dc{other}": True for other in (0, 1, 2) if other != index}
        kube.eventually(
            lambda index=index, expected=expected: pulls_from(kube, index) == expected,
            timeout=300,
            interval=5,
            message=lambda index=index: f"dc{index} pulling from both others: {pulls_from(kube, index)}",
        )

    username = register(domain, "three")
    wait_until_authenticates_on(domain, (0, 1, 2), username)
    assert not authenticates(kube, 2, username, domain.directory, GOOD_PASSWORD + "x")
    written_on_dc2 = f"ondc2{uuid.uuid4().hex[:6]}"
    multinode.create_account_on(kube, 2, written_on_dc2)
    wait_until_authenticates_on(domain, (0, 1), written_on_dc2)

    wait_until_each_dcs_dns_names_all(kube, (0, 1, 2))
