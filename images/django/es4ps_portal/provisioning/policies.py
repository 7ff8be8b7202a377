"""Which policy a registration falls under, by its e-mail domain, and what its account gets from it.

`spec.policies` (ES4PS_POLICIES) gives e-mail domains an OU under the managed
OU, groups and, optionally, their own uid range and how many computers each
of their people may pre-stage (`computers.perPerson`); `spec.directory.unix`
(ES4PS_UNIX_ATTRIBUTES) turns Unix attributes on. The most specific domain
wins: an address at students.acme.example takes the policy of
students.acme.example over that of acme.example; an address no policy covers
goes into the managed OU itself, with no groups.

Both settings are JSON in the CRD's shape and are checked once, when the
portal starts, with the task contract's own rules (es4ps_contract.policies):
a bad entry stops the portal with its place named, instead of failing tasks
later. The API server refuses the same mistakes first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from es4ps_contract.policies import UnixAttributes, normalize_groups, normalize_ou
from es4ps_contract.validation import InvalidField

from es4ps_portal.accounts.email_domains import InvalidDomain, canonical_domain, is_allowed

# The primary group when spec.directory.unix names none: Domain Users' id under the same mapping
# (RID 513 + the range's start, what winbind's idmap_rid gives it).
DOMAIN_USERS_RID = 513
USERNAME_PLACEHOLDER = "{username}"
# spec.policies[].computers.perPerson's bounds (the CRD's).
MAX_COMPUTERS_PER_PERSON = 100


class InvalidPolicies(ValueError):
    """ES4PS_POLICIES or ES4PS_UNIX_ATTRIBUTES breaks a rule; the message names the entry."""


@dataclass(frozen=True)
class Policy:
    email_domain: str  # canonical (IDNA A-labels, lower case)
    ou: str
    groups: tuple[str, ...]
    uid_range: tuple[int, int] | None
    computers_per_person: int = 0


@dataclass(frozen=True)
class UnixSettings:
    login_shell: str
    home_directory_template: str
    uid_range: tuple[int, int]
    gid_number: int


@dataclass(frozen=True)
class Placement:
    """What a new account gets: the policy fields of its create task."""

    ou: str
    groups: tuple[str, ...]
    unix: dict[str, Any] | None


def _json(text: str, name: str, kind: type) -> Any:
    try:
        value = json.loads(text) if text else kind()
    except ValueError:
        raise InvalidPolicies(f"{name} must be JSON") from None
    if not isinstance(value, kind):
        raise InvalidPolicies(f"{name} must be a JSON {'list' if kind is list else 'object'}")
    return value


def _uid_range(value: Any, name: str) -> tuple[int, int]:
    """A {start, end} range of whole numbers (the contract checks the bounds)."""
    if not isinstance(value, dict) or not {"start", "end"} <= set(value):
        raise InvalidPolicies(f"{name} needs start and end")
    if not all(isinstance(value[key], int) and not isinstance(value[key], bool) for key in ("start", "end")):
        raise InvalidPolicies(f"{name}: start and end must be whole numbers")
    return value["start"], value["end"]


def _computers_per_person(entry: dict, name: str) -> int:
    """computers.perPerson: a whole number from 0 (none, the default) to MAX_COMPUTERS_PER_PERSON."""
    computers = entry.get("computers", {})
    if not isinstance(computers, dict):
        raise InvalidPolicies(f"{name}.computers must be an object")
    count = computers.get("perPerson", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COMPUTERS_PER_PERSON:
        raise InvalidPolicies(f"{name}.computers.perPerson must be a whole number from 0 to {MAX_COMPUTERS_PER_PERSON}")
    return count


def _checked_unix(unix: UnixSettings, uid_range: tuple[int, int], name: str) -> None:
    """The contract's own check of what a create task will carry (a sample username in the home directory)."""
    try:
        UnixAttributes.parse(_unix_fields(unix, uid_range, "sample"), name)
    except InvalidField as exc:
        raise InvalidPolicies(str(exc)) from None


def _unix_fields(unix: UnixSettings, uid_range: tuple[int, int], username: str) -> dict[str, Any]:
    return {
        "uid_range_start": uid_range[0],
        "uid_range_end": uid_range[1],
        "gid_number": unix.gid_number,
        "login_shell": unix.login_shell,
        "home_directory": unix.home_directory_template.replace(USERNAME_PLACEHOLDER, username),
    }


