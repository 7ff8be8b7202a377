"""A domain's life with the operator running for real: changes, drift, pausing, crashes, replicas, deletion."""

from __future__ import annotations

import time

import pytest
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import (
    apply_domain,
    children,
    condition,
    desired_children,
    event_reasons,
    get_domain,
    secret_data,
    wait_ready,
)

pytestmark = pytest.mark.cluster

GENERATED_SECRETS = (
    "acme-samba-admin",
    "acme-portal-secret-key",
    "acme-task-keys",
    "acme-worker-credentials",
    "acme-dc0-result-key",
)


def service_mode_domain(namespace: str, **spec_changes) -> dict:
    """The example in Service network mode: no host ports, so domains of other tests never collide on the node."""
    domain = example_domain(namespace, **spec_changes)
    domain["spec"]["directory"]["networkMode"] = "Service"
    domain["spec"]["directory"]["serviceType"] = "ClusterIP"
    return domain


@pytest.fixture
def running_domain(es4ps_crd, domain_namespace, start_operator):
    """A Ready domain in Service mode and the operator replica serving it."""
    operator = start_operator()
    apply_domain(es4ps_crd, service_mode_domain(domain_namespace))
    return es4ps_crd, domain_namespace, wait_ready(es4ps_crd, domain_namespace), operator


def uid_of(cluster, kind: str, name: str, namespace: str) -> str | None:
    found = cluster.get(kind, name, namespace, check=False)
    return found["metadata"]["uid"] if found else None


def test_a_changed_spec_reaches_the_children(running_domain):
    cluster, namespace, domain, _ = running_domain
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "acme-db", "--from-literal=url=postgresql://db/x")
    changes = {
        "portal": {"replicas": 2, "databaseURLSecretRef": {"name": "acme-db"}},
        "allowedEmailDomains": ["acme.example", "acme.org", "acme.net"],
    }
    cluster.merge_patch("es4psdomain", "acme", {"spec": changes}, namespace)
    updated = wait_ready(cluster, namespace)
    assert updated["metadata"]["generation"] == domain["metadata"]["generation"] + 1
    portal = cluster.get("statefulset", "acme-portal", namespace)
    assert portal["spec"]["replicas"] == 2
    assert portal["status"]["readyReplicas"] == 2
    env = {e["name"]: e for e in portal["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ES4PS_ALLOWED_EMAIL_DOMAINS"]["value"] == "acme.example,acme.org,acme.net"
    assert env["ES4PS_DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "acme-db", "key": "url"}}
    assert "Updated" in event_reasons(cluster, namespace)


def test_deleted_and_edited_children_are_restored(running_domain):
    cluster, namespace, _, _ = running_domain
    config_uid = uid_of(cluster, "configmap", "acme-broker", namespace)
    admin_password = secret_data(cluster, namespace, "acme-samba-admin")["password"]
    cluster.kubectl("-n", namespace, "delete", "configmap", "acme-broker")
    cluster.kubectl("-n", namespace, "delete", "networkpolicy", "acme-portal")
    cluster.kubectl("-n", namespace, "delete", "secret", "acme-portal-secret-key")
    cluster.kubectl("-n", namespace, "scale", "statefulset", "acme-portal", "--replicas=3")
    wrong_port = {"name": "ldap", "port": 389, "targetPort": 3890, "protocol": "TCP"}
    cluster.merge_patch("service", "acme-directory", {"spec": {"ports": [wrong_port]}}, namespace)

    def restored():
        config = cluster.get("configmap", "acme-broker", namespace, check=False)
        portal = cluster.get("statefulset", "acme-portal", namespace)
        ports = cluster.get("service", "acme-directory", namespace)["spec"]["ports"]
        return (
            config
            and config["metadata"]["uid"] != config_uid
            and "rabbitmq.conf" in config["data"]
            and cluster.get("networkpolicy", "acme-portal", namespace, check=False)
            and cluster.get("secret", "acme-portal-secret-key", namespace, check=False)
            and portal["spec"]["replicas"] == 1
            and {p["port"]: p["targetPort"] for p in ports} == {389: 389, 636: 636}
        )

    cluster.eventually(restored, timeout=60, message="deleted and edited children restored")
    assert secret_data(cluster, namespace, "acme-samba-admin")["password"] == admin_password
    assert {"Created", "Restored", "SecretsGenerated"} <= event_reasons(cluster, namespace)
    wait_ready(cluster, namespace)


def test_a_paused_domain_is_left_alone_until_resumed(running_domain):
    cluster, namespace, _, operator = running_domain
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"paused": True}}, namespace)
    cluster.eventually(
        lambda: get_domain(cluster, namespace)["status"]["phase"] == "Paused", timeout=30, message="phase Paused"
    )
    reconciles = operator.metric("es4ps_operator_reconciles_total", 'result="success"')
    cluster.kubectl("-n", namespace, "delete", "service", "acme-portal")
    # The deletion wakes the domain's loop: once it has run again, the Service must still be gone.
    cluster.eventually(
        lambda: operator.metric("es4ps_operator_reconciles_total", 'result="success"') > reconciles,
        timeout=30,
        message="a reconciliation after the deletion",
    )
    time.sleep(1)
    assert not cluster.get("service", "acme-portal", namespace, check=False)
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"paused": False}}, namespace)
    cluster.eventually(
        lambda: cluster.get("service", "acme-portal", namespace, check=False),
        timeout=30,
        message="the Service restored after resuming",
    )
    assert wait_ready(cluster, namespace)["status"]["phase"] == "Ready"


