"""The builders' common ground: every child's metadata and names, purity, images, the examples, every Pod's root."""

import dataclasses
import re

import pytest
import yaml
from es4ps_localcluster.paths import ROOT
from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_operator.config import Images
from es4ps_operator.domain import Domain
from es4ps_testkit.domains import domain_body, make_domain
from es4ps_testkit.manifests import containers, statefulset

# --- every child ------------------------------------------------------------------


def test_every_child_has_namespace_labels_and_owner(acme, config):
    desired = build_desired_state(acme, config)
    # 8 cert-manager objects, 2 NetworkPolicies, 4 broker, 4 directory and 4 portal objects.
    assert len(desired.manifests()) == 23
    for manifest in desired.manifests():
        meta = manifest["metadata"]
        assert re.fullmatch(r"[0-9a-f]{16}", meta["annotations"][naming.DESIRED_HASH_ANNOTATION])
        assert meta["namespace"] == "acme"
        assert meta["name"].startswith("acme-")
        assert meta["labels"] == {
            "app.kubernetes.io/name": f"es4ps-{meta['labels']['app.kubernetes.io/component']}",
            "app.kubernetes.io/instance": "acme",
            "app.kubernetes.io/component": meta["labels"]["app.kubernetes.io/component"],
            "app.kubernetes.io/part-of": "es4ps",
            "app.kubernetes.io/managed-by": "es4ps-operator",
        }
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "es4ps.io/v1alpha1",
                "kind": "ES4PSDomain",
                "name": "acme",
                "uid": "0000-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_children_are_unique_and_their_names_fit_kubernetes_limits(config):
    # The longest name the CRD admits (40 characters) with the most DCs.
    domain = make_domain(directory={"replicas": 5, "networkMode": "Service"})
    domain = dataclasses.replace(domain, name="d" * 40)
    manifests = build_desired_state(domain, config).manifests()
    keys = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(keys) == len(set(keys))
    for kind, name in keys:
        # A StatefulSet's Pods carry a controller-revision-hash label built from its name: at most 52 characters.
        assert len(name) <= (52 if kind == "StatefulSet" else 63), name
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)


def test_builders_are_pure(acme, config):
    assert build_desired_state(acme, config).manifests() == build_desired_state(acme, config).manifests()


def test_generated_secrets_carry_no_values_until_they_are_created(acme, config):
    desired = build_desired_state(acme, config)
    assert not any(m["kind"] == "Secret" for m in desired.manifests())
    for secret in desired.generated_secrets:
        assert "stringData" not in secret.manifest and "data" not in secret.manifest
        assert secret.with_data({"k": "v"})["stringData"] == {"k": "v"}


def test_images_come_from_the_configuration_unless_the_spec_overrides_them(minimal, config):
    desired = build_desired_state(minimal, config)
    assert containers(statefulset(desired, "acme-portal"))["portal"]["image"] == "es4ps/portal:test"
    assert containers(statefulset(desired, "acme-broker"))["rabbitmq"]["image"] == "rabbitmq:test"
    overridden = make_domain(directory={"image": "mine/samba:1"})
    dc = containers(statefulset(build_desired_state(overridden, config), "acme-dc0"))
    assert dc["dc"]["image"] == dc["worker"]["image"] == "mine/samba:1"
    assert dc["dc"]["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.acme.example/es4ps/samba:1", True),
        ("registry.acme.example:5000/samba:1", False),
        ("registry.acme.example.evil/samba:1", False),
        ("evil.example/registry.acme.example/samba:1", False),
        ("samba:1", True),  # docker.io/library/samba
        ("quay.io/rabbitmq:3.13", False),
        ("mine/rabbitmq:3", False),  # docker.io/mine/rabbitmq: another path
    ],
)
def test_a_domain_may_name_only_images_of_the_registries_the_operator_allows(image, allowed):
    images = Images(
        samba="s",
        portal="p",
        broker="b",
        allowed_registries=("registry.acme.example", "docker.io/library"),
    )
    assert images.override_allowed(image) is allowed
    assert not Images(samba="s", portal="p", broker="b").override_allowed(image)  # default: no overrides


@pytest.mark.parametrize(
    ("sts_name", "container"), [("acme-portal", "portal"), ("acme-portal", "consumer"), ("acme-broker", "rabbitmq")]
)
def test_portal_and_broker_run_on_a_read_only_root_with_a_writable_tmp(acme, config, sts_name, container):
    sts = statefulset(build_desired_state(acme, config), sts_name)
    spec = containers(sts)[container]
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    tmp = next(m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp")
    volumes = {volume["name"]: volume for volume in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_builds(example, config):
    document = yaml.safe_load(example.read_text())
    body = domain_body(document["spec"], document["metadata"]["name"], document["metadata"].get("namespace", "x"))
    desired = build_desired_state(Domain.from_body(body), config)
    replicas = document["spec"].get("directory", {}).get("replicas", 1)
    names = {m["metadata"]["name"] for m in desired.manifests() if m["kind"] == "StatefulSet"}
    assert names == {
        f"{document['metadata']['name']}-{part}" for part in ["broker", "portal", *(f"dc{i}" for i in range(replicas))]
    }
