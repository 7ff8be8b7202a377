"""Placement, disruption budgets, a clustered broker and monitoring: what the builders write for them."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
import yaml
from es4ps_localcluster import tools
from es4ps_localcluster.paths import BIN
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.monitoring import alert_rules
from es4ps_operator.builders.secrets import build_generated_secrets
from es4ps_operator.reconcile import reconcile
from es4ps_testkit.domains import MINIMAL_SPEC, domain_body, make_domain
from test_operator_reconcile import RecordingApi

PROMTOOL = BIN / "promtool"


def objects(domain, config):
    return {(m["kind"], m["metadata"]["name"]): m for m in build_desired_state(domain, config).manifests()}


def pod_spec(found, name):
    return found[("StatefulSet", name)]["spec"]["template"]["spec"]


def env_of(container):
    return {e["name"]: e.get("value") for e in container["env"]}


def test_pods_spread_over_nodes_as_far_as_possible(config):
    found = objects(make_domain(directory={"networkMode": "Service", "replicas": 2}), config)
    for name, component in (("acme-dc0", "directory"), ("acme-broker", "broker"), ("acme-portal", "portal")):
        spread = pod_spec(found, name)["topologySpreadConstraints"]
        assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
            ("kubernetes.io/hostname", "ScheduleAnyway"),
        ]
        # Counted over every Pod of the component (both DCs), not one StatefulSet's.
        selector = {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": component}
        assert all(c["labelSelector"] == {"matchLabels": selector} for c in spread)
        assert "priorityClassName" not in pod_spec(found, name)
    assert "affinity" not in pod_spec(found, "acme-dc1")


def test_spread_and_priority_are_the_domains_to_set(config):
    zones = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]
    domain = make_domain(
        directory={"priorityClassName": "directory-critical", "topologySpreadConstraints": zones},
        broker={"topologySpreadConstraints": []},
    )
    found = objects(domain, config)
    dc = pod_spec(found, "acme-dc0")
    assert dc["priorityClassName"] == "directory-critical"
    assert dc["topologySpreadConstraints"] == [
        zones[0]
        | {
            "labelSelector": {
                "matchLabels": {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": "directory"}
            }
        }
    ]
    assert pod_spec(found, "acme-broker")["topologySpreadConstraints"] == []


def test_dcs_on_the_host_network_never_share_a_node(config):
    affinity = pod_spec(objects(make_domain(directory={"replicas": 2}), config), "acme-dc1")["affinity"]
    (term,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "directory"


def test_disruption_budgets_let_a_drain_take_one_pod_at_a_time_and_keep_a_brokers_majority(config):
    single = objects(make_domain(), config)
    assert single[("PodDisruptionBudget", "acme-directory")]["spec"]["maxUnavailable"] == 1
    assert single[("PodDisruptionBudget", "acme-portal")]["spec"]["maxUnavailable"] == 1
    assert single[("PodDisruptionBudget", "acme-broker")]["spec"]["maxUnavailable"] == 1
    clustered = objects(make_domain(broker={"replicas": 3}), config)
    assert clustered[("PodDisruptionBudget", "acme-broker")]["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": "broker"}},
        "minAvailable": 2,
    }


def test_a_single_broker_stays_as_it_was(config):
    found = objects(make_domain(), config)
    broker = pod_spec(found, "acme-broker")
    assert env_of(broker["containers"][0])["RABBITMQ_NODENAME"] == "rabbit@localhost"
    assert "initContainers" not in broker
    assert found[("StatefulSet", "acme-broker")]["spec"]["serviceName"] == "acme-broker"
    definitions = json.loads(found[("ConfigMap", "acme-broker")]["data"]["definitions.json"])
    assert all(q["arguments"] == {} for q in definitions["queues"])
    assert env_of(pod_spec(found, "acme-portal")["containers"][0])["ES4PS_BROKER_QUEUE_TYPE"] == "classic"


def test_three_brokers_cluster_over_tls_with_quorum_queues(config):
    domain = make_domain(broker={"replicas": 3})
    found = objects(domain, config)
    sts = found[("StatefulSet", "acme-broker")]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "acme-broker-nodes"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    nodes = found[("Service", "acme-broker-nodes")]["spec"]
    assert nodes["publishNotReadyAddresses"] is True and nodes["clusterIP"] == "None"
    # Clients still reach ready nodes only.
    assert "publishNotReadyAddresses" not in found[("Service", "acme-broker")]["spec"]

    pod = sts["spec"]["template"]["spec"]
    variables = env_of(pod["containers"][0])
    assert variables["RABBITMQ_NODENAME"] == "rabbit@$(POD_NAME).acme-broker-nodes.acme.svc.cluster.local"
    assert variables["RABBITMQ_USE_LONGNAME"] == "true"
    # Each node joins the quorum queues declared before it ran, in the background: the hook returns at once, so
    # the member counts as Ready as soon as it serves.
    hook = pod["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert 'rabbitmq-queues -q grow "$RABBITMQ_NODENAME" all' in hook
    assert hook.endswith(") </dev/null >/dev/null 2>&1 &"), hook
    for name in ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "RABBITMQ_CTL_ERL_ARGS"):
        assert variables[name] == "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter_node_tls.config"
    (cookie,) = pod["initContainers"]
    assert "install -m 0400" in cookie["command"][-1]
    assert {
        "name": "erlang-cookie",
        "secret": {
            "secretName": "acme-broker-erlang-cookie",
            "defaultMode": 0o440,
            "items": [{"key": "cookie", "path": "cookie"}],
        },
    } in pod["volumes"]

    data = found[("ConfigMap", "acme-broker")]["data"]
    conf = dict(line.split(" = ", 1) for line in data["rabbitmq.conf"].splitlines() if " = " in line)
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert [conf[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)] == [
        f"rabbit@acme-broker-{i}.acme-broker-nodes.acme.svc.cluster.local" for i in range(3)
    ]
    assert "{verify, verify_peer}" in data["inter_node_tls.config"]
    queues = json.loads(data["definitions.json"])["queues"]
    assert [q["arguments"] for q in queues] == [{"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}] * 2

    certificate = found[("Certificate", "acme-broker-tls")]["spec"]
    assert "client auth" in certificate["usages"]
    assert "acme-broker-2.acme-broker-nodes.acme.svc.cluster.local" in certificate["dnsNames"]
    policy = found[("NetworkPolicy", "acme-broker")]["spec"]["ingress"]
    assert {
        "from": [
            {
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": "broker"}
                }
            }
        ],
        "ports": [{"protocol": "TCP", "port": 4369}, {"protocol": "TCP", "port": 25672}],
    } in policy
    assert "acme-broker-erlang-cookie" in {s.name for s in build_generated_secrets(domain)}
    for sts_name in ("acme-portal", "acme-dc0"):
        for container in pod_spec(found, sts_name)["containers"]:
            if any(e["name"] == "ES4PS_BROKER_URL" for e in container.get("env", [])):
                assert env_of(container)["ES4PS_BROKER_QUEUE_TYPE"] == "quorum"


def test_monitoring_writes_pod_monitors_and_alerts_and_opens_the_metrics_ports(config):
    assert not [k for k in objects(make_domain(), config) if k[0] in ("PodMonitor", "PrometheusRule")]
    domain = make_domain(monitoring={"enabled": True, "labels": {"release": "kube-prometheus"}})
    reconciled = RecordingApi()
    asyncio.run(
        reconcile(
            domain_body(MINIMAL_SPEC | {"monitoring": {"enabled": True, "labels": {"release": "kube-prometheus"}}}),
            [],
            reconciled,
            config,
        )
    )
    monitors = {name: m for (kind, name), m in reconciled.objects.items() if kind == "PodMonitor"}
    assert {name: [e["port"] for e in m["spec"]["podMetricsEndpoints"]] for name, m in monitors.items()} == {
        "acme-portal": ["metrics", "consumer-metric"],
        "acme-worker": ["health"],
        "acme-dc": ["health"],
        "acme-broker": ["prometheus"],
    }
    # The DC Pods' one door: HTTPS, the monitoring client certificate; the worker's metrics behind it.
    for name, path in (("acme-dc", "/metrics"), ("acme-worker", "/worker-metrics")):
        (endpoint,) = monitors[name]["spec"]["podMetricsEndpoints"]
        assert (endpoint["path"], endpoint["scheme"]) == (path, "https")
        assert endpoint["tlsConfig"]["keySecret"] == {"name": "acme-monitoring-tls", "key": "tls.key"}
        assert endpoint["tlsConfig"]["serverName"] == "acme-directory.acme.svc"
    # Each endpoint is a port the Pods declare.
    declared = {
        port["name"]
        for (kind, _), manifest in reconciled.objects.items()
        if kind == "StatefulSet"
        for container in manifest["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }
    assert {e["port"] for m in monitors.values() for e in m["spec"]["podMetricsEndpoints"]} <= declared
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus" for m in monitors.values())
    assert ("PrometheusRule", "acme-alerts") in reconciled.objects
    condition = {c["type"]: c for c in reconciled.statuses[-1]["conditions"]}["MonitoringReady"]
    assert condition["status"] == "True"

    found = objects(domain, config)
    scraper = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    metrics_ports = [{"protocol": "TCP", "port": "metrics"}, {"protocol": "TCP", "port": "consumer-metric"}]
    assert {"from": scraper, "ports": metrics_ports} in found[("NetworkPolicy", "acme-portal")]["spec"]["ingress"]
    assert {"from": scraper, "ports": [{"protocol": "TCP", "port": "prometheus"}]} in found[
        ("NetworkPolicy", "acme-broker")
    ]["spec"]["ingress"]


def test_monitoring_without_the_prometheus_operator_says_so_and_the_domain_is_still_served(config):
    api = RecordingApi(monitoring_served=False)
    result = asyncio.run(reconcile(domain_body(MINIMAL_SPEC | {"monitoring": {"enabled": True}}), [], api, config))
    assert result.error is None
    assert not [k for k in api.objects if k[0] in ("PodMonitor", "PrometheusRule")]
    conditions = {c["type"]: c for c in api.statuses[-1]["conditions"]}
    assert conditions["MonitoringReady"]["status"] == "False"
    assert conditions["MonitoringReady"]["reason"] == "PrometheusOperatorMissing"
    assert "monitoring.coreos.com" in conditions["MonitoringReady"]["message"]


def test_disabling_monitoring_removes_what_it_wrote(config):
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC | {"monitoring": {"enabled": True}})
    asyncio.run(reconcile(body, [], api, config))
    body["status"] = api.statuses[-1]
    body["spec"]["monitoring"]["enabled"] = False
    asyncio.run(reconcile(body, api.observed(), api, config))
    assert {kind for kind, _ in api.deleted} == {"PodMonitor", "PrometheusRule"}
    conditions = {c["type"]: c for c in api.statuses[-1]["conditions"]}
    assert conditions["MonitoringReady"]["reason"] == "NotConfigured"


# --- the alerts, checked and unit-tested by Prometheus's own promtool -----------------------------


def annotations(alert_name):
    return next(r["annotations"] for r in alert_rules(make_domain()) if r["alert"] == alert_name)


@pytest.fixture
def rules_file(tmp_path):
    domain = make_domain(monitoring={"enabled": True})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "es4ps", "rules": alert_rules(domain)}]}))
    return path


def promtool(*args, cwd):
    tools.ensure("promtool")  # built by the first test that needs it, then cached
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_the_rules_pass_promtool_check(rules_file):
    checked = promtool("check", "rules", str(rules_file), cwd=rules_file.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules(make_domain()))} rules found" in checked.stdout
    assert len(alert_rules(make_domain())) == 11  # no uid range without Unix attributes


def test_a_growing_provisioning_queue_fires_the_backlog_alert_and_no_consumer_fires_its_own(rules_file):
    queue = 'namespace="acme",pod="acme-broker-0",queue="es4ps.provisioning"'
    portal, other_portal = 'namespace="acme",pod="acme-portal-0"', 'namespace="acme",pod="acme-portal-1"'
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 150 tasks waiting for 20 minutes, and no consumer from minute 0.
                    {"series": f"rabbitmq_queue_messages_ready{{{queue}}}", "values": "150x20"},
                    {"series": f"rabbitmq_queue_consumers{{{queue}}}", "values": "0x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "ES4PSProvisioningQueueBacklog", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "ES4PSProvisioningQueueBacklog",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "es4ps_domain": "acme"},
                                "exp_annotations": annotations("ES4PSProvisioningQueueBacklog"),
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "ES4PSProvisioningQueueNoConsumer",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "es4ps_domain": "acme"},
                                "exp_annotations": annotations("ES4PSProvisioningQueueNoConsumer"),
                            }
                        ],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    # A short burst that drains: no alert.
                    {"series": f"rabbitmq_queue_messages_ready{{{queue}}}", "values": "500 400 300 200 100 0x15"},
                    {"series": f"rabbitmq_queue_consumers{{{queue}}}", "values": "2x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": "ES4PSProvisioningQueueBacklog", "exp_alerts": []},
                    {"eval_time": "15m", "alertname": "ES4PSProvisioningQueueNoConsumer", "exp_alerts": []},
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    # The broker away: the outbox's oldest task ages a minute a minute; a relay that keeps up does not.
                    {"series": f"es4ps_portal_outbox_oldest_task_age_seconds{{{portal}}}", "values": "0+60x20"},
                    {"series": f"es4ps_portal_outbox_oldest_task_age_seconds{{{other_portal}}}", "values": "1x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "6m", "alertname": "ES4PSOutboxStuck", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "ES4PSOutboxStuck",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "es4ps_domain": "acme"},
                                "exp_annotations": annotations("ES4PSOutboxStuck"),
                            }
                        ],
                    },
                ],
            },
        ],
    }
    test_file = rules_file.parent / "tests.yaml"
    test_file.write_text(yaml.safe_dump(tests))
    tested = promtool("test", "rules", test_file.name, cwd=rules_file.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


UNIX = {"enabled": True, "loginShell": "/bin/bash", "homeDirectoryTemplate": "/home/{username}",
        "uidRange": {"start": 10000, "end": 110000}}  # fmt: skip


def test_the_alerts_fire_before_registrations_rids_or_uids_run_out_and_not_before(tmp_path):
    domain = make_domain(monitoring={"enabled": True}, directory={"unix": UNIX})
    rules = alert_rules(domain)
    assert [r["labels"].get("uid_range") for r in rules if r["alert"] == "ES4PSUidRangeLow"] == ["10000-110000"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "es4ps", "rules": rules}]}))
    portal, dc0, dc1 = (f'namespace="acme",pod="{pod}"' for pod in ("acme-portal-0", "acme-dc0-0", "acme-dc1-0"))
    cap = f'es4ps_portal_pending_registration_cap{{{portal},scope="perDomain"}}'

    def fired(name, labels):
        text = next(r["annotations"] for r in rules if r["alert"] == name)
        return [{"exp_labels": {"es4ps_domain": "acme", **labels}, "exp_annotations": text}]

    def case(series, name, fires):
        return {"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": "90m", "alertname": name, "exp_alerts": fires},
        ]}  # fmt: skip

    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
        # 850 of 1000 unconfirmed: near the cap; 700: not yet.
        case([{"series": f"es4ps_portal_pending_registrations{{{portal}}}", "values": "850x100"},
              {"series": cap, "values": "1000x100"}],
             "ES4PSPendingRegistrationsNearCap", fired("ES4PSPendingRegistrationsNearCap", {"severity": "warning"})),
        case([{"series": f"es4ps_portal_pending_registrations{{{portal}}}", "values": "700x100"},
              {"series": cap, "values": "1000x100"}], "ES4PSPendingRegistrationsNearCap", []),
        # One DC sees fewer than 10 % of the 2^30 - 1 RIDs left; with plenty left, nothing.
        case([{"series": f"es4ps_dc_rids_remaining{{{dc0}}}", "values": "100000000x100"},
              {"series": f"es4ps_dc_rids_remaining{{{dc1}}}", "values": "100000500x100"}],
             "ES4PSRIDPoolLow", fired("ES4PSRIDPoolLow", {"severity": "critical"})),
        case([{"series": f"es4ps_dc_rids_remaining{{{dc0}}}", "values": "1000000000x100"}], "ES4PSRIDPoolLow", []),
        # A range of 100 000 uids: 91 000 RIDs handed out leave 9 000 (< 10 %); 50 000 leave plenty.
        case([{"series": f"es4ps_dc_rids_issued{{{dc0}}}", "values": "91000x100"},
              {"series": f"es4ps_dc_rids_issued{{{dc1}}}", "values": "90500x100"}],
             "ES4PSUidRangeLow", fired("ES4PSUidRangeLow", {"severity": "warning", "uid_range": "10000-110000"})),
        case([{"series": f"es4ps_dc_rids_issued{{{dc0}}}", "values": "50000x100"}], "ES4PSUidRangeLow", []),
    ]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    tested = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
