"""Where an archive came from: its manifest signed with the domain's backup signing key (Ed25519), and the check a
restore makes with the public key it trusts.

age gives confidentiality, not authenticity: the recipient is public, so anybody
who may write to the destination could leave an archive of their own there,
encrypted to it. The store step signs the manifest (the SHA-256 of every file,
the domain, the backup's name, the signing key's fingerprint) and packs the
signature beside it (`manifest.sig`, base64); the fetch step refuses, before
anything is restored, an archive whose manifest the trusted key did not sign, a
genuine archive of another backup put in its place, and (unless told to accept
one) an archive without a signature, as the releases before 0.2.0 wrote them.
The trusted key comes from the restoring domain's spec, never from the
ES4PSBackup's status.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from es4ps_contract.keys import KeyFileError, load_signing_key, load_verify_key
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from .archive import MANIFEST_FILE
from .destinations import BackupError

SIGNATURE_FILE = "manifest.sig"


def fingerprint(verify_key: VerifyKey) -> str:
    """A short name of a public key for messages: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(bytes(verify_key)).hexdigest()[:16]


def signed_manifest(manifest: dict[str, Any], work: Path, signing_key_file: str) -> None:
    """Write `manifest` (with the signing key's fingerprint) and its signature into `work`."""
    try:
        key = load_signing_key(signing_key_file)
    except KeyFileError as exc:
        raise BackupError(f"the backup signing key is not available: {exc}") from None
    text = json.dumps({**manifest, "signingKey": fingerprint(key.verify_key)}, indent=1) + "\n"
    (work / MANIFEST_FILE).write_text(text)
    signature = key.sign(text.encode()).signature
    (work / SIGNATURE_FILE).write_text(base64.b64encode(signature).decode("ascii") + "\n")


def trusted_manifest(
    work: Path, location: str, verify_key_file: str, expected_backup: str, *, accept_unsigned: bool
) -> dict[str, Any]:
    """The manifest unpacked into `work`, once its signature verifies with the trusted key and it is the
    expected backup's; raises BackupError saying why it is refused."""
    text = (work / MANIFEST_FILE).read_bytes()
    signature_file = work / SIGNATURE_FILE
    if signature_file.exists():
        try:
            trusted = load_verify_key(verify_key_file)
        except KeyFileError as exc:
            raise BackupError(f"the key the restore trusts is not available: {exc}") from None
        try:
            trusted.verify(text, base64.b64decode(signature_file.read_text().strip(), validate=True))
        except (BadSignatureError, binascii.Error, ValueError):
            signer = _claimed_signer(text)
            raise BackupError(
                f"{location} is not signed by the trusted key {fingerprint(trusted)} (it names the key {signer};"
                " another key signed it, or it was altered): refused"
            ) from None
    elif not accept_unsigned:
        raise BackupError(
            f"{location} carries no signature (made before 0.2.0, or not by ES4PS): refused. To restore a backup"
            " whose origin you know, set spec.directory.bootstrap.recovery.acceptUnsigned: true"
        )
    else:
        print(f"es4ps-backup fetch: {location} carries no signature; accepted as told", file=sys.stderr)
    manifest = json.loads(text)
    if expected_backup and manifest.get("backup") != expected_backup:
        raise BackupError(f"{location} holds the backup {manifest.get('backup')!r}, not {expected_backup!r}: refused")
    return manifest


def _claimed_signer(text: bytes) -> str:
    try:
        return str(json.loads(text).get("signingKey") or "none")[:64]
    except (ValueError, AttributeError):
        return "none"
