"""Key material of a domain: how it is generated, written and read.

Two key pairs per domain, and one per DC, generated once by the operator and kept in Secrets:

- sealing (X25519): the portal holds the public key and seals passwords with
  it; only the workers hold the private key that opens them.
- signing (Ed25519): the portal holds the private key and signs every task;
  the workers hold the public key and refuse tasks it does not verify. A broker
  credential alone therefore cannot create users or set passwords.
- result signing (Ed25519, one pair per DC): that DC's worker alone holds the
  private key and signs its result events; the portal holds every DC's public
  key, one file per DC named after it (`<dc>.key`), and drops events that do
  not verify. A broker credential alone therefore cannot report an outcome.

Every key is stored as the base64 text of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey


class KeyFileError(ValueError):
    """A key file is missing or does not hold a key of the expected kind."""


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decode(text: str | bytes, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{what} is not base64 text") from None
    if len(raw) != 32:
        raise KeyFileError(f"{what} must hold 32 bytes, found {len(raw)}")
    return raw


def generate_sealing_keypair() -> tuple[str, str]:
    """Return (private, public) base64 text of a new X25519 key pair."""
    key = PrivateKey.generate()
    return encode_key(bytes(key)), encode_key(bytes(key.public_key))


def generate_signing_keypair() -> tuple[str, str]:
    """Return (private, public) base64 text of a new Ed25519 key pair."""
    key = SigningKey.generate()
    return encode_key(bytes(key)), encode_key(bytes(key.verify_key))


def _read(path: str | Path, what: str) -> bytes:
    try:
        return _decode(Path(path).read_text(), what)
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} from {path}: {exc.strerror}") from None


def load_sealing_public_key(path: str | Path) -> PublicKey:
    return PublicKey(_read(path, "sealing public key"))


def load_sealing_private_key(path: str | Path) -> PrivateKey:
    return PrivateKey(_read(path, "sealing private key"))


def load_signing_key(path: str | Path) -> SigningKey:
    return SigningKey(_read(path, "signing private key"))


def load_verify_key(path: str | Path) -> VerifyKey:
    return VerifyKey(_read(path, "signing public key"))


# A DC's name (the worker names itself so in its events): the file of its public key is `<name>.key`.
_SIGNER_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def load_verify_keys(directory: str | Path) -> dict[str, VerifyKey]:
    """Every `<name>.key` file of `directory` as {name: its Ed25519 public key} (the DCs' result keys)."""
    files = sorted(Path(directory).glob("*.key"))
    return {path.stem: load_verify_key(path) for path in files if _SIGNER_NAME.fullmatch(path.stem)}
