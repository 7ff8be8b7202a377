"""The override block every component takes (spec.portal, .broker, .directory, .directory.backup, .maintenance):
each field reaches the component's Pods, the operator's own terms stay, and without it nothing changes."""

from __future__ import annotations

import copy

import pytest
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.broker import memory_limit_bytes, rabbitmq_conf
from es4ps_operator.builders.jobs import backup_job, dbcheck_job, dc_leave_job
from es4ps_operator.limits import refused_resources
from es4ps_testkit.domains import MINIMAL_SPEC, make_domain
from es4ps_testkit.manifests import by_kind_name

BACKUP = {"destination": {"volume": {"size": "2Gi"}}}
OWNER = {"apiVersion": "es4ps.io/v1alpha1", "kind": "ES4PSBackup", "name": "b1", "uid": "u", "controller": True}


def overrides(tag: str) -> dict:
    """An override block whose every field names `tag`, so each component's can be told apart."""
    return {
        "resources": {"limits": {"memory": "3Gi"}, "requests": {"cpu": "250m"}},
        "nodeSelector": {"pool": tag},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": tag, "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": [tag]}]}]
                }
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": tag}}, "topologyKey": "kubernetes.io/hostname"}
                ]
            },
        },
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}],
        "priorityClassName": f"{tag}-priority",
        "imagePullSecrets": [{"name": f"{tag}-pull"}],
        "podAnnotations": {"example.com/owner": tag},
        "podLabels": {"team": tag, "app.kubernetes.io/name": "not-ours"},
        "serviceAccount": {"annotations": {"iam.example.com/role": tag}},
    }


def overridden_domain(**extra):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["portal"] = {**spec["portal"], **overrides("portal")}
    return make_domain(
        portal=spec["portal"],
        broker=overrides("broker"),
        directory={"networkMode": "Service", **overrides("directory"), "backup": {**BACKUP, **overrides("backup")}},
        maintenance=overrides("maintenance"),
        **extra,
    )


def templates(domain, config):
    """component -> (Pod template, its main containers) for every kind of Pod a domain has."""
    built = by_kind_name(build_desired_state(domain, config))
    jobs = {
        "backup": backup_job(domain, config, "b1", OWNER, []),
        "maintenance": dbcheck_job(domain, config, "es4ps/samba:next", "acme-dbcheck-1"),
    }
    found = {
        "portal": (built[("StatefulSet", "acme-portal")], ["portal"]),
        "broker": (built[("StatefulSet", "acme-broker")], ["rabbitmq"]),
        "directory": (built[("StatefulSet", "acme-dc0")], ["dc"]),
    }
    for name, job in jobs.items():
        spec = job["spec"]["template"]["spec"]
        found[name] = (job, [c["name"] for c in [*spec.get("initContainers", ()), *spec["containers"]]])
    return {name: (manifest["spec"]["template"], main) for name, (manifest, main) in found.items()}


@pytest.mark.parametrize("component", ["portal", "broker", "directory", "backup", "maintenance"])
def test_every_field_of_the_block_reaches_the_components_pods(config, component):
    template, main = templates(overridden_domain(), config)[component]
    spec, metadata = template["spec"], template["metadata"]
    assert spec["nodeSelector"] == {"pool": component}
    assert spec["tolerations"][0]["value"] == component
    assert spec["priorityClassName"] == f"{component}-priority"
    assert spec["imagePullSecrets"] == [{"name": f"{component}-pull"}]
    assert spec["serviceAccountName"] == f"acme-{component}"
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "rack"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [component]
    assert spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0][
        "labelSelector"
    ] == {"matchLabels": {"app": component}}
    assert metadata["annotations"]["example.com/owner"] == component
    assert metadata["labels"]["team"] == component
    assert metadata["labels"]["app.kubernetes.io/name"] != "not-ours"  # the operator's own label wins
    containers = {c["name"]: c for c in [*spec.get("initContainers", ()), *spec["containers"]]}
    for name in main:
        # Merged key by key over the operator's defaults: the memory limit is the domain's, the memory
        # request stays the operator's.
        resources = containers[name]["resources"]
        assert resources["limits"]["memory"] == "3Gi" and resources["requests"]["cpu"] == "250m"
        assert "memory" in resources["requests"]


