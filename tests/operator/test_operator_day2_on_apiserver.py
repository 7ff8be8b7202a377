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
