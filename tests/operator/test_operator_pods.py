"""A domain's Pods as a platform team sizes and places them, on the real API server with the operator running:
the override block reaches every kind of Pod (the maintenance Jobs' through a DC leaving), a LimitRange that
would refuse one is said in a condition, and Pod Security Admission admits a Service-mode domain under
`baseline`, all but the directory's Pods under `restricted`."""

from __future__ import annotations

import copy
import uuid

import pytest
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import apply_domain, condition, get_domain, wait_ready

pytestmark = pytest.mark.cluster

BACKUP = {"destination": {"volume": {"size": "1Gi"}}, "keep": 2}


def service_mode(namespace: str, **spec_changes) -> dict:
    domain = example_domain(namespace, **spec_changes)
    domain["spec"]["directory"] |= {"networkMode": "Service", "serviceType": "ClusterIP"}
    return domain


def block(tag: str, priority_class: str) -> dict:
    """The override block, every field naming `tag` so each component's can be told apart on its Pod."""
    return {
        "resources": {"limits": {"memory": "700Mi"}, "requests": {"cpu": "20m"}},
        "nodeSelector": {"es4ps.io/test-pool": tag},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": tag, "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": [tag]}]},
                    }
                ]
            }
        },
        "topologySpreadConstraints": [{"maxSkew": 3, "topologyKey": "rack", "whenUnsatisfiable": "ScheduleAnyway"}],
        "priorityClassName": priority_class,
        "imagePullSecrets": [{"name": f"{tag}-pull"}],
        "podAnnotations": {"example.com/owner": tag},
        "podLabels": {"team": tag},
        "serviceAccount": {"annotations": {"iam.example.com/role": f"arn:{tag}"}},
    }


def pods(cluster, namespace: str) -> dict[str, dict]:
    return {pod["metadata"]["name"]: pod for pod in cluster.get("pods", namespace=namespace)["items"]}


@pytest.fixture
def priority_class(es4ps_crd):
    name = f"es4ps-test-{uuid.uuid4().hex[:6]}"
    es4ps_crd.kubectl("create", "priorityclass", name, "--value=1000")
    yield name
    es4ps_crd.kubectl("delete", "priorityclass", name, check=False)


def test_each_override_reaches_the_pods_of_every_component(es4ps_crd, domain_namespace, start_operator, priority_class):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    domain = service_mode(namespace)
    spec = domain["spec"]
    spec["portal"] |= block("portal", priority_class)
    spec["broker"] = spec.get("broker", {}) | block("broker", priority_class)
    spec["directory"] |= block("directory", priority_class) | {"backup": BACKUP | block("backup", priority_class)}
    apply_domain(cluster, domain)
    cluster.eventually(lambda: cluster.get("secret", "acme-backup-key", namespace, check=False), timeout=120)
    cluster.apply(
        f"apiVersion: es4ps.io/v1alpha1\nkind: ES4PSBackup\nmetadata: {{name: b1, namespace: {namespace}}}\n"
        "spec: {domain: acme}\n"
    )
    wanted = {"portal": "acme-portal-0", "broker": "acme-broker-0", "directory": "acme-dc0-0", "backup": "b1-"}

    def every_pod():
        found = pods(cluster, namespace)
        matched = {
            tag: next((p for n, p in found.items() if n.startswith(prefix)), None) for tag, prefix in wanted.items()
        }
        return matched if all(matched.values()) else None

    for tag, pod in cluster.eventually(every_pod, timeout=180, message="a Pod of every component").items():
        spec, metadata = pod["spec"], pod["metadata"]
        assert spec["nodeSelector"] == {"es4ps.io/test-pool": tag}
        assert {"key": "dedicated", "operator": "Equal", "value": tag, "effect": "NoSchedule"} in spec["tolerations"]
        preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert preferred[0]["preference"]["matchExpressions"][0]["values"] == [tag]
        assert spec["topologySpreadConstraints"][0]["topologyKey"] == "rack"
        # The Priority admission plugin resolved the class: it exists and the Pod runs at its value.
        assert (spec["priorityClassName"], spec["priority"]) == (priority_class, 1000)
        assert spec["imagePullSecrets"] == [{"name": f"{tag}-pull"}]
        assert metadata["annotations"]["example.com/owner"] == tag and metadata["labels"]["team"] == tag
        account = cluster.get("serviceaccount", spec["serviceAccountName"], namespace)
        assert account["metadata"]["annotations"]["iam.example.com/role"] == f"arn:{tag}"
        containers = [*spec.get("initContainers", ()), *spec["containers"]]
        main = {"portal": ["portal"], "broker": ["rabbitmq"], "directory": ["dc"]}.get(
            tag, [c["name"] for c in containers]
        )
        for container in containers:
            if container["name"] in main:
                assert container["resources"]["limits"]["memory"] == "700Mi", (tag, container["name"])
                assert container["resources"]["requests"]["cpu"] == "20m", (tag, container["name"])