def test_an_operator_killed_mid_reconciliation_converges_after_restart(es4ps_crd, domain_namespace, start_operator):
    cluster, namespace = es4ps_crd, domain_namespace
    first = start_operator()
    apply_domain(cluster, service_mode_domain(namespace))
    # Kill it as soon as the first children exist, before it has written them all.
    cluster.eventually(
        lambda: cluster.get("issuers", namespace=namespace)["items"],
        timeout=30,
        interval=0.05,
        message="the first child",
    )
    first.kill()
    written = children(cluster, namespace)
    assert ("StatefulSet", "acme-portal") not in written, "killed too late to test a half-done reconciliation"
    secrets_before = {
        name: secret_data(cluster, namespace, name) for name in GENERATED_SECRETS if ("Secret", name) in written
    }

    second = start_operator()  # waits until the killed replica's Lease expires
    wait_ready(cluster, namespace)
    # Every child the builders make of it, and the generated Secrets, none twice.
    expected = desired_children(get_domain(cluster, namespace)) | {("Secret", name) for name in GENERATED_SECRETS}
    assert set(children(cluster, namespace)) == expected
    for name, data in secrets_before.items():
        assert secret_data(cluster, namespace, name) == data, f"{name} was generated again"
    assert second.metric("es4ps_operator_reconciles_total", 'result="error"') in (None, 0.0)


