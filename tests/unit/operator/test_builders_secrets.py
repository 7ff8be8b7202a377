"""The generated Secrets and volumes: kept unless deletionPolicy is Delete, values in the contract's formats."""

from es4ps_contract.keys import load_sealing_private_key, load_sealing_public_key, load_signing_key, load_verify_key
from es4ps_contract.passwords import PasswordPolicy
from es4ps_contract.sealing import seal_password, unseal_password
from es4ps_contract.signing import open_task, sign_task
from es4ps_contract.tasks import EnableUser
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.secrets import generate_admin_password, generate_task_keys
from es4ps_testkit.domains import make_domain

# --- generated secrets and volumes --------------------------------------------------------------


def test_generated_secrets_and_volumes_are_kept_unless_deletion_policy_is_delete(config):
    for policy, owned, when_deleted in (("Retain", False, "Retain"), ("Delete", True, "Delete")):
        desired = build_desired_state(make_domain(deletionPolicy=policy), config)
        for secret in desired.generated_secrets:
            assert ("ownerReferences" in secret.manifest["metadata"]) is owned
        for manifest in desired.manifests():
            if manifest["kind"] == "StatefulSet":
                assert manifest["spec"]["persistentVolumeClaimRetentionPolicy"] == {
                    "whenDeleted": when_deleted,
                    "whenScaled": "Retain",
                }


def test_generated_secret_names(minimal, config):
    names = [s.name for s in build_desired_state(minimal, config).generated_secrets]
    assert names == [
        "acme-samba-admin",
        "acme-portal-secret-key",
        "acme-task-keys",
        "acme-worker-credentials",
        "acme-dc0-result-key",  # one per DC: only that DC's Pod mounts its private half
    ]


def test_admin_password_meets_the_domain_rules_and_differs_each_time():
    passwords = {generate_admin_password()["password"] for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) == 32
        assert PasswordPolicy.strictest().problems(password, "Administrator") == []


def test_task_keys_are_matching_pairs_in_the_contract_format(tmp_path):
    keys = generate_task_keys()
    for name, text in keys.items():
        (tmp_path / name).write_text(text)
    public = load_sealing_public_key(tmp_path / "sealing-public.key")
    private = load_sealing_private_key(tmp_path / "sealing-private.key")
    sealed = seal_password(public, "jdoe", "Secret-123")
    assert unseal_password(private, sealed, "jdoe") == "Secret-123"
    task = EnableUser("jdoe", registration="0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b", email="jdoe@acme.example")
    envelope = sign_task(load_signing_key(tmp_path / "signing-private.key"), task, "task-1")
    opened = open_task(
        load_verify_key(tmp_path / "signing-public.key"), envelope, operation=task.operation, task_id="task-1"
    )
    assert opened.task == task
    assert generate_task_keys() != keys
