"""Sealing, signing and key files."""

import base64
import time

import pytest
from es4ps_contract.keys import (
    KeyFileError,
    generate_sealing_keypair,
    generate_signing_keypair,
    load_sealing_private_key,
    load_sealing_public_key,
    load_signing_key,
    load_verify_key,
)
from es4ps_contract.sealing import SealingError, seal_password, unseal_password
from es4ps_contract.signing import DEFAULT_MAX_AGE_S, EnvelopeError, open_task, sign_envelope, sign_task
from es4ps_contract.tasks import CreateUser, EnableUser, Operation
from nacl.public import PrivateKey
from nacl.signing import SigningKey

PASSWORD = "Corr3ct-Horse!"  # noqa: S105 - test value


@pytest.fixture
def keys(tmp_path):
    files = {}
    for kind, (private, public) in (("sealing", generate_sealing_keypair()), ("signing", generate_signing_keypair())):
        for part, text in (("private", private), ("public", public)):
            files[f"{kind}-{part}"] = tmp_path / f"{kind}-{part}.key"
            files[f"{kind}-{part}"].write_text(text + "\n")
    return {
        "seal": load_sealing_public_key(files["sealing-public"]),
        "open": load_sealing_private_key(files["sealing-private"]),
        "sign": load_signing_key(files["signing-private"]),
        "verify": load_verify_key(files["signing-public"]),
    }


def test_a_sealed_password_opens_only_with_the_private_key_and_for_its_account(keys):
    sealed = seal_password(keys["seal"], "ana", PASSWORD)

    assert PASSWORD not in sealed
    assert unseal_password(keys["open"], sealed, "ana") == PASSWORD
    with pytest.raises(SealingError, match="another account"):
        unseal_password(keys["open"], sealed, "bob")
    with pytest.raises(SealingError, match="cannot be opened"):
        unseal_password(PrivateKey.generate(), sealed, "ana")


@pytest.mark.parametrize("sealed", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_junk_never_opens(keys, sealed):
    with pytest.raises(SealingError) as caught:
        unseal_password(keys["open"], sealed, "ana")
    assert PASSWORD not in str(caught.value)


BOUND = {"registration": "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b", "email": "ana@acme.example"}


def enable(username: str = "ana") -> EnableUser:
    return EnableUser(username, **BOUND)


def test_a_signed_task_opens_as_the_same_task_with_its_id_and_issue_time(keys):
    sealed = seal_password(keys["seal"], "ana", PASSWORD)
    task = CreateUser("ana", given_name="Ana", surname="Lopez", sealed_password=sealed, **BOUND)
    envelope = sign_task(keys["sign"], task, "id-1", issued_at=1_800_000_000)

    signed = open_task(keys["verify"], envelope, operation=Operation.CREATE_USER, task_id="id-1", now=1_800_000_001)
    assert (signed.task, signed.task_id, signed.issued_at) == (task, "id-1", 1_800_000_000)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda e: e.pop("sig"), "missing or unexpected keys"),
        (lambda e: e.update(extra=1), "missing or unexpected keys"),
        (lambda e: e.update(v=2), "version"),
        (lambda e: e["payload"].update(username="root1"), "signature is not valid"),
        (lambda e: e.update(sig="!!"), "signature is not valid"),
        (lambda e: e.update(iat=e["iat"] - 1), "signature is not valid"),
    ],
)
def test_a_tampered_envelope_is_refused(keys, tamper, message):
    envelope = sign_task(keys["sign"], enable(), "id-1")
    tamper(envelope)
    with pytest.raises(EnvelopeError, match=message):
        open_task(keys["verify"], envelope, operation=Operation.ENABLE_USER, task_id="id-1")


def test_an_envelope_is_bound_to_its_operation_id_and_age(keys):
    envelope = sign_task(keys["sign"], enable(), "id-1")
    with pytest.raises(EnvelopeError, match="another operation"):
        open_task(keys["verify"], envelope, operation=Operation.DELETE_USER, task_id="id-1")
    with pytest.raises(EnvelopeError, match="another task id"):
        open_task(keys["verify"], envelope, operation=Operation.ENABLE_USER, task_id="id-2")
    with pytest.raises(EnvelopeError, match="expired"):
        open_task(
            keys["verify"],
            envelope,
            operation=Operation.ENABLE_USER,
            task_id="id-1",
            now=time.time() + DEFAULT_MAX_AGE_S + 10,
        )
    future = sign_task(keys["sign"], enable(), "id-3", issued_at=int(time.time()) + 3600)
    with pytest.raises(EnvelopeError, match="future"):
        open_task(keys["verify"], future, operation=Operation.ENABLE_USER, task_id="id-3")


def test_a_signature_of_another_key_is_refused(keys):
    envelope = sign_envelope(SigningKey.generate(), Operation.ENABLE_USER, "id-1", {"username": "ana", **BOUND})
    with pytest.raises(EnvelopeError, match="signature is not valid"):
        open_task(keys["verify"], envelope, operation=Operation.ENABLE_USER, task_id="id-1")


def test_the_portal_cannot_sign_an_invalid_task(keys):
    with pytest.raises(ValueError, match="username"):
        sign_task(keys["sign"], enable("*)(cn=*"), "id-1")


@pytest.mark.parametrize("text", ["", "not base64", base64.b64encode(b"x" * 31).decode()])
def test_bad_key_files_are_refused_with_the_reason(tmp_path, text):
    path = tmp_path / "key"
    path.write_text(text)
    with pytest.raises(KeyFileError):
        load_verify_key(path)


def test_a_missing_key_file_is_named(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read signing public key"):
        load_verify_key(tmp_path / "absent")
