"""Tasks that break the contract are rejected with a result event and change nothing in the directory."""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import base64
import uuid

import ldb
import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.keys import generate_signing_keypair
from es4ps_contract.signing import sign_envelope
from es4ps_contract.tasks import CreateUser, Operation, SetPassword, UpdateAttributes
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run
from nacl.signing import SigningKey

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]


def directory_snapshot(samba_dc) -> list[tuple[str, str]]:
    """Every user object of the domain with its last change: any write shows up here."""
    result = samba_dc.samdb().search(
        base=samba_dc.base_dn, scope=ldb.SCOPE_SUBTREE, expression="(objectClass=user)", attrs=["uSNChanged"]
    )
    return sorted((str(m.dn), str(m["uSNChanged"][0])) for m in result)


@pytest.fixture
def unchanged_directory(samba_dc):
    """Asserts after the test that no user object was added, changed or removed."""
    before = directory_snapshot(samba_dc)
    yield
    assert directory_snapshot(samba_dc) == before


def create_payload(task_client, username: str) -> dict:
    return {
        "username": username,
        "given_name": "Ana",
        "surname": "Example",
        "sealed_password": task_client.seal(username, PASSWORD),
        **binding(username),
    }


def publish_signed(task_client, operation: Operation, payload: dict, signing_key: SigningKey | None = None):
    """Sign a payload without validating it (as a buggy or hostile publisher with the key could) and wait."""
    task_id = str(uuid.uuid4())
    envelope = sign_envelope(signing_key or task_client.signing_key, operation, task_id, payload)
    task_client.publish(operation, envelope, task_id)
    return task_client.wait_for(task_id)


@pytest.mark.usefixtures("unchanged_directory")
def test_a_task_signed_with_another_key_is_rejected(task_client, username):
    other_key = SigningKey(base64.b64decode(generate_signing_keypair()[0]))

    event = publish_signed(task_client, Operation.CREATE_USER, create_payload(task_client, username), other_key)

    assert (event.outcome, event.reason) == (Outcome.REJECTED, "the task signature is not valid")
    assert event.username == username


@pytest.mark.usefixtures("unchanged_directory")
def test_a_task_without_a_signature_is_rejected(task_client, username):
    task_id = str(uuid.uuid4())
    envelope = task_client.envelope(create_task(task_client, username), task_id)
    del envelope["sig"]

    event = task_client.wait_for(task_client.publish(Operation.CREATE_USER, envelope, task_id))

    assert event.outcome is Outcome.REJECTED
    assert "missing or unexpected keys" in event.reason


@pytest.mark.usefixtures("unchanged_directory")
def test_a_task_altered_after_signing_is_rejected(task_client, username):
    task_id = str(uuid.uuid4())
    envelope = task_client.envelope(create_task(task_client, username), task_id)
    envelope["payload"]["email"] = "mallory@evil.example"

    event = task_client.wait_for(task_client.publish(Operation.CREATE_USER, envelope, task_id))

    assert (event.outcome, event.reason) == (Outcome.REJECTED, "the task signature is not valid")


def test_a_signed_task_replayed_under_another_operation_or_id_is_rejected(task_client, samba_dc, username):
    run(task_client, create_task(task_client, username))
    before = directory_snapshot(samba_dc)
    create_id = str(uuid.uuid4())
    envelope = task_client.envelope(create_task(task_client, username), create_id)

    as_delete = task_client.wait_for(task_client.publish(Operation.DELETE_USER, envelope, str(uuid.uuid4())))
    other_id = task_client.wait_for(task_client.publish(Operation.CREATE_USER, envelope, str(uuid.uuid4())))

    assert (as_delete.outcome, as_delete.reason) == (Outcome.REJECTED, "the envelope was signed for another operation")
    assert (other_id.outcome, other_id.reason) == (Outcome.REJECTED, "the envelope was signed for another task id")
    assert directory_snapshot(samba_dc) == before


@pytest.mark.usefixtures("unchanged_directory")
def test_something_that_is_not_an_envelope_is_rejected(task_client):
    event = task_client.wait_for(task_client.publish(Operation.ENABLE_USER, "please enable administrator"))

    assert (event.outcome, event.reason, event.username) == (
        Outcome.REJECTED,
        "the task is not a signed envelope",
        "",
    )


