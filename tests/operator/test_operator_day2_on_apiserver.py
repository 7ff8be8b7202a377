"""Directory day 2 with the operator running for real on the KWOK cluster: what it refuses and what it writes."""

from __future__ import annotations

import pytest
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import apply_domain, children, condition, get_domain, wait_ready

pytestmark = pytest.mark.cluster


def test_a_recovery_from_a_backup_that_does_not_exist_creates_nothing_and_says_so(
    es4ps_crd, domain_namespace, start_operator
):
    start_operator()
    domain = example_domain(domain_namespace)
    domain["spec"]["directory"]["bootstrap"] = {"recovery": {"backup": "acme-never-taken"}}
    apply_domain(es4ps_crd, domain)

    def refused():
        found = condition(get_domain(es4ps_crd, domain_namespace), "DirectoryReady")
        return found if found.get("reason") == "RecoveryBackupNotFound" else None

    directory = es4ps_crd.eventually(refused, timeout=60, message="DirectoryReady=False, RecoveryBackupNotFound")
    assert directory["status"] == "False" and "acme-never-taken" in directory["message"]
    assert condition(get_domain(es4ps_crd, domain_namespace))["status"] == "False"
    made = children(es4ps_crd, domain_namespace)
    assert not [key for key in made if key[0] in ("StatefulSet", "Job", "PersistentVolumeClaim")], made.keys()
    assert not es4ps_crd.get("pvc", namespace=domain_namespace)["items"]


def test_a_clustered_broker_and_monitoring_without_the_prometheus_operator(es4ps_crd, domain_namespace, start_operator):
    """Three brokers: their budget keeps a majority; monitoring asked for where nobody serves it is said, not fatal."""
    start_operator()
    domain = example_domain(domain_namespace)
    domain["spec"]["directory"].update(networkMode="Service", serviceType="ClusterIP")
    domain["spec"]["broker"]["replicas"] = 3
    domain["spec"]["monitoring"] = {"enabled": True}
    apply_domain(es4ps_crd, domain)
    ready = wait_ready(es4ps_crd, domain_namespace)
    monitoring = condition(ready, "MonitoringReady")
    assert (monitoring["status"], monitoring["reason"]) == ("False", "PrometheusOperatorMissing")
    made = children(es4ps_crd, domain_namespace)
    assert made[("StatefulSet", "acme-broker")]["status"]["readyReplicas"] == 3
    assert made[("PodDisruptionBudget", "acme-broker")]["spec"]["minAvailable"] == 2
    assert ("Service", "acme-broker-nodes") in made
    assert ("Secret", "acme-broker-erlang-cookie") in made


def test_a_domain_joining_an_existing_one_checks_first_then_joins_through_the_server_named(
    es4ps_crd, domain_namespace, start_operator
):
    """On KWOK the check's Pod ends with exit 0 (the join may go ahead); the operator goes on from there."""
    start_operator()
    server = "es4alldc.dom.legacy.test"
    domain = example_domain(domain_namespace)
    realm = domain["spec"]["realm"]
    join = {"realm": realm, "server": server, "credentialsSecretRef": {"name": "old-admin"}}
    domain["spec"]["directory"]["bootstrap"] = {"join": join}
    apply_domain(es4ps_crd, domain)

    def joined():
        found = condition(get_domain(es4ps_crd, domain_namespace), "Joined")
        return found if found.get("status") == "True" else None

    done = es4ps_crd.eventually(joined, timeout=120, message="Joined=True")
    assert done["reason"] == "Joined" and server in done["message"]
    assert get_domain(es4ps_crd, domain_namespace)["status"]["directory"]["joined"] == server
    made = es4ps_crd.eventually(
        lambda: (found := children(es4ps_crd, domain_namespace)) and ("Job", "acme-join-check") not in found and found,
        timeout=60,
        message="the check's Job deleted once dc0 serves",
    )
    dc0 = made[("StatefulSet", "acme-dc0")]["spec"]["template"]["spec"]
    [dc] = [container for container in dc0["containers"] if container["name"] == "dc"]
    variables = {item["name"]: item.get("value") for item in dc["env"]}
    assert (variables["ES4PS_DC_ROLE"], variables["ES4PS_JOIN_SERVER"]) == ("join", server)
    assert variables["ES4PS_DC_HOSTNAME"].startswith("dc0-")
    [admin] = [volume for volume in dc0["volumes"] if volume["name"] == "admin"]
    assert admin["secret"]["secretName"] == "old-admin"
    # The existing domain's Administrator password is the domain's: none is generated.
    assert ("Secret", "acme-samba-admin") not in made
