"""External mode's pure parts: the URL rule, reading the worker's refusal, and what the builders make."""

from __future__ import annotations

import json

import pytest
from es4ps_operator.builders import build_desired_state
from es4ps_operator.domain import Domain
from es4ps_operator.external import url_problem, worker_refusal
from es4ps_operator.status import compute_status
from es4ps_testkit.domains import MINIMAL_SPEC, domain_body

EXTERNAL = {
    "url": "ldaps://dc1.corp.example",
    "caSecretRef": {"name": "corp-ca"},
    "credentialsSecretRef": {"name": "corp-es4ps"},
    "ou": "OU=Registered,OU=People",
}


def external_domain(**external) -> Domain:
    return Domain.from_body(domain_body(MINIMAL_SPEC | {"directory": {"external": EXTERNAL | external}}))


@pytest.mark.parametrize(
    "url", ["ldaps://dc1.corp.example", "ldaps://dc1.corp.example:636", "ldaps://dc1.corp.example:3269/"]
)
def test_ldaps_to_a_dns_name_is_accepted(url):
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ldap://dc1.corp.example", "does not use TLS"),
        ("dc1.corp.example", "does not use TLS"),
        ("ldaps://192.0.2.10:636", "names an address"),
        ("ldaps://[2001:db8::1]", "names an address"),
        ("ldaps://dc1.corp.example/DC=corp", "nothing after it"),
        ("ldaps://dc1.corp.example:99999", "is not a URL"),
        ("ldaps://", "nothing after it"),
    ],
)
def test_anything_else_is_refused_with_the_reason(url, said):
    assert said in url_problem(url)


def test_the_newest_refusal_line_is_read_back_with_its_reason():
    logs = [
        "es4ps-worker: waiting for the directory\nes4ps-worker: refused (TooManyRights: holds Domain Admins)\n",
        "es4ps-worker: refused (CredentialsRefused: old)\n",
    ]
    assert worker_refusal(logs) == ("TooManyRights", "holds Domain Admins")
    assert worker_refusal(["Traceback ...\nKeyError: 'x'\n", ""]) is None


def test_external_mode_builds_one_worker_and_no_domain_controller(config):
    domain = external_domain()
    desired = build_desired_state(domain, config)

    kinds = {(m["kind"], m["metadata"]["name"]) for m in desired.manifests()}
    assert ("Deployment", "acme-worker") in kinds
    assert not [key for key in kinds if key[0] == "StatefulSet" and "-dc" in key[1]]
    assert ("Service", "acme-directory") not in kinds
    assert ("Certificate", "acme-dc0-ldaps-tls") not in kinds
    # An identity of its own, named for what it is: no DC's name anywhere.
    assert ("Certificate", "acme-worker-tls") in kinds  # its broker client certificate
    secrets = {secret.name for secret in desired.generated_secrets}
    assert secrets == {"acme-portal-secret-key", "acme-task-keys", "acme-worker-result-key"}
    assert "dc0" not in json.dumps(desired.manifests())

    worker = next(m for m in desired.manifests() if m["kind"] == "Deployment")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    variables = {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
    assert variables["ES4PS_LDAP_URL"] == "ldaps://dc1.corp.example"
    assert variables["ES4PS_LDAP_CA_FILE"] == "/etc/es4ps/directory-ca/ca.crt"
    assert variables["ES4PS_USERS_OU"] == "OU=Registered,OU=People"
    assert variables["ES4PS_WORKER_ACCOUNT"] == {"secretKeyRef": {"name": "corp-es4ps", "key": "username"}}
    assert variables["ES4PS_WORKER_NAME"] == "acme-worker"
    assert variables["ES4PS_WORKER_CREATES_CONTAINERS"] == "1"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["broker-tls"]["secret"]["secretName"] == "acme-worker-tls"
    assert volumes["result-key"]["secret"]["secretName"] == "acme-worker-result-key"
    assert volumes["worker-credentials"]["secret"]["secretName"] == "corp-es4ps"
    assert volumes["directory-ca"]["secret"]["secretName"] == "corp-ca"
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == "acme-worker"
    assert "admin" not in volumes and "ldaps-tls" not in volumes
    assert worker["spec"]["strategy"] == {"type": "Recreate"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "worker-metrics"}

    portal = next(
        m for m in desired.manifests() if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "acme-portal"
    )
    portal_env = {
        item["name"]: item.get("value") for item in portal["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert portal_env["ES4PS_LDAP_URL"] == "ldaps://dc1.corp.example"
    assert portal_env["ES4PS_LDAP_CA_FILE"] == "/etc/es4ps/directory-ca/ca.crt"
    assert "ES4PS_LDAP_DC_URLS" not in portal_env  # the organisation's directory: its own way to its DCs
    # The portal verifies the worker's result events with the public half, under the name the events carry.
    result_keys = next(v for v in portal["spec"]["template"]["spec"]["volumes"] if v["name"] == "result-keys")
    assert result_keys["projected"]["sources"] == [
        {"secret": {"name": "acme-worker-result-key", "items": [{"key": "public.key", "path": "acme-worker.key"}]}}
    ]


def test_an_unusable_url_builds_no_worker(config):
    desired = build_desired_state(external_domain(url="ldap://dc1.corp.example"), config)
    assert not [m for m in desired.manifests() if m["kind"] == "Deployment"]


def test_an_external_domain_counts_no_domain_controller(config):
    domain = external_domain()
    status = compute_status(domain, build_desired_state(domain, config), [], None, 3, None, "2026-12-07T00:00:00Z")
    assert status["domainControllers"] == "0/0"
