"""A user applies examples/acme.yaml: every child appears, certificates are issued, the domain becomes Ready."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import (
    apply_domain,
    certificate_of,
    children,
    condition,
    desired_children,
    event_reasons,
    get_domain,
    secret_data,
    wait_ready,
)
from es4ps_testkit.operator_harness import fresh_namespace, operator_replicas

pytestmark = pytest.mark.cluster

EXPECTED_CHILDREN = {
    ("Issuer", "acme-selfsigned"),
    ("Issuer", "acme-ca"),
    ("Certificate", "acme-ca-tls"),
    ("Certificate", "acme-broker-tls"),
    ("Certificate", "acme-portal-broker-tls"),
    ("Certificate", "acme-dc0-worker-tls"),
    ("Certificate", "acme-dc0-ldaps-tls"),
    ("Certificate", "acme-monitoring-tls"),
    ("Certificate", "acme-portal-https-tls"),
    ("ConfigMap", "acme-broker"),
    ("Service", "acme-broker"),
    ("StatefulSet", "acme-broker"),
    ("Service", "acme-directory"),
    ("Service", "acme-dc0"),
    ("StatefulSet", "acme-dc0"),
    ("StatefulSet", "acme-portal"),
    ("Service", "acme-portal"),
    ("Ingress", "acme-portal"),
    ("NetworkPolicy", "acme-broker"),
    ("NetworkPolicy", "acme-portal"),
    ("PodDisruptionBudget", "acme-broker"),
    ("PodDisruptionBudget", "acme-directory"),
    ("PodDisruptionBudget", "acme-portal"),
    ("Secret", "acme-samba-admin"),
    ("Secret", "acme-portal-secret-key"),
    ("Secret", "acme-task-keys"),
    ("Secret", "acme-worker-credentials"),
    ("Secret", "acme-dc0-result-key"),
}
GENERATED_SECRETS = {
    ("Secret", "acme-samba-admin"),
    ("Secret", "acme-portal-secret-key"),
    ("Secret", "acme-task-keys"),
    ("Secret", "acme-worker-credentials"),
    ("Secret", "acme-dc0-result-key"),
}


@pytest.fixture(scope="module")
def ready_acme(es4ps_crd, operator_account, tmp_path_factory):
    """examples/acme.yaml applied as the user would, with the Secrets it names, and Ready (read-only tests)."""
    cluster = es4ps_crd
    with (
        fresh_namespace(cluster) as namespace,
        operator_replicas(operator_account, namespace, tmp_path_factory.mktemp("acme")) as start,
    ):
        operator = start()
        for name, password in (("acme-smtp", "smtp-pw"), ("acme-staff", "staff-pw")):
            cluster.kubectl("-n", namespace, "create", "secret", "generic", name, f"--from-literal=password={password}")
        apply_domain(cluster, example_domain(namespace))
        yield cluster, namespace, wait_ready(cluster, namespace), operator


def test_every_child_exists_with_its_owner_and_labels(ready_acme):
    cluster, namespace, domain, _ = ready_acme
    found = children(cluster, namespace)
    assert set(found) == EXPECTED_CHILDREN
    uid = domain["metadata"]["uid"]
    for key, child in found.items():
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "acme", key
        assert labels["app.kubernetes.io/part-of"] == "es4ps", key
        assert labels["app.kubernetes.io/name"].startswith("es4ps-"), key
        assert labels["app.kubernetes.io/component"] in labels["app.kubernetes.io/name"], key
        owners = [ref["uid"] for ref in child["metadata"].get("ownerReferences", [])]
        # deletionPolicy Retain: the generated Secrets stay with the volumes, unowned.
        assert owners == ([] if key in GENERATED_SECRETS else [uid]), key


def test_cert_manager_issued_every_certificate_with_the_right_names(ready_acme):
    cluster, namespace, _, _ = ready_acme
    for key, child in children(cluster, namespace).items():
        if key[0] in ("Certificate", "Issuer"):
            assert condition(child)["status"] == "True", key
    broker = certificate_of(cluster, namespace, "acme-broker-tls")
    names = broker.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert f"acme-broker.{namespace}.svc.cluster.local" in names.get_values_for_type(x509.DNSName)
    worker = certificate_of(cluster, namespace, "acme-dc0-worker-tls")
    assert worker.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "worker"
    ca = certificate_of(cluster, namespace, "acme-ca-tls")
    assert worker.issuer == ca.subject == broker.issuer


def test_the_pods_run_and_the_status_says_ready(ready_acme):
    cluster, namespace, domain, _ = ready_acme
    pods = cluster.get("pods", namespace=namespace)["items"]
    assert sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running") == [
        "acme-broker-0",
        "acme-dc0-0",
        "acme-portal-0",
    ]
    dc = next(p for p in pods if p["metadata"]["name"] == "acme-dc0-0")
    assert dc["spec"]["hostNetwork"] is True and dc["status"]["podIP"] == dc["status"]["hostIP"]
    status = domain["status"]
    assert status["phase"] == "Ready"
    assert status["portalURL"] == "https://accounts.acme.example/"
    assert status["domainControllers"] == "1/1"
    assert status["observedGeneration"] == domain["metadata"]["generation"]
    for kind in ("CertificatesReady", "BrokerReady", "DirectoryReady", "PortalReady"):
        assert condition(domain, kind)["status"] == "True", kind


def test_kubectl_shows_the_columns_events_and_field_docs(ready_acme):
    cluster, namespace, _, _ = ready_acme
    table = cluster.kubectl("get", "es4psdomains", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "REALM", "PORTAL", "DCS", "READY", "LAST", "BACKUP", "AGE"]
    assert table[1].split()[:5] == ["acme", "AD.ACME.EXAMPLE", "https://accounts.acme.example/", "1/1", "True"]
    assert {"SecretsGenerated", "Created", "Ready"} <= event_reasons(cluster, namespace)
    described = cluster.kubectl("describe", "es4psdomain", "acme", "-n", namespace).stdout
    assert "SecretsGenerated" in described and "Ready" in described
    explained = cluster.kubectl("explain", "es4psdomain.spec.directory.networkMode").stdout
    assert "HostNetwork (default) runs each DC in its node's network" in explained


def test_generated_secrets_are_strong_and_never_published(ready_acme):
    cluster, namespace, domain, operator = ready_acme
    admin = secret_data(cluster, namespace, "acme-samba-admin")["password"]
    keys = secret_data(cluster, namespace, "acme-task-keys")
    assert len(admin) == 32
    assert set(keys) == {"sealing-public.key", "sealing-private.key", "signing-public.key", "signing-private.key"}
    published = json.dumps(domain) + json.dumps(cluster.get("events", namespace=namespace)) + operator.log()
    for value in [admin, *keys.values(), secret_data(cluster, namespace, "acme-portal-secret-key")["secret-key"]]:
        assert value not in published


def test_metrics_and_liveness(ready_acme):
    _, _, _, operator = ready_acme
    assert operator.get("/healthz")[0] == 200
    assert operator.metric("es4ps_operator_reconciles_total", 'result="success"') >= 1
    created = operator.metric("es4ps_operator_children_written_total", 'action="created"')
    assert created == len(desired_children(get_domain(ready_acme[0], ready_acme[1])))
    # The Administrator's and the worker's passwords, the portal's secret key, the task keys, dc0's result key.
    assert operator.metric("es4ps_operator_secrets_generated_total") == 5
    assert operator.metric("es4ps_operator_domains") == 1
    assert get_domain(ready_acme[0], ready_acme[1])["metadata"]["finalizers"] == ["es4ps.io/operator"]
