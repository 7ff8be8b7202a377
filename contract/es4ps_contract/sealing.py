"""Password sealing: the portal seals a password for the workers, only a worker can open it.

A libsodium sealed box (X25519 + XSalsa20-Poly1305, through PyNaCl) encrypts
the password with the domain's sealing public key, so the plaintext never sits
in the broker's queues or on its disk. The sealed text also names the account
it is for: a sealed password copied into a task for another user is refused.
"""

from __future__ import annotations

import base64
import binascii
import json

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


class SealingError(ValueError):
    """A sealed password cannot be opened or is not for this account. Never carries the secret."""


def seal_password(public_key: PublicKey, username: str, password: str) -> str:
    """Return base64 text that only the holder of the matching private key can open."""
    plaintext = json.dumps({"username": username, "password": password}, separators=(",", ":")).encode()
    return base64.b64encode(SealedBox(public_key).encrypt(plaintext)).decode("ascii")


def unseal_password(private_key: PrivateKey, sealed: str, username: str) -> str:
    """Open a sealed password and check it was sealed for `username`."""
    try:
        ciphertext = base64.b64decode(sealed, validate=True)
        opened = json.loads(SealedBox(private_key).decrypt(ciphertext))
    except (binascii.Error, ValueError, CryptoError, TypeError):
        raise SealingError("the sealed password cannot be opened") from None
    if not isinstance(opened, dict) or not isinstance(opened.get("password"), str):
        raise SealingError("the sealed password is malformed")
    if opened.get("username") != username:
        raise SealingError("the sealed password was sealed for another account")
    return opened["password"]