def test_without_overrides_the_pods_are_as_before(config):
    plain = templates(make_domain(directory={"networkMode": "Service", "backup": BACKUP}), config)
    for component, (template, _) in plain.items():
        spec = template["spec"]
        for field in ("nodeSelector", "tolerations", "imagePullSecrets", "serviceAccountName", "priorityClassName"):
            assert field not in spec, (component, field)
        # The broker's config hash, the DC Pod's default container (kubectl logs and exec).
        assert "annotations" not in template["metadata"] or component in ("broker", "directory")
    assert {c["name"]: c["resources"] for c in plain["portal"][0]["spec"]["containers"]}["portal"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "768Mi"},
    }


def test_the_operators_own_affinity_terms_are_kept_beside_the_domains(config):
    domain = make_domain(
        directory={
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "other"}}, "topologyKey": "zone"}
                    ]
                }
            },
            "backup": BACKUP,
        }
    )
    dc = by_kind_name(build_desired_state(domain, config))[("StatefulSet", "acme-dc0")]
    terms = dc["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    # The domain's term, and the operator's: host-network DCs never share a node.
    assert [t["topologyKey"] for t in terms] == ["zone", "kubernetes.io/hostname"]


def test_a_service_account_is_written_only_for_a_component_that_annotates_one(config):
    accounts = [
        m for m in build_desired_state(overridden_domain(), config).manifests() if m["kind"] == "ServiceAccount"
    ]
    names = {m["metadata"]["name"]: m for m in accounts}
    assert set(names) == {"acme-portal", "acme-broker", "acme-directory", "acme-backup", "acme-maintenance"}
    backup = names["acme-backup"]
    assert backup["metadata"]["annotations"]["iam.example.com/role"] == "backup"
    assert backup["automountServiceAccountToken"] is False
    assert backup["metadata"]["ownerReferences"][0]["kind"] == "ES4PSDomain"
    plain = build_desired_state(make_domain(), config).manifests()
    assert not [m for m in plain if m["kind"] == "ServiceAccount"]


def test_the_brokers_memory_alarm_follows_its_memory_limit(config):
    assert memory_limit_bytes(make_domain()) == 512 << 20
    bigger = make_domain(broker={"resources": {"limits": {"memory": "2Gi"}}})
    assert memory_limit_bytes(bigger) == 2 << 30
    config_map = by_kind_name(build_desired_state(bigger, config))[("ConfigMap", "acme-broker")]
    assert f"total_memory_available_override_value = {2 << 30}" in config_map["data"]["rabbitmq.conf"]
    assert f"total_memory_available_override_value = {512 << 20}" in rabbitmq_conf()


def test_the_maintenance_jobs_of_a_leaving_dc_take_the_maintenance_block(config):
    domain = overridden_domain()
    job = dc_leave_job(domain, config, 1, "leave")
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "maintenance"}


LIMIT_RANGE = {
    "metadata": {"name": "small"},
    "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}, "min": {"cpu": "10m"}}]},
}


def test_a_limit_range_refusing_the_dcs_memory_names_the_field_to_change(config):
    domain = make_domain(directory={"resources": {"limits": {"memory": "2Gi"}}})
    manifests = build_desired_state(domain, config).manifests()
    refused = refused_resources(manifests, [LIMIT_RANGE])
    assert refused == (
        "StatefulSet acme-dc0: container dc asks for memory 2Gi, above the maximum 1Gi of the LimitRange small in "
        "this namespace; change spec.directory.resources or the LimitRange (nothing was applied)"
    )
    # The defaults fit a LimitRange of 1Gi per container.
    assert refused_resources(build_desired_state(make_domain(), config).manifests(), [LIMIT_RANGE]) is None


def test_a_pod_limit_counts_the_containers_together_and_init_steps_one_at_a_time(config):
    pod_range = {"metadata": {"name": "pods"}, "spec": {"limits": [{"type": "Pod", "max": {"memory": "1Gi"}}]}}
    # The DC, its worker and its resolver: 1Gi + 512Mi + 64Mi.
    refused = refused_resources(build_desired_state(make_domain(), config).manifests(), [pod_range])
    assert refused.startswith("StatefulSet acme-dc0: its Pod asks for memory 1600Mi in all, above the maximum 1Gi")
    backup = backup_job(make_domain(directory={"backup": BACKUP}), config, "b1", OWNER, [])
    roomy = {"metadata": {"name": "pods"}, "spec": {"limits": [{"type": "Pod", "max": {"memory": "2Gi"}}]}}
    assert refused_resources([backup], [roomy]) is None
