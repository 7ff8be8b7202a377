"""`make demo`'s closing instructions come from the domain it deployed, not from a text written beside it."""

from __future__ import annotations

import copy
import json

import yaml
from es4ps_contract.passwords import PasswordPolicy
from es4ps_devtools import demo
from es4ps_devtools.paths import EXAMPLE
from es4ps_testkit.domains import domain_body

EXAMPLE_DOMAIN = yaml.safe_load(EXAMPLE.read_text())


def deployed(**directory_changes) -> dict:
    """The example as the demo deploys it (a *.localhost host) and the API server returns it (CRD defaults), Ready."""
    spec = copy.deepcopy(EXAMPLE_DOMAIN["spec"])
    spec["portal"]["host"] = "accounts.acme.localhost"
    spec["directory"].update(directory_changes)
    domain = domain_body(spec)
    domain["status"] = {"phase": "Ready", "domainControllers": "1/1"}
    return domain


def suggested_password(text: str) -> str:
    return text.split('like "', 1)[1].split('"', 1)[0]


def test_the_instructions_follow_the_examples_password_policy():
    text = demo.instructions(deployed(), "/ca.crt", "/staff", "10.0.0.1", 42)
    policy = deployed()["spec"]["directory"]["passwordPolicy"]
    assert policy["minLength"] == 14 and policy["complexity"] is False
    assert "At least 14 characters" in text
    assert "three of these groups" not in text and "3 of" not in text
    assert PasswordPolicy.from_json(json.dumps(policy)).problems(suggested_password(text), "ada") == []


def test_the_instructions_follow_a_policy_asking_for_composition():
    policy = {**deployed()["spec"]["directory"]["passwordPolicy"], "minLength": 12, "complexity": True}
    text = demo.instructions(deployed(passwordPolicy=policy), "/ca.crt", "/staff", "10.0.0.1", 42)
    assert "At least 12 characters" in text and "three of these groups" in text
    password = suggested_password(text)
    assert PasswordPolicy.from_json(json.dumps(policy)).problems(password, "ada") == []


def test_the_instructions_name_the_domains_portal_addresses_realm_and_staff_user():
    domain = deployed()
    domain["spec"]["allowedEmailDomains"] = ["campus.example"]
    domain["spec"]["realm"] = "AD.CAMPUS.EXAMPLE"
    domain["spec"]["portal"]["staffUser"]["username"] = "helpdesk"
    text = demo.instructions(domain, "/ca.crt", "/staff", "10.0.0.1", 42)
    assert "open https://accounts.acme.localhost/" in text
    assert "@campus.example, e.g. ada@campus.example" in text and "@acme.example" not in text
    assert "%<password>' -b" in text and "@AD.CAMPUS.EXAMPLE" in text
    assert "as helpdesk, password in /staff" in text
