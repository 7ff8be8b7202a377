"""Secrets the operator generates once per domain and never overwrites.

    <domain>-samba-admin        password             the domain's Administrator password
    <domain>-portal-secret-key  secret-key           Django's SECRET_KEY
    <domain>-task-keys          sealing-public.key, sealing-private.key   X25519 (es4ps_contract.keys)
                                signing-public.key, signing-private.key   Ed25519
    <domain>-worker-credentials password             the workers' own directory account (not Administrator)
    <domain>-dc<i>-result-key   private.key, public.key  Ed25519: DC i's worker signs its result events (only its
                                                     Pod mounts private.key; the portal mounts every public.key)
    <domain>-worker-result-key  private.key, public.key  the same for the external worker (spec.directory.external)
    <domain>-files-machine      password             the file server's computer account (with spec.fileServices)
    <domain>-backup-key         recipient, identity  the age key pair backups are encrypted with (with a backup
                                                     destination, unless spec.directory.backup names a Secret)

The builder is pure: it returns each Secret's metadata and a function that
makes fresh values, called only when the Secret does not exist yet. The values
never appear in a log, an event or the status. A task-keys Secret holds both
pairs so that a crash can never leave half of them regenerated.

These Secrets belong with the data (the directory was provisioned with that
password, queued tasks are sealed and signed with those keys, the portal's
tokens with that SECRET_KEY): under deletionPolicy Retain they carry no owner
reference, so deleting the domain keeps them beside the volumes they unlock,
and a domain created again with the same name takes them up. The backup key
is never owned, whatever the policy: backups outlive their domain, and are
useless without it.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from collections.abc import Callable, Sequence

from es4ps_contract.directory import WORKER_ACCOUNT
from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_contract.passwords import PasswordPolicy
from pyrage import x25519

from .. import naming
from ..domain import Domain
from .common import Manifest, metadata

DIRECTORY_PASSWORD_LENGTH = 32
# Symbols that need no quoting in a shell, an smb.conf or a URL.
PASSWORD_SYMBOLS = "-_.+=,:@%"  # noqa: S105 (an alphabet, not a password)


@dataclasses.dataclass(frozen=True)
class GeneratedSecret:
    """A Secret made once: its manifest without data, and how to make its data."""

    manifest: Manifest
    generate: Callable[[], dict[str, str]]
    # Owned by the domain under deletionPolicy Delete (False: never, it outlives the domain).
    follows_deletion_policy: bool = True

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    def with_data(self, data: dict[str, str]) -> Manifest:
        return self.manifest | {"stringData": data}


def _directory_password(account: str) -> dict[str, str]:
    """A random password for a directory account that meets any password policy a domain may have."""
    alphabet = string.ascii_letters + string.digits + PASSWORD_SYMBOLS
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(DIRECTORY_PASSWORD_LENGTH))
        if not PasswordPolicy.strictest().problems(password, account):
            return {"password": password}


def generate_admin_password() -> dict[str, str]:
    return _directory_password("Administrator")


def generate_worker_password() -> dict[str, str]:
    return _directory_password(WORKER_ACCOUNT)


def generate_machine_password() -> dict[str, str]:
    return _directory_password("files$")


def generate_result_key() -> dict[str, str]:
    private, public = generate_signing_keypair()
    return {"private.key": private, "public.key": public}


def generate_django_secret_key() -> dict[str, str]:
    return {"secret-key": secrets.token_urlsafe(50)}


def generate_task_keys() -> dict[str, str]:
    sealing_private, sealing_public = generate_sealing_keypair()
    signing_private, signing_public = generate_signing_keypair()
    return {
        "sealing-private.key": sealing_private,
        "sealing-public.key": sealing_public,
        "signing-private.key": signing_private,
        "signing-public.key": signing_public,
    }


def generate_erlang_cookie() -> dict[str, str]:
    """The shared secret of a clustered broker's nodes (Erlang wants letters and digits)."""
    return {"cookie": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))}


def generate_backup_key() -> dict[str, str]:
    """An age X25519 key pair: `recipient` (age1...) encrypts, `identity` (AGE-SECRET-KEY-1...) decrypts."""
    identity = x25519.Identity.generate()
    return {"recipient": str(identity.to_public()), "identity": str(identity)}


def generate_backup_signing_key() -> dict[str, str]:
    """An Ed25519 key pair: `signing-key` signs each backup's manifest (the backup Job's store step alone reads
    it), `verify-key` is what a restore trusts (es4ps_samba.backup)."""
    private, public = generate_signing_keypair()
    return {"signing-key": private, "verify-key": public}


def build_generated_secrets(domain: Domain, dc_indices: Sequence[int] = ()) -> list[GeneratedSecret]:
    """The domain's generated Secrets (one result key per worker: beside each DC of `dc_indices`, or the
    external one), owned by it only under deletionPolicy Delete (the backup key never)."""

    def secret(name: str, owned: bool = domain.delete_data) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": metadata(domain, name, naming.SECRETS, owned=owned),
        }

    # In external mode the Administrator and the worker's account are the organisation's, not generated; a
    # domain that joined an existing one has that domain's Administrator password (join.credentialsSecretRef).
    own = domain.directory.external is None
    admin = own and domain.directory.join_credentials is None
    secrets_ = [
        *([GeneratedSecret(secret(naming.admin_password_secret(domain)), generate_admin_password)] if admin else []),
        GeneratedSecret(secret(naming.django_secret_key_secret(domain)), generate_django_secret_key),
        GeneratedSecret(secret(naming.task_keys_secret(domain)), generate_task_keys),
        *([GeneratedSecret(secret(naming.worker_credentials_secret(domain)), generate_worker_password)] if own else []),
        *(GeneratedSecret(secret(w.result_key), generate_result_key) for w in naming.workers(domain, dc_indices)),
    ]
    if domain.file_services is not None:
        secrets_.append(GeneratedSecret(secret(naming.files_machine_secret(domain)), generate_machine_password))
    if domain.broker.clustered:
        secrets_.append(GeneratedSecret(secret(naming.broker_cookie_secret(domain)), generate_erlang_cookie))
    backup = domain.directory.backup
    if backup is not None and backup.encryption_secret is None:
        key = secret(naming.backup_key_secret(domain), owned=False)
        secrets_.append(GeneratedSecret(key, generate_backup_key, follows_deletion_policy=False))
    if backup is not None:
        # Kept like the encryption key: a domain restored under the same name trusts its backups by it.
        signing = secret(naming.backup_signing_secret(domain), owned=False)
        secrets_.append(GeneratedSecret(signing, generate_backup_signing_key, follows_deletion_policy=False))
    return secrets_
