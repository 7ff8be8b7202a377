"""External mode with the operator running for real on the KWOK cluster: no DC, one worker, bad input named.

The worker itself is proven against a real outside directory in
tests/directory/test_external_directory.py; here the API server and the
operator show what they make of `spec.directory.external` and how the worker's
refusal to run (its termination message, written here as the kubelet would
write it) becomes DirectoryReady.
"""

from __future__ import annotations

import json

import pytest
import yaml
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import apply_domain, children, condition, get_domain, wait_ready

pytestmark = pytest.mark.cluster

URL = "ldaps://dc1.corp.example:636"
OU = "OU=Registered,OU=People"


def external_domain(namespace: str, url: str = URL) -> dict:
    domain = example_domain(namespace)
    domain["spec"]["directory"]["external"] = {
        "url": url,
        "caSecretRef": {"name": "corp-ca"},
        "credentialsSecretRef": {"name": "corp-es4ps"},
        "ou": OU,
    }
    return domain


def add_secrets(cluster, namespace: str) -> None:
    for name, data in (("corp-ca", {"ca.crt": "-----BEGIN CERTIFICATE-----"}), ("corp-es4ps", {"username": "svc"})):
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}
        cluster.apply(yaml.safe_dump({**secret, "stringData": {**data, "password": "Svc-Passw0rd!"}}))


def directory_condition(cluster, namespace: str, reason: str) -> dict:
    def reached():
        found = condition(get_domain(cluster, namespace), "DirectoryReady")
        return found if found.get("reason") == reason else None

    return cluster.eventually(reached, timeout=90, message=f"DirectoryReady reason {reason}")


def test_an_external_domain_runs_one_worker_and_no_domain_controller(es4ps_crd, domain_namespace, start_operator):
    start_operator()
    add_secrets(es4ps_crd, domain_namespace)
    apply_domain(es4ps_crd, external_domain(domain_namespace))

    ready = wait_ready(es4ps_crd, domain_namespace)

    made = children(es4ps_crd, domain_namespace)
    assert not [key for key in made if key[0] == "StatefulSet" and "-dc" in key[1]], made.keys()
    assert ("Secret", "acme-admin-password") not in made
    # The worker's own identity, named for what it is (no DC's): its broker certificate and result key.
    assert ("Certificate", "acme-worker-tls") in made and ("Secret", "acme-worker-result-key") in made
    assert not [key for key in made if "dc0" in key[1]], made.keys()
    worker = made[("Deployment", "acme-worker")]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    variables = {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
    assert variables["ES4PS_LDAP_URL"] == URL
    assert variables["ES4PS_USERS_OU"] == OU
    assert variables["ES4PS_WORKER_ACCOUNT"] == {"secretKeyRef": {"name": "corp-es4ps", "key": "username"}}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert es4ps_crd.get("pvc", "acme-worker", domain_namespace)["spec"]["resources"]["requests"]["storage"]
    portal = made[("StatefulSet", "acme-portal")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "ES4PS_LDAP_URL", "value": URL} in portal["env"]
    directory = condition(ready, "DirectoryReady")
    assert (directory["status"], directory["reason"]) == ("True", "Running")
    assert ready["status"]["domainControllers"] == "0/0"
    assert condition(ready, "ReplicationHealthy")["reason"] == "NotApplicable"


def test_an_external_url_without_tls_runs_nothing_and_says_why(es4ps_crd, domain_namespace, start_operator):
    start_operator()
    add_secrets(es4ps_crd, domain_namespace)
    apply_domain(es4ps_crd, external_domain(domain_namespace, "ldap://dc1.corp.example"))

    directory = directory_condition(es4ps_crd, domain_namespace, "InvalidURL")

    assert directory["status"] == "False" and "does not use TLS" in directory["message"]
    assert condition(get_domain(es4ps_crd, domain_namespace))["status"] == "False"
    made = children(es4ps_crd, domain_namespace)
    assert ("Deployment", "acme-worker") not in made
    assert not [key for key in made if key[0] == "StatefulSet" and "-dc" in key[1]]


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("TooManyRights", "the account svc has more rights than the worker needs: holds Domain Admins"),
        ("CredentialsRefused", f"the directory at {URL} refused the account svc"),
        (
            "UntrustedCertificate",
            f"the certificate of the directory at {URL} does not verify against the CA of"
            " /etc/es4ps/directory-ca/ca.crt (unable to get local issuer certificate)",
        ),
        ("OUNotFound", f"the OU {OU},DC=corp,DC=example (spec.directory.external.ou) is not in the directory at {URL}"),
    ],
)
def test_the_workers_refusal_to_run_is_named_in_directory_ready(
    es4ps_crd, domain_namespace, start_operator, reason, line
):
    start_operator()
    add_secrets(es4ps_crd, domain_namespace)
    apply_domain(es4ps_crd, external_domain(domain_namespace))
    wait_ready(es4ps_crd, domain_namespace)
    pods = es4ps_crd.get("pods", namespace=domain_namespace)["items"]
    pod = next(p for p in pods if p["metadata"]["name"].startswith("acme-worker-"))

    # What the kubelet writes when the worker exits with its refusal and is restarted (CrashLoopBackOff).
    refusal = f"celery banner\nes4ps-worker: refused ({reason}: {line})\n"
    status = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "ContainersReady", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "worker",
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": refusal}},
                }
            ],
        }
    }
    es4ps_crd.kubectl(
        "patch", "pod", pod["metadata"]["name"], "-n", domain_namespace,
        "--subresource=status", "--type=strategic", "-p", json.dumps(status),
    )  # fmt: skip

    directory = directory_condition(es4ps_crd, domain_namespace, reason)
    assert directory["status"] == "False" and directory["message"] == line
    assert "Svc-Passw0rd!" not in json.dumps(get_domain(es4ps_crd, domain_namespace))


def test_external_mode_refuses_backups_and_switching_modes_at_the_api_server(es4ps_crd, domain_namespace):
    domain = external_domain(domain_namespace)
    domain["spec"]["directory"]["backup"] = {"keep": 2, "destination": {"volume": {"size": "1Gi"}}}
    refused = es4ps_crd.kubectl("apply", "-f", "-", input=yaml.safe_dump(domain), check=False)
    assert refused.returncode != 0 and "backup and bootstrap do not apply" in refused.stderr

    apply_domain(es4ps_crd, example_domain(domain_namespace))
    switched = es4ps_crd.kubectl(
        "apply", "--server-side", "-f", "-", input=yaml.safe_dump(external_domain(domain_namespace)), check=False
    )
    assert switched.returncode != 0 and "never added or removed later" in switched.stderr