@pytest.mark.usefixtures("unchanged_directory")
def test_a_corrupt_sealed_password_is_rejected(task_client, username):
    sealed = task_client.seal(username, PASSWORD)
    corrupt = sealed[:-8] + ("A" if sealed[-8] != "A" else "B") + sealed[-7:]

    event = run(
        task_client,
        CreateUser(username, given_name="Ana", surname="Example", sealed_password=corrupt, **binding(username)),
    )

    assert (event.outcome, event.reason) == (Outcome.REJECTED, "the sealed password cannot be opened")


@pytest.mark.usefixtures("unchanged_directory")
def test_a_password_sealed_for_another_account_is_rejected(task_client, username):
    sealed_for_someone_else = task_client.seal("someone-else", PASSWORD)

    event = run(
        task_client,
        CreateUser(
            username, given_name="Ana", surname="Example", sealed_password=sealed_for_someone_else, **binding(username)
        ),
    )

    assert (event.outcome, event.reason) == (Outcome.REJECTED, "the sealed password was sealed for another account")


@pytest.mark.usefixtures("unchanged_directory")
@pytest.mark.parametrize(
    ("changes", "reason_start"),
    [
        ({"username": "*)(objectClass=*"}, "username: may contain only"),
        ({"username": "ana)(|(sAMAccountName=administrator"}, "username: must be at most 20 characters"),
        ({"username": "x" * 300}, "username: must be at most 20 characters"),
        ({"username": "administrator"}, "username: is reserved"),
        ({"given_name": "A" * 300}, "given_name: must be at most 64 characters"),
        ({"surname": "Evil\u202eName"}, "surname: contains a control or invisible character"),
        ({"email": "not-an-address"}, "email: is not an e-mail address"),
        ({"is_admin": True}, "is_admin: is not a field of this task"),
    ],
)
def test_a_signed_task_with_an_invalid_field_is_rejected(task_client, changes, reason_start):
    username = changes.get("username", "valid-name")
    payload = {**create_payload(task_client, username), **changes}

    event = publish_signed(task_client, Operation.CREATE_USER, payload)

    assert event.outcome is Outcome.REJECTED
    assert event.reason.startswith(reason_start), event.reason


@pytest.mark.usefixtures("unchanged_directory")
@pytest.mark.parametrize(
    "attributes",
    [
        {"userAccountControl": "512"},
        {"memberOf": "CN=Domain Admins,CN=Users,DC=es4ps,DC=test"},
        {"given_name": "Ana", "unicodePwd": "x"},
        {},
    ],
)
def test_an_update_outside_the_allow_list_is_rejected(task_client, samba_dc, attributes):
    event = publish_signed(
        task_client,
        Operation.UPDATE_ATTRIBUTES,
        {"username": "valid-name", "attributes": attributes, **binding("valid-name")},
    )

    assert event.outcome is Outcome.REJECTED
    assert event.reason.startswith("attributes: "), event.reason


def test_the_portal_cannot_even_build_an_invalid_task(task_client):
    with pytest.raises(ValueError, match="may only change"):
        task_client.envelope(
            UpdateAttributes("valid-name", attributes={"memberOf": "x"}, **binding("valid-name")), str(uuid.uuid4())
        )


def test_no_password_reaches_the_worker_log_or_an_event(task_client, directory_worker, username):
    weak, good, other = "Sh0rt-but-Ok!", "G00d-Passw0rd!one", "An0ther-G00d!pass"  # weak: below minLength
    events = [
        run(task_client, create_task(task_client, username, password=weak)),
        run(task_client, create_task(task_client, username, password=good)),
        run(task_client, create_task(task_client, username, sealed_password=task_client.seal("x1", other))),
        run(task_client, SetPassword(username, sealed_password=task_client.seal(username, other), **binding(username))),
    ]

    assert [e.outcome for e in events] == [Outcome.FAILED, Outcome.SUCCEEDED, Outcome.REJECTED, Outcome.SUCCEEDED]
    log = directory_worker.log.read_text(errors="replace")
    for secret in (weak, good, other):
        assert secret not in log
        assert all(secret not in str(e.to_message()) for e in events)
