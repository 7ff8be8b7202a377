"""What the backup and restore Jobs' steps may read, on the real API server with the operator running (KWOK nodes).

Each step mounts only the secrets it uses: the Administrator's password only
the steps that act on the directory with it; the backup's signing key only the
store step; the key a restore trusts, and the decryption key, only the fetch
step. The key a restore trusts comes from the restoring domain's spec (its own
signing key unless it names another), never from the ES4PSBackup's status,
which whoever may write that status could point anywhere.
"""

from __future__ import annotations

import json

import pytest
from es4ps_testkit.domains import example_domain
from es4ps_testkit.operator_checks import apply_domain, secret_data

pytestmark = pytest.mark.cluster

BACKUP = {"keep": 2, "destination": {"volume": {"size": "1Gi"}}}


def secrets_by_step(pod_spec: dict) -> dict[str, dict[str, list[str]]]:
    """step -> {Secret name: the keys it mounts} for every container of a Pod spec."""
    volumes = {v["name"]: v["secret"] for v in pod_spec["volumes"] if "secret" in v}
    mounted = {}
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        mounts = [volumes[m["name"]] for m in container.get("volumeMounts", []) if m["name"] in volumes]
        mounted[container["name"]] = {s["secretName"]: sorted(i["key"] for i in s.get("items", [])) for s in mounts}
    return mounted


def env_of(pod_spec: dict, step: str) -> dict[str, str]:
    container = next(c for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]] if c["name"] == step)
    return {e["name"]: e.get("value", "") for e in container["env"]}


def job_and_pod_specs(cluster, namespace: str, job: str) -> list[dict]:
    """The Pod spec in the Job the operator wrote, and in the Pod the Job controller made from it."""
    written = cluster.eventually(
        lambda: cluster.get("job", job, namespace, check=False), timeout=120, message=f"the Job {job}"
    )

    def pod():
        pods = cluster.get("pods", namespace=namespace)["items"]
        return next((p for p in pods if p["metadata"].get("labels", {}).get("job-name") == job), None)

    made = cluster.eventually(pod, timeout=120, message=f"a Pod of {job}")
    return [written["spec"]["template"]["spec"], made["spec"]]


def test_each_backup_and_restore_step_mounts_only_the_secrets_it_uses(es4ps_crd, domain_namespace, start_operator):
    start_operator()
    ns = domain_namespace
    domain = example_domain(ns)
    domain["spec"]["directory"]["backup"] = BACKUP
    apply_domain(es4ps_crd, domain)

    def generated():
        found = es4ps_crd.kubectl("get", "secret", "acme-backup-signing-key", "-n", ns, check=False)
        return secret_data(es4ps_crd, ns, "acme-backup-signing-key") if found.returncode == 0 else None

    signing = es4ps_crd.eventually(generated, timeout=120, message="the backups' signing key generated")
    assert set(signing) == {"signing-key", "verify-key"}

    backup = {"apiVersion": "es4ps.io/v1alpha1", "kind": "ES4PSBackup", "spec": {"domain": "acme"}}
    es4ps_crd.apply(json.dumps({**backup, "metadata": {"name": "acme-now", "namespace": ns}}))
    for spec in job_and_pod_specs(es4ps_crd, ns, "acme-now"):
        assert secrets_by_step(spec) == {
            "directory": {"acme-samba-admin": ["password"]},  # samba-tool domain backup online needs it
            "portal": {"acme-portal-secret-key": ["secret-key"]},
            "store": {"acme-backup-key": ["recipient"], "acme-backup-signing-key": ["signing-key"]},
        }
        assert "ES4PS_ADMIN_PASSWORD_FILE" not in env_of(spec, "store")

    # Whoever may write an ES4PSBackup's status points the restore at a key of their own: the restore's
    # trusted key still comes from the restoring domain's spec.
    es4ps_crd.kubectl("create", "secret", "generic", "mallory-key", "-n", ns, "--from-literal=identity=AGE-x")
    status = {
        "phase": "Completed",
        "location": "volume:acme-backups/acme/acme-now.tar.age",
        "sha256": "0" * 64,
        "encryptionKeySecret": "mallory-key",
    }
    es4ps_crd.kubectl(
        "patch", "es4psbackup", "acme-now", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    restored = example_domain(ns)
    restored["metadata"]["name"] = "beta"
    restored["spec"].update(realm="AD.BETA.EXAMPLE", netbiosName="BETA")
    restored["spec"]["portal"]["host"] = "accounts.beta.example"
    restored["spec"]["directory"]["backup"] = BACKUP
    restored["spec"]["directory"]["bootstrap"] = {"recovery": {"backup": "acme-now"}}
    apply_domain(es4ps_crd, restored)
    for spec in job_and_pod_specs(es4ps_crd, ns, "beta-restore"):
        mounted = secrets_by_step(spec)
        assert mounted["fetch"] == {"mallory-key": ["identity"], "beta-backup-signing-key": ["verify-key"]}
        assert mounted["directory"] == {"beta-samba-admin": ["password"]}  # sets the restored Administrator's
        assert all("beta-samba-admin" not in secrets for step, secrets in mounted.items() if step != "directory")
        assert env_of(spec, "fetch")["ES4PS_BACKUP_ACCEPT_UNSIGNED"] == "false"
