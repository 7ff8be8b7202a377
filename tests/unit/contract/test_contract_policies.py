"""Policies in tasks: OU and group names, privileged groups, Unix attributes; no policy, no new fields."""
# ruff: noqa: S106 - sealed test values, not passwords

import pytest
from es4ps_contract.policies import PRIVILEGED_GROUPS, UnixAttributes, normalize_groups, normalize_ou
from es4ps_contract.tasks import ApplyPolicy, CreateUser, parse_payload, validated
from es4ps_contract.validation import InvalidField

BOUND = {"registration": "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b", "email": "ana@students.acme.example"}
UNIX = {
    "uid_range_start": 10000,
    "uid_range_end": 999999,
    "gid_number": 10513,
    "login_shell": "/bin/bash",
    "home_directory": "/home/ana",
}


def create(**fields) -> CreateUser:
    return CreateUser("ana", given_name="Ana", surname="Lopez", sealed_password="c2VhbGVk", **BOUND, **fields)


def test_a_create_task_without_a_policy_carries_no_policy_fields():
    payload = validated(create()).payload()
    assert set(payload) == {"username", "registration", "email", "given_name", "surname", "sealed_password"}
    assert parse_payload("create_user", payload) == validated(create())


def test_a_create_task_with_a_policy_round_trips():
    task = validated(create(ou="Students", groups=["students", "wifi", "WiFi"], unix=UNIX))
    payload = task.payload()
    assert payload["groups"] == ["students", "wifi"]  # AD compares group names case-insensitively
    assert payload["unix"] == UNIX
    assert parse_payload("create_user", payload) == task


@pytest.mark.parametrize(
    "group", ["Domain Admins", "domain admins", "Enterprise Admins", "Administrators", "Schema Admins", "DnsAdmins"]
)
def test_a_privileged_group_is_refused_in_any_case(group):
    with pytest.raises(InvalidField) as caught:
        validated(create(groups=["wifi", group]))
    assert caught.value.field == "groups" and "privileged" in caught.value.message
    with pytest.raises(InvalidField):
        parse_payload("apply_policy", {"username": "ana", **BOUND, "ou": "", "groups": [group]})


def test_the_issues_examples_are_all_privileged():
    named = {
        "domain admins", "enterprise admins", "administrators", "schema admins", "account operators",
        "backup operators", "server operators", "print operators", "dnsadmins", "group policy creator owners",
        "cert publishers", "key admins", "enterprise key admins", "protected users",
    }  # fmt: skip
    assert named <= PRIVILEGED_GROUPS


@pytest.mark.parametrize(
    "name", ["", " Students", "Students ", "a" * 65, "OU=Evil", "Stu,dents", "Stu*", "Stu\\dents", "Stu  dents", "é"]
)
def test_names_that_could_break_a_dn_or_a_filter_are_refused(name):
    with pytest.raises(InvalidField):
        normalize_groups([name])
    if name:
        with pytest.raises(InvalidField):
            normalize_ou(name)


def test_the_managed_ou_itself_is_the_empty_ou_name():
    assert normalize_ou("") == ""
    assert normalize_ou("Year 1.A_b-c") == "Year 1.A_b-c"


def test_too_many_groups_are_refused():
    with pytest.raises(InvalidField):
        normalize_groups([f"g{i}" for i in range(21)])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uid_range_start": 0}, "unix.uid_range_start"),  # root
        ({"uid_range_start": 999}, "unix.uid_range_start"),  # the clients' system accounts
        ({"uid_range_end": 10000}, "unix.uid_range_end"),  # an empty range
        ({"uid_range_end": 2**31}, "unix.uid_range_end"),
        ({"gid_number": 0}, "unix.gid_number"),  # the root group
        ({"gid_number": True}, "unix.gid_number"),
        ({"login_shell": "bash"}, "unix.login_shell"),
        ({"login_shell": "/bin/bash -c id"}, "unix.login_shell"),
        ({"home_directory": "/home/../etc"}, "unix.home_directory"),
        ({"home_directory": "/home//ana"}, "unix.home_directory"),
        ({"extra": 1}, "unix.extra"),
    ],
)
def test_unix_attributes_that_break_the_rules_are_refused(change, field):
    with pytest.raises(InvalidField) as caught:
        validated(create(unix={**UNIX, **change}))
    assert caught.value.field == field


def test_a_missing_unix_attribute_is_named():
    unix = dict(UNIX)
    del unix["gid_number"]
    with pytest.raises(InvalidField) as caught:
        UnixAttributes.parse(unix)
    assert caught.value.field == "unix.gid_number"


def test_the_uid_is_the_range_start_plus_the_rid_while_it_fits():
    unix = UnixAttributes.parse(UNIX)
    assert unix.uid_number(1105) == 11105
    assert unix.uid_number(989999) == 999999
    assert unix.uid_number(990000) is None


def test_apply_policy_needs_its_ou_and_groups():
    with pytest.raises(InvalidField) as caught:
        parse_payload("apply_policy", {"username": "ana", **BOUND, "ou": "Staff"})
    assert caught.value.field == "groups"
    task = ApplyPolicy("ana", ou="Staff", groups=("staff",), **BOUND)
    assert parse_payload("apply_policy", validated(task).payload()) == validated(task)
