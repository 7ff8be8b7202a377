"""The broker builder: TLS-only configuration, least-privilege users, its StatefulSet and Service."""

import json
import re

from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE
from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.broker import broker_definitions, rabbitmq_conf
from es4ps_testkit.manifests import by_kind_name, statefulset

# --- broker ----------------------------------------------------------------------------


def test_rabbitmq_conf_listens_on_tls_only_and_logs_clients_in_by_certificate():
    lines = set(rabbitmq_conf().splitlines())
    assert {
        "listeners.tcp = none",
        "listeners.ssl.default = 5671",
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
        "auth_mechanisms.1 = EXTERNAL",
        "ssl_cert_login_from = common_name",
        "load_definitions = /etc/rabbitmq/definitions.json",
    } <= lines
    assert not any(line.startswith(("default_user", "default_pass", "management")) for line in lines)


def test_broker_users_have_no_password_and_least_privilege():
    definitions = broker_definitions()
    assert {user["name"]: user["password_hash"] for user in definitions["users"]} == {"portal": "", "worker": ""}
    permissions = {p["user"]: p for p in definitions["permissions"]}
    assert re.fullmatch(permissions["portal"]["read"], RESULTS_QUEUE)
    assert not re.fullmatch(permissions["portal"]["read"], PROVISIONING_QUEUE)
    assert re.fullmatch(permissions["worker"]["read"], PROVISIONING_QUEUE)
    assert not re.fullmatch(permissions["worker"]["read"], RESULTS_QUEUE)
    for permission in permissions.values():
        assert permission["vhost"] == "es4ps"
        for kind in ("configure", "write", "read"):
            assert not re.fullmatch(permission[kind], "amq.default")
            assert not re.fullmatch(permission[kind], "es4ps.provisioningX")
    assert {q["name"] for q in definitions["queues"]} == {PROVISIONING_QUEUE, RESULTS_QUEUE}


def test_broker_pods_restart_when_their_configuration_changes(acme, config):
    desired = build_desired_state(acme, config)
    config_map = by_kind_name(desired)[("ConfigMap", "acme-broker")]
    assert json.loads(config_map["data"]["definitions.json"]) == broker_definitions()
    assert config_map["data"]["enabled_plugins"] == "[rabbitmq_auth_mechanism_ssl,rabbitmq_prometheus].\n"
    annotations = statefulset(desired, "acme-broker")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{16}", annotations[naming.CONFIG_HASH_ANNOTATION])


def test_broker_service_is_headless_on_5671_only(acme, config):
    service = by_kind_name(build_desired_state(acme, config))[("Service", "acme-broker")]
    assert service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in service["spec"]["ports"]] == [5671]
