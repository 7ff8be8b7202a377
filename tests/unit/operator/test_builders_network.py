"""The network policies: who reaches the broker, the DCs and the portal."""

from es4ps_operator.builders import build_desired_state
from es4ps_testkit.domains import make_domain

# --- network policies ---------------------------------------------------------------------------


def policies(domain, config):
    return {m["metadata"]["name"]: m["spec"] for m in build_desired_state(domain, config).applied["network"]}


def test_only_portal_and_dcs_reach_the_broker(config):
    domain = make_domain(directory={"networkMode": "Service"})
    broker = policies(domain, config)["acme-broker"]
    assert broker["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "acme",
        "app.kubernetes.io/component": "broker",
    }
    assert broker["policyTypes"] == ["Ingress"]
    [rule] = broker["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5671}]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"]] == [
        "portal",
        "directory",
    ]


def test_host_network_dcs_reach_the_broker_from_node_ranges_or_anywhere_with_mtls(config):
    open_rule = policies(make_domain(), config)["acme-broker"]["ingress"]
    assert open_rule == [{"ports": [{"protocol": "TCP", "port": 5671}]}]
    ranged = make_domain(directory={"nodeCIDRs": ["192.0.2.0/24", "198.51.100.7/32"]})
    # Exactly these peers: one more (say 0.0.0.0/0) would open the broker to everyone.
    assert policies(ranged, config)["acme-broker"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": "portal"}
                    }
                },
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/instance": "acme",
                            "app.kubernetes.io/component": "directory",
                        }
                    }
                },
                {"ipBlock": {"cidr": "192.0.2.0/24"}},
                {"ipBlock": {"cidr": "198.51.100.7/32"}},
            ],
            "ports": [{"protocol": "TCP", "port": 5671}],
        }
    ]


def test_only_the_ingress_controller_reaches_the_portal(acme, config):
    portal = policies(acme, config)["acme-portal"]
    assert portal["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "portal"
    [rule] = portal["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