def parse_unix(text: str) -> UnixSettings | None:
    """ES4PS_UNIX_ATTRIBUTES (spec.directory.unix) -> UnixSettings, or None when Unix attributes are off."""
    given = _json(text, "ES4PS_UNIX_ATTRIBUTES", dict)
    if not given.get("enabled"):
        return None
    name = "ES4PS_UNIX_ATTRIBUTES"
    uid_range = _uid_range(given.get("uidRange"), f"{name}.uidRange")
    template = given.get("homeDirectoryTemplate", "/home/{username}")
    if not isinstance(template, str) or "{" in template.replace(USERNAME_PLACEHOLDER, ""):
        raise InvalidPolicies(f"{name}.homeDirectoryTemplate may only hold the placeholder {USERNAME_PLACEHOLDER}")
    gid = given.get("gidNumber")
    unix = UnixSettings(
        login_shell=given.get("loginShell", "/bin/bash"),
        home_directory_template=template,
        uid_range=uid_range,
        gid_number=uid_range[0] + DOMAIN_USERS_RID if gid is None else gid,
    )
    _checked_unix(unix, uid_range, name)
    return unix


def _overlap(first: tuple[int, int], second: tuple[int, int]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


def parse_policies(text: str, allowed_domains: tuple[str, ...], unix: UnixSettings | None) -> tuple[Policy, ...]:
    """ES4PS_POLICIES (spec.policies) -> policies; raises InvalidPolicies naming the first bad entry."""
    policies: dict[str, Policy] = {}
    for index, entry in enumerate(_json(text, "ES4PS_POLICIES", list)):
        name = f"ES4PS_POLICIES[{index}]"
        if not isinstance(entry, dict):
            raise InvalidPolicies(f"{name} must be an object")
        try:
            domain = canonical_domain(str(entry.get("emailDomain", "")))
        except InvalidDomain:
            raise InvalidPolicies(f"{name}.emailDomain is not a domain name") from None
        if not is_allowed(domain, allowed_domains):
            raise InvalidPolicies(f"{name}.emailDomain {domain} is not one of the allowed e-mail domains")
        if domain in policies:
            raise InvalidPolicies(f"{name}.emailDomain {domain} has a policy already")
        try:
            ou = normalize_ou(entry.get("ou", ""), f"{name}.ou")
            groups = normalize_groups(entry.get("groups", []), f"{name}.groups")
        except InvalidField as exc:
            raise InvalidPolicies(str(exc)) from None
        uid_range = None
        if "uidRange" in entry:
            if unix is None:
                raise InvalidPolicies(f"{name}.uidRange needs Unix attributes (spec.directory.unix.enabled)")
            uid_range = _uid_range(entry["uidRange"], f"{name}.uidRange")
            _checked_unix(unix, uid_range, f"{name}.uidRange")
        policies[domain] = Policy(domain, ou, groups, uid_range, _computers_per_person(entry, name))
    _refuse_overlapping_ranges(policies.values(), unix)
    return tuple(policies.values())


def _refuse_overlapping_ranges(policies, unix: UnixSettings | None) -> None:
    """uid = range start + RID: ranges that overlap could give two accounts one uid."""
    if unix is None:
        return
    ranges = [("ES4PS_UNIX_ATTRIBUTES.uidRange", unix.uid_range)]
    ranges += [(f"the uidRange of {p.email_domain}", p.uid_range) for p in policies if p.uid_range]
    for index, (first_name, first) in enumerate(ranges):
        for second_name, second in ranges[index + 1 :]:
            if _overlap(first, second):
                raise InvalidPolicies(f"{second_name} overlaps {first_name}")


def policy_for(email: str, policies: tuple[Policy, ...]) -> Policy | None:
    """The policy of the address's domain: the most specific one that covers it, or None."""
    try:
        domain = canonical_domain(email.rpartition("@")[2])
    except InvalidDomain:
        return None
    covering = [p for p in policies if domain == p.email_domain or domain.endswith("." + p.email_domain)]
    return max(covering, key=lambda p: len(p.email_domain), default=None)


def computers_per_person(email: str) -> int:
    """How many computers the person registered with `email` may pre-stage as their own (0: none)."""
    policy = policy_for(email, settings.POLICIES)
    return policy.computers_per_person if policy else 0


def placement(username: str, email: str) -> Placement:
    """What the account of `username` registered with `email` gets, under the settings in force."""
    policy = policy_for(email, settings.POLICIES)
    unix = settings.UNIX_ATTRIBUTES
    unix_fields = None
    if unix is not None:
        uid_range = policy.uid_range if policy and policy.uid_range else unix.uid_range
        unix_fields = _unix_fields(unix, uid_range, username)
    if policy is None:
        return Placement("", (), unix_fields)
    return Placement(policy.ou, policy.groups, unix_fields)
