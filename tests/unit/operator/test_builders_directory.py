"""The directory builder: the DCs' Pods (least privilege, addresses, joining, volumes) and their workers."""

import json

import pytest
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.directory import DC_CAPABILITIES
from es4ps_testkit.domains import make_domain
from es4ps_testkit.manifests import by_kind_name, containers, env_of, statefulset

# --- directory ---------------------------------------------------------------------------


def test_dc_pods_have_least_privilege(acme, config):
    sts = statefulset(build_desired_state(acme, config), "acme-dc0")
    pod = sts["spec"]["template"]["spec"]
    dc, worker = containers(sts)["dc"], containers(sts)["worker"]
    assert "privileged" not in json.dumps(pod)
    assert dc["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": DC_CAPABILITIES}
    assert set(DC_CAPABILITIES) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"}
    assert worker["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_host_network_dc_advertises_its_node_address_and_resolves_through_its_resolver(acme, config):
    sts = statefulset(build_desired_state(acme, config), "acme-dc0")
    pod = sts["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "None"
    assert pod["dnsConfig"]["nameservers"] == ["127.0.0.2", "127.0.0.1"]
    dc = env_of(containers(sts)["dc"])
    assert dc["ES4PS_HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert dc["ES4PS_DC_ROLE"] == "provision"
    assert dc["ES4PS_REALM"] == "AD.ACME.EXAMPLE"
    assert dc["ES4PS_NETBIOS_NAME"] == "ACME"
    assert containers(sts)["dc"]["command"] == ["es4ps-samba-dc", "run"]
    assert containers(sts)["dc"]["readinessProbe"]["exec"]["command"] == ["es4ps-samba-dc", "ready"]


def test_samba_forwards_only_to_the_spec_and_the_pods_resolver_asks_the_cluster(acme, config):
    """Samba answers outsiders: never the cluster's DNS behind it. The Pod's own names come from the resolver."""
    alone = containers(statefulset(build_desired_state(acme, config), "acme-dc0"))
    assert "ES4PS_DNS_FORWARDER" not in env_of(alone["dc"])
    assert "--server=/ad.acme.example/127.0.0.1" in alone["resolver"]["command"]
    assert alone["resolver"]["command"][-1] == "--server=10.96.0.10"
    forwarding = make_domain(directory={"dnsForwarder": "192.0.2.53"})
    pod = containers(statefulset(build_desired_state(forwarding, config), "acme-dc0"))
    assert env_of(pod["dc"])["ES4PS_DNS_FORWARDER"] == "192.0.2.53"
    assert pod["resolver"]["command"][-1] == "--server=10.96.0.10"


def test_further_dcs_join_the_first(config):
    desired = build_desired_state(make_domain(directory={"replicas": 2}), config)
    dc1 = env_of(containers(statefulset(desired, "acme-dc1"))["dc"])
    assert dc1["ES4PS_DC_ROLE"] == "join"
    assert dc1["ES4PS_JOIN_SERVER"] == "acme-dc0.acme.svc.cluster.local"
    assert dc1["ES4PS_DC_HOSTNAME"] == "dc1"
    assert by_kind_name(desired)[("Service", "acme-dc0")]["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize(("size", "expected"), [("5Gi", 5 << 30), ("500Mi", 500 << 20), ("2G", 2 * 10**9)])
def test_every_dc_learns_its_volume_size_in_bytes(config, size, expected):
    domain = make_domain(directory={"replicas": 2, "storage": {"size": size}})
    desired = build_desired_state(domain, config)
    for name in ("acme-dc0", "acme-dc1"):
        assert env_of(containers(statefulset(desired, name))["dc"])["ES4PS_DATA_VOLUME_BYTES"] == str(expected)


def test_service_mode_exposes_each_dc_and_advertises_the_given_address(config):
    domain = make_domain(
        directory={
            "replicas": 2,
            "networkMode": "Service",
            "serviceType": "LoadBalancer",
            "advertisedAddresses": ["192.0.2.7"],
        }
    )
    desired = by_kind_name(build_desired_state(domain, config))
    external = desired[("Service", "acme-dc0-external")]["spec"]
    assert external["type"] == "LoadBalancer"
    assert {(p["port"], p["protocol"]) for p in external["ports"]} >= {(389, "UDP"), (88, "TCP"), (636, "TCP")}
    dc0 = env_of(containers(desired[("StatefulSet", "acme-dc0")])["dc"])
    dc1 = env_of(containers(desired[("StatefulSet", "acme-dc1")])["dc"])
    assert dc0["ES4PS_HOST_IP"] == "192.0.2.7"
    assert dc1["ES4PS_HOST_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert desired[("StatefulSet", "acme-dc0")]["spec"]["template"]["spec"]["hostNetwork"] is False


def test_worker_reaches_the_broker_and_its_dc(acme, config):
    worker = containers(statefulset(build_desired_state(acme, config), "acme-dc0"))["worker"]
    variables = env_of(worker)
    assert variables["ES4PS_BROKER_URL"] == "amqps://acme-broker.acme.svc.cluster.local:5671/es4ps"
    assert variables["ES4PS_LDAP_URL"] == "ldap://127.0.0.1"
    assert worker["command"] == ["es4ps-worker"]


def test_worker_metrics_listen_on_loopback_behind_the_dcs_health_endpoint(acme, config):
    pod = containers(statefulset(build_desired_state(acme, config), "acme-dc0"))
    assert "ports" not in pod["worker"]
    variables = env_of(pod["worker"])
    assert variables["ES4PS_WORKER_METRICS_PORT"] == "9932"
    assert variables["ES4PS_WORKER_METRICS_ADDRESS"] == "127.0.0.1"
    assert env_of(pod["dc"])["ES4PS_WORKER_METRICS_URL"] == "http://127.0.0.1:9932/metrics"
    assert env_of(pod["dc"])["ES4PS_HEALTH_CLIENT"] == "monitoring"


def test_worker_gets_only_the_keys_it_needs(acme, config):
    pod = statefulset(build_desired_state(acme, config), "acme-dc0")["spec"]["template"]["spec"]
    keys = next(v for v in pod["volumes"] if v["name"] == "worker-keys")["secret"]
    assert {item["key"] for item in keys["items"]} == {"sealing-private.key", "signing-public.key"}


# --- security of the Pods --------------------------------------------------------------------


def test_the_worker_runs_unprivileged_without_the_administrator_password(acme, config):
    dc_pod = statefulset(build_desired_state(acme, config), "acme-dc0")["spec"]["template"]["spec"]
    worker = containers({"spec": {"template": {"spec": dc_pod}}})["worker"]
    assert worker["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 10001,
        "runAsGroup": 10001,
    }
    mounted = {mount["name"] for mount in worker["volumeMounts"]}
    assert "admin" not in mounted and "ADMIN" not in str(env_of(worker))
    assert env_of(worker)["ES4PS_WORKER_ACCOUNT"] == "es4ps-worker"
    # Its record of applied tasks: a subdirectory of the DC's volume, nothing else of it.
    [state] = [mount for mount in worker["volumeMounts"] if mount["name"] == "data"]
    assert (state["subPath"], state["readOnly"]) == ("es4ps-worker", False)
    volumes = {volume["name"]: volume for volume in dc_pod["volumes"]}
    assert volumes["worker-credentials"]["secret"]["secretName"] == "acme-worker-credentials"
