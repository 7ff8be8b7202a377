"""Tasks: names, payloads and their validation."""
# ruff: noqa: S106 - sealed test values, not passwords

import pytest
from es4ps_contract.tasks import (
    TASK_NAME_PREFIX,
    CreateUser,
    EnableUser,
    Operation,
    SetPassword,
    UpdateAttributes,
    parse_payload,
    validated,
)
from es4ps_contract.validation import InvalidField


def test_every_operation_has_a_task_name_under_the_prefix():
    assert {op.task_name for op in Operation} == {TASK_NAME_PREFIX + op.value for op in Operation}


REGISTRATION = "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b"
BOUND = {"registration": REGISTRATION, "email": "ana@acme.example"}


def test_a_payload_round_trips_through_parse_payload():
    task = CreateUser(
        "Ana",
        registration=REGISTRATION.upper(),
        email="ana@ACME.example",
        given_name="Ana",
        surname="Lopez",
        sealed_password="c2VhbGVk",
    )
    payload = validated(task).payload()

    assert payload["username"] == "ana" and payload["email"] == "ana@acme.example"
    assert payload["registration"] == REGISTRATION
    assert parse_payload("create_user", payload) == validated(task)


@pytest.mark.parametrize(
    ("operation", "payload", "field"),
    [
        ("drop_database", {"username": "ana", **BOUND}, "operation"),
        ("enable_user", ["ana"], "payload"),
        ("enable_user", {}, "email"),
        ("enable_user", {"username": "ana", **BOUND, "extra": 1}, "extra"),
        # Every task names its registration: without it, or with anything but an id, it is refused.
        ("enable_user", {"username": "ana", "email": "ana@acme.example"}, "registration"),
        ("enable_user", {"username": "ana", **BOUND, "registration": "ana"}, "registration"),
        ("enable_user", {"username": "ana", **BOUND, "email": "ana"}, "email"),
        ("set_password", {"username": "ana", **BOUND, "sealed_password": ""}, "sealed_password"),
        ("set_password", {"username": "ana", **BOUND, "sealed_password": "x" * 5000}, "sealed_password"),
        ("update_attributes", {"username": "ana", **BOUND, "attributes": {"mail": "x@y.z"}}, "attributes"),
        ("update_attributes", {"username": "ana", **BOUND, "attributes": {}}, "attributes"),
        ("update_attributes", {"username": "ana", **BOUND, "attributes": "givenName=x"}, "attributes"),
        ("update_attributes", {"username": "ana", **BOUND, "attributes": {"given_name": "A" * 65}}, "given_name"),
    ],
)
def test_payloads_that_break_the_contract_are_refused(operation, payload, field):
    with pytest.raises(InvalidField) as caught:
        parse_payload(operation, payload)
    assert caught.value.field == field


def test_display_name_may_be_longer_than_given_names():
    task = validated(UpdateAttributes("ana", attributes={"display_name": "D" * 200}, **BOUND))
    assert task.attributes == {"display_name": "D" * 200}


def test_simple_tasks_carry_the_username_and_the_registration():
    assert EnableUser("ana", **BOUND).payload() == {"username": "ana", **BOUND}
    assert set(SetPassword("ana", sealed_password="s", **BOUND).payload()) == {
        "username",
        "registration",
        "email",
        "sealed_password",
    }


def test_a_create_says_whether_the_address_was_proven_and_leaves_it_out_when_not():
    fields = {"given_name": "Ana", "surname": "Lopez", "sealed_password": "c2VhbGVk", **BOUND}
    unproven = validated(CreateUser("ana", **fields))
    proven = validated(CreateUser("ana", address_proven=True, **fields))

    assert "address_proven" not in unproven.payload()  # as a create always read: older workers parse it
    assert parse_payload("create_user", proven.payload()).address_proven is True
    with pytest.raises(InvalidField, match="address_proven"):
        parse_payload("create_user", {**unproven.payload(), "address_proven": "yes"})
