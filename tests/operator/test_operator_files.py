"""spec.fileServices on the real API server with the operator running: the file server's StatefulSet, Service
and computer-account Secret appear, the domain gets Ready, and changing the shares or stopping the server never
takes its volume or its computer's password away."""

from __future__ import annotations

import json

import pytest
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import apply_domain, secret_data, wait_ready

pytestmark = pytest.mark.cluster

FILES = {
    "storage": {"size": "5Gi"},
    "homes": {"quota": "1Gi"},
    "shares": [{"name": "students", "groups": ["students"]}, {"name": "wifi", "groups": ["wifi"]}],
}


def files_env(cluster, namespace: str) -> dict[str, str]:
    statefulset = cluster.get("statefulset", "acme-files", namespace)
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable.get("value", "") for variable in container["env"]}


def test_the_operator_runs_the_file_server_and_never_takes_its_volume(es4ps_crd, domain_namespace, start_operator):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    domain = example_domain(namespace, fileServices=FILES)
    domain["spec"]["directory"] |= {"networkMode": "Service", "serviceType": "ClusterIP"}
    apply_domain(cluster, domain)
    wait_ready(cluster, namespace)

    assert cluster.get("service", "acme-files", namespace)["spec"]["ports"][0]["port"] == 445
    # Everyone reaches SMB; nothing else of the Pod (its metrics port) without spec.monitoring.
    policy = cluster.get("networkpolicy", "acme-files", namespace)
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 445}]}]
    env = files_env(cluster, namespace)
    assert [share["name"] for share in json.loads(env["ES4PS_FILES_SHARES"])] == ["students", "wifi"]
    assert env["ES4PS_FILES_HOMES_QUOTA_BYTES"] == str(1024**3)
    password = secret_data(cluster, namespace, "acme-files-machine")["password"]
    cluster.eventually(lambda: cluster.get("pvc", "data-acme-files-0", namespace, check=False), timeout=120)

    # A share taken out and the server stopped: the spec follows, the volume and the computer's password stay.
    cluster.merge_patch(
        "es4psdomain", "acme", {"spec": {"fileServices": {"replicas": 0, "shares": FILES["shares"][:1]}}}, namespace
    )
    wait_ready(cluster, namespace)
    assert cluster.get("statefulset", "acme-files", namespace)["spec"]["replicas"] == 0
    assert [share["name"] for share in json.loads(files_env(cluster, namespace)["ES4PS_FILES_SHARES"])] == ["students"]
    assert cluster.get("pvc", "data-acme-files-0", namespace, check=False)
    assert secret_data(cluster, namespace, "acme-files-machine")["password"] == password