def test_a_domain_asking_for_more_memory_than_a_limit_range_allows_is_told_so(
    es4ps_crd, domain_namespace, start_operator
):
    cluster, namespace = es4ps_crd, domain_namespace
    cluster.apply(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: per-container}\n"
        "spec: {limits: [{type: Container, max: {memory: 1Gi}}]}\n",
        namespace=namespace,
    )
    start_operator()
    domain = service_mode(namespace)
    domain["spec"]["directory"]["resources"] = {"limits": {"memory": "2Gi"}}
    apply_domain(cluster, domain)

    def refused():
        ready = condition(get_domain(cluster, namespace) or {})
        return ready if ready.get("reason") == "ApplyFailed" else None

    ready = cluster.eventually(refused, timeout=120, message="Ready=False, ApplyFailed")
    assert ready["status"] == "False"
    assert "container dc asks for memory 2Gi, above the maximum 1Gi of the LimitRange per-container" in ready["message"]
    assert "change spec.directory.resources or the LimitRange" in ready["message"]
    # Nothing was written that the namespace would refuse: no DC StatefulSet sits at zero Pods.
    assert not cluster.get("statefulset", "acme-dc0", namespace, check=False)
    cluster.merge_patch(
        "es4psdomain", "acme", {"spec": {"directory": {"resources": {"limits": {"memory": "1Gi"}}}}}, namespace
    )
    wait_ready(cluster, namespace)


def label(cluster, namespace: str, level: str, dry_run: bool = False):
    args = ["label", "--overwrite", "namespace", namespace, f"pod-security.kubernetes.io/enforce={level}"]
    return cluster.kubectl(*args, *(["--dry-run=server"] if dry_run else []))


def test_a_service_mode_domain_runs_under_baseline_and_all_but_the_directorys_pods_under_restricted(
    es4ps_crd, domain_namespace, start_operator
):
    cluster, namespace = es4ps_crd, domain_namespace
    label(cluster, namespace, "baseline")
    start_operator()
    domain = service_mode(namespace)
    domain["spec"]["directory"]["backup"] = copy.deepcopy(BACKUP)
    apply_domain(cluster, domain)
    wait_ready(cluster, namespace)  # every Pod admitted: no StatefulSet could be Ready otherwise
    cluster.apply(
        f"apiVersion: es4ps.io/v1alpha1\nkind: ES4PSBackup\nmetadata: {{name: b1, namespace: {namespace}}}\n"
        "spec: {domain: acme}\n"
    )
    cluster.eventually(lambda: any(name.startswith("b1-") for name in pods(cluster, namespace)), timeout=120)
    # Which running Pods `restricted` would refuse: the API server's own check, named Pod by Pod.
    # ("Warning: acme-dc0-0: unrestricted capabilities, runAsNonRoot != true, runAsUser=0")
    warnings = label(cluster, namespace, "restricted", dry_run=True).stderr
    refused = {
        line.removeprefix("Warning: ").split(":")[0].split(" (and ")[0]: line
        for line in warnings.splitlines()
        if line.startswith("Warning: ") and "violate the new PodSecurity" not in line
    }
    assert "acme-dc0-0" in refused and any(name.startswith("b1-") for name in refused), warnings
    # Only the directory's Pods: the DC and the backup Job's Samba steps run as root with capabilities.
    assert all(name == "acme-dc0-0" or name.startswith("b1-") for name in refused), warnings
    assert "unrestricted capabilities" in refused["acme-dc0-0"] and "hostNetwork" not in warnings
    running = pods(cluster, namespace)
    assert any(name.startswith("acme-portal") for name in running) and any(n.startswith("acme-broker") for n in running)


def test_a_host_network_dc_needs_a_privileged_namespace(es4ps_crd, domain_namespace, start_operator):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    apply_domain(cluster, example_domain(namespace))  # HostNetwork, the default
    cluster.eventually(lambda: "acme-dc0-0" in pods(cluster, namespace), timeout=180, message="the DC's Pod")
    warnings = label(cluster, namespace, "baseline", dry_run=True).stderr
    refused = [line for line in warnings.splitlines() if line.startswith("Warning: acme-")]
    assert len(refused) == 1 and refused[0].startswith("Warning: acme-dc0-0:"), warnings
    assert "host namespaces" in refused[0]  # hostNetwork, and with it the DC's ports as host ports


def test_the_maintenance_block_reaches_the_pod_of_a_dc_leaving(
    es4ps_crd, domain_namespace, start_operator, priority_class
):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    domain = service_mode(namespace)
    domain["spec"]["directory"]["replicas"] = 2
    domain["spec"]["maintenance"] = block("maintenance", priority_class)
    apply_domain(cluster, domain)
    cluster.eventually(lambda: "acme-dc1-0" in pods(cluster, namespace), timeout=180, message="the second DC's Pod")
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"directory": {"replicas": 1}}}, namespace)

    def leaving_pod():
        return next((p for name, p in pods(cluster, namespace).items() if name.startswith("acme-dc1-leave-")), None)

    pod = cluster.eventually(leaving_pod, timeout=180, message="the Pod of dc1's leave Job")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"es4ps.io/test-pool": "maintenance"}
    assert (spec["priorityClassName"], spec["serviceAccountName"]) == (priority_class, "acme-maintenance")
    assert pod["metadata"]["labels"]["team"] == "maintenance"
    assert all(c["resources"]["limits"]["memory"] == "700Mi" for c in spec["containers"])
