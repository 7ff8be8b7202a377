"""Tasks: names, payloads and their validation."""

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


def test_a_payload_round_trips_through_parse_payload():
    task = CreateUser("Ana", "Ana", "Lopez", "ana@ACME.example", "c2VhbGVk")
    payload = validated(task).payload()

    assert payload["username"] == "ana" and payload["email"] == "ana@acme.example"
    assert parse_payload("create_user", payload) == validated(task)


@pytest.mark.parametrize(
    ("operation", "payload", "field"),
    [
        ("drop_database", {"username": "ana"}, "operation"),
        ("enable_user", ["ana"], "payload"),
        ("enable_user", {}, "username"),
        ("enable_user", {"username": "ana", "extra": 1}, "extra"),
        ("set_password", {"username": "ana", "sealed_password": ""}, "sealed_password"),
        ("set_password", {"username": "ana", "sealed_password": "x" * 5000}, "sealed_password"),
        ("update_attributes", {"username": "ana", "attributes": {"mail": "x@y.z"}}, "attributes"),
        ("update_attributes", {"username": "ana", "attributes": {}}, "attributes"),
        ("update_attributes", {"username": "ana", "attributes": "givenName=x"}, "attributes"),
        ("update_attributes", {"username": "ana", "attributes": {"given_name": "A" * 65}}, "given_name"),
    ],
)
def test_payloads_that_break_the_contract_are_refused(operation, payload, field):
    with pytest.raises(InvalidField) as caught:
        parse_payload(operation, payload)
    assert caught.value.field == field


def test_display_name_may_be_longer_than_given_names():
    task = validated(UpdateAttributes("ana", {"display_name": "D" * 200}))
    assert task.attributes == {"display_name": "D" * 200}


def test_simple_tasks_carry_only_the_username():
    assert EnableUser("ana").payload() == {"username": "ana"}
    assert set(SetPassword("ana", "s").payload()) == {"username", "sealed_password"}