def test_one_of_two_replicas_works_and_the_other_takes_over(es4ps_crd, domain_namespace, start_operator):
    cluster, namespace = es4ps_crd, domain_namespace
    first = start_operator()
    second = start_operator(wait_for_leadership=False)
    apply_domain(cluster, service_mode_domain(namespace))
    wait_ready(cluster, namespace)
    assert first.is_leader() and not second.is_leader()
    assert second.metric("es4ps_operator_domains") == 0.0

    assert first.stop() == 0  # a clean stop hands the Lease over at once
    second.wait_until(second.is_leader, 15, "leadership after the first replica stopped")
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"organizationName": "ACME Inc."}}, namespace)
    wait_ready(cluster, namespace)
    portal = cluster.get("statefulset", "acme-portal", namespace)
    env = {e["name"]: e.get("value") for e in portal["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ES4PS_ORGANIZATION_NAME"] == "ACME Inc."


def pvcs(cluster, namespace):
    return {claim["metadata"]["name"] for claim in cluster.get("pvc", namespace=namespace)["items"]}


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deleting_the_domain_keeps_its_data_unless_the_policy_is_delete(
    es4ps_crd, domain_namespace, start_operator, policy
):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    domain = service_mode_domain(namespace, deletionPolicy=policy)
    domain["spec"]["directory"]["backup"] = {"destination": {"volume": {"size": "1Gi"}}}
    apply_domain(cluster, domain)
    wait_ready(cluster, namespace)
    claims = pvcs(cluster, namespace)
    assert claims == {"data-acme-broker-0", "data-acme-dc0-0", "data-acme-portal-0", "acme-backups"}
    admin_password = secret_data(cluster, namespace, "acme-samba-admin")["password"]

    cluster.kubectl("-n", namespace, "delete", "es4psdomain", "acme", "--timeout=60s")
    cluster.eventually(
        lambda: not cluster.get("statefulsets", namespace=namespace)["items"],
        timeout=60,
        message="the StatefulSets garbage-collected",
    )
    secrets = {s["metadata"]["name"] for s in cluster.get("secrets", namespace=namespace)["items"]}
    if policy == "Retain":
        assert pvcs(cluster, namespace) == claims
        assert set(GENERATED_SECRETS) <= secrets
        # The domain created again takes up its data and the password that unlocks it.
        apply_domain(cluster, service_mode_domain(namespace, deletionPolicy=policy))
        wait_ready(cluster, namespace)
        assert secret_data(cluster, namespace, "acme-samba-admin")["password"] == admin_password
    else:
        # The backups and their keys outlive the domain: a domain restored from them needs all three.
        cluster.eventually(
            lambda: pvcs(cluster, namespace) == {"acme-backups"},
            timeout=60,
            message="all but the backups' claim deleted",
        )
        cluster.eventually(
            lambda: (
                {
                    s["metadata"]["name"]
                    for s in cluster.get("secrets", namespace=namespace)["items"]
                    if s["metadata"]["name"].startswith("acme-")
                }
                == {"acme-backup-key", "acme-backup-signing-key"}
            ),
            timeout=60,
            message="every Secret of the domain deleted but the backups' keys",
        )


def test_status_names_a_missing_issuer(es4ps_crd, domain_namespace, start_operator):
    cluster, namespace = es4ps_crd, domain_namespace
    start_operator()
    domain = service_mode_domain(namespace)
    domain["spec"]["portal"]["tls"] = {"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}
    apply_domain(cluster, domain)

    def waiting_for_the_https_certificate():
        found = condition(get_domain(cluster, namespace), "CertificatesReady")
        return found if "acme-portal-https-tls" in found.get("message", "") else None

    found = cluster.eventually(waiting_for_the_https_certificate, timeout=60, message="CertificatesReady names it")
    assert found["status"] == "False" and found["reason"] == "Issuing"
    assert get_domain(cluster, namespace)["status"]["phase"] == "Progressing"


def test_a_replica_that_loses_its_lease_stops_working(es4ps_crd, operator_account, start_operator):
    operator = start_operator()
    es4ps_crd.merge_patch(
        "lease", "es4ps-operator", {"spec": {"holderIdentity": "another-replica"}}, operator_account.namespace
    )
    operator.wait_until(
        lambda: operator.process.poll() is not None or not operator.is_leader(), 15, "giving up the Lease"
    )
    assert operator.process.wait(15) == 1, operator.log()
    assert "lost the Lease" in operator.log()
    es4ps_crd.kubectl("-n", operator_account.namespace, "delete", "lease", "es4ps-operator")


def test_without_a_mail_server_the_domain_is_not_ready_and_says_why(running_domain):
    """The portal would send no mail, so nobody could confirm an address: the status says so, the portal gets no
    console fallback (mails in its log), and naming a server again makes the domain Ready."""
    cluster, namespace, domain, _ = running_domain
    smtp = domain["spec"]["portal"]["smtp"]
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"portal": {"smtp": None}}}, namespace)

    def told() -> dict | None:
        current = get_domain(cluster, namespace)
        observed = current["status"].get("observedGeneration") == current["metadata"]["generation"]
        return current if observed and condition(current, "PortalReady").get("reason") == "MailServerMissing" else None

    current = cluster.eventually(told, timeout=60, interval=1, message="PortalReady naming the missing mail server")
    assert condition(current, "PortalReady")["status"] == "False"
    assert condition(current, "PortalReady")["message"].startswith("spec.portal.smtp is not set")
    assert condition(current)["status"] == "False" and current["status"]["phase"] == "Progressing"
    portal = cluster.get("statefulset", "acme-portal", namespace)["spec"]["template"]["spec"]["containers"][0]
    assert not {"ES4PS_EMAIL_BACKEND", "ES4PS_SMTP_HOST"} & {variable["name"] for variable in portal["env"]}
    cluster.merge_patch("es4psdomain", "acme", {"spec": {"portal": {"smtp": smtp}}}, namespace)
    assert condition(wait_ready(cluster, namespace), "PortalReady")["status"] == "True"
