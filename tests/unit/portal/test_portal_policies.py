"""Policies by e-mail domain: the most specific one wins, and bad settings stop the portal naming the entry."""

import json

import pytest
from es4ps_portal.accounts.email_domains import parse_allowed_domains
from es4ps_portal.provisioning.policies import InvalidPolicies, parse_policies, parse_unix, policy_for

ALLOWED = parse_allowed_domains("acme.example,acme.org")
UNIX = {"enabled": True, "loginShell": "/bin/bash", "homeDirectoryTemplate": "/home/{username}",
        "uidRange": {"start": 10000, "end": 999999}}  # fmt: skip
POLICIES = [
    {"emailDomain": "acme.example", "ou": "Staff", "groups": ["staff"]},
    {"emailDomain": "students.acme.example", "ou": "Students", "groups": ["students", "wifi"],
     "uidRange": {"start": 1000000, "end": 1999999}},
]  # fmt: skip


def policies(entries=POLICIES, unix=UNIX):
    return parse_policies(json.dumps(entries), ALLOWED, parse_unix(json.dumps(unix)))


@pytest.mark.parametrize(
    ("email", "ou"),
    [
        ("ana@students.acme.example", "Students"),
        ("ana@Year1.STUDENTS.acme.example", "Students"),  # a subdomain, in any case
        ("ana@acme.example", "Staff"),
        ("ana@staff.acme.example", "Staff"),
        ("ana@acme.org", None),  # allowed, but no policy: the managed OU itself
        ("ana@xstudents.acme.example", "Staff"),  # compared label by label, never as text
    ],
)
def test_the_most_specific_policy_wins(email, ou):
    policy = policy_for(email, policies())
    assert (policy.ou if policy else None) == ou


def test_a_policy_keeps_its_groups_and_range_and_unix_defaults_its_primary_group():
    students = policy_for("ana@students.acme.example", policies())
    assert (students.groups, students.uid_range) == (("students", "wifi"), (1000000, 1999999))
    # No gidNumber given: Domain Users' id under the same RID mapping (start + 513).
    assert parse_unix(json.dumps(UNIX)).gid_number == 10513
    assert parse_unix(json.dumps({**UNIX, "enabled": False})) is None
    assert parse_unix("") is None and parse_policies("", ALLOWED, None) == ()


def test_computers_per_person_is_off_unless_a_policy_gives_some():
    given = [{**POLICIES[0], "computers": {"perPerson": 3}}, POLICIES[1]]
    assert [policy.computers_per_person for policy in policies(given)] == [3, 0]
    assert policy_for("ana@acme.example", policies([{**POLICIES[0], "computers": {}}])).computers_per_person == 0


@pytest.mark.parametrize(
    ("entries", "unix", "message"),
    [
        ([{"emailDomain": "evil.example", "ou": "X"}], UNIX, "ES4PS_POLICIES[0].emailDomain evil.example is not"),
        ([{"emailDomain": "acme.example", "groups": ["Domain Admins"]}], UNIX, "ES4PS_POLICIES[0].groups:"),
        ([{"emailDomain": "acme.example", "ou": "OU=x,DC=y"}], UNIX, "ES4PS_POLICIES[0].ou:"),
        ([POLICIES[0], {"emailDomain": "ACME.example"}], UNIX, "ES4PS_POLICIES[1].emailDomain acme.example has"),
        (
            [{"emailDomain": "acme.example", "uidRange": {"start": 500000, "end": 1500000}}],
            UNIX,
            "the uidRange of acme.example overlaps ES4PS_UNIX_ATTRIBUTES.uidRange",
        ),
        (
            [
                {"emailDomain": "acme.example", "uidRange": {"start": 2000000, "end": 2999999}},
                {"emailDomain": "acme.org", "uidRange": {"start": 2999999, "end": 3999999}},
            ],
            UNIX,
            "the uidRange of acme.org overlaps the uidRange of acme.example",
        ),
        ([POLICIES[1]], {"enabled": False}, "ES4PS_POLICIES[0].uidRange needs Unix attributes"),
        ([], {**UNIX, "uidRange": {"start": 0, "end": 100}}, "ES4PS_UNIX_ATTRIBUTES.uid_range_start"),
        ([], {**UNIX, "homeDirectoryTemplate": "/home/{user}"}, "only hold the placeholder {username}"),
        ([], {**UNIX, "loginShell": "bash"}, "ES4PS_UNIX_ATTRIBUTES.login_shell"),
        ([{"emailDomain": "acme.example", "computers": 2}], UNIX, "ES4PS_POLICIES[0].computers must be an object"),
        *(
            (
                [{"emailDomain": "acme.example", "computers": {"perPerson": bad}}],
                UNIX,
                "ES4PS_POLICIES[0].computers.perPerson must be a whole number from 0 to 100",
            )
            for bad in (-1, 101, 1.5, "2", True)
        ),  # fmt: skip
    ],
)
def test_bad_policies_are_refused_naming_the_entry(entries, unix, message):
    with pytest.raises(InvalidPolicies) as caught:
        policies(entries, unix)
    assert message in str(caught.value)
