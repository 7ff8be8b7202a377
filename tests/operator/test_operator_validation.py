"""The API server refuses bad ES4PSDomains with a message naming the field (the CRD's schema and CEL rules)."""

from __future__ import annotations

import copy

import pytest
import yaml
from es4ps_testkit.domains import EXAMPLE, example_domain

pytestmark = pytest.mark.cluster


def without_netbios(spec):
    spec.pop("netbiosName")


# (what is wrong, how to break the example's spec, the field the refusal must name)
INVALID = [
    ("realm with one label", lambda s: s.update(realm="localhost"), "spec.realm"),
    ("realm of digits", lambda s: s.update(realm="ad.123"), "spec.realm"),
    ("realm with a space", lambda s: s.update(realm="AD.ACME EXAMPLE"), "spec.realm"),
    ("NetBIOS name of 16 characters", lambda s: s.update(netbiosName="ABCDEFGHIJKLMNOP"), "spec.netbiosName"),
    ("NetBIOS name with a dot", lambda s: s.update(netbiosName="AC.ME"), "spec.netbiosName"),
    (
        "long first realm label without NetBIOS name",
        lambda s: (without_netbios(s), s.update(realm="averyverylongfirstlabel.example")),
        "spec.netbiosName",
    ),
    ("no allowed e-mail domain", lambda s: s.update(allowedEmailDomains=[]), "spec.allowedEmailDomains"),
    (
        "e-mail domain that is no DNS name",
        lambda s: s.update(allowedEmailDomains=["acme example"]),
        "spec.allowedEmailDomains[0]",
    ),
    ("portal host that is no DNS name", lambda s: s["portal"].update(host="https://accounts"), "spec.portal.host"),
    ("no portal replica", lambda s: s["portal"].update(replicas=0), "spec.portal.replicas"),
    ("two portal replicas on SQLite", lambda s: s["portal"].update(replicas=2), "spec.portal.replicas"),
    ("six domain controllers", lambda s: s["directory"].update(replicas=6), "spec.directory.replicas"),
    (
        "storage size that is no quantity",
        lambda s: s["directory"]["storage"].update(size="lots"),
        "spec.directory.storage.size",
    ),
    ("negative storage size", lambda s: s["broker"]["storage"].update(size="-1Gi"), "spec.broker.storage.size"),
    ("unknown network mode", lambda s: s["directory"].update(networkMode="Bridge"), "spec.directory.networkMode"),
    (
        "advertised address that is no IP",
        lambda s: s["directory"].update(advertisedAddresses=["dc0.example"]),
        "spec.directory.advertisedAddresses[0]",
    ),
    (
        "more advertised addresses than DCs",
        lambda s: s["directory"].update(advertisedAddresses=["192.0.2.1", "192.0.2.2"]),
        "spec.directory.advertisedAddresses",
    ),
    ("unknown deletion policy", lambda s: s.update(deletionPolicy="Keep"), "spec.deletionPolicy"),
    (
        "registrations kept shorter than their mail works",
        lambda s: s["portal"].update(registration={"linkValidityHours": 48, "unconfirmedRetentionHours": 24}),
        "spec.portal.registration.unconfirmedRetentionHours",
    ),
    (
        "links that never work",
        lambda s: s["portal"].update(registration={"linkValidityHours": 0}),
        "spec.portal.registration.linkValidityHours",
    ),
    ("unknown SMTP security", lambda s: s["portal"]["smtp"].update(security="ssl"), "spec.portal.smtp.security"),
    ("SMTP port out of range", lambda s: s["portal"]["smtp"].update(port=70000), "spec.portal.smtp.port"),
    ("unknown language", lambda s: s["portal"].update(defaultLanguage="fr"), "spec.portal.defaultLanguage"),
    ("language in lower case", lambda s: s["portal"].update(defaultLanguage="pt-br"), "spec.portal.defaultLanguage"),
    (
        "passwords shorter than 8",
        lambda s: s["directory"]["passwordPolicy"].update(minLength=6),
        "spec.directory.passwordPolicy.minLength",
    ),
    (
        "a minimum length Active Directory cannot hold",
        lambda s: s["directory"]["passwordPolicy"].update(minLength=20),
        "spec.directory.passwordPolicy.minLength",
    ),
    (
        "a lockout only an administrator lifts",
        lambda s: s["directory"]["passwordPolicy"].update(lockoutDurationMinutes=0),
        "spec.directory.passwordPolicy.lockoutDurationMinutes",
    ),
    (
        "a minimum age not below the maximum",
        lambda s: s["directory"]["passwordPolicy"].update(maxAgeDays=30, minAgeDays=30),
        "spec.directory.passwordPolicy.minAgeDays",
    ),
    (
        "a reminder not before the password expires",
        lambda s: (
            s["directory"]["passwordPolicy"].update(maxAgeDays=30),
            s["portal"].update(passwordExpiryReminderDays=[30, 3]),
        ),
        "spec.portal.passwordExpiryReminderDays",
    ),
]


@pytest.mark.parametrize(("problem", "break_spec", "field"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_spec_is_refused_naming_the_field(es4ps_crd, domain_namespace, problem, break_spec, field):
    domain = example_domain(domain_namespace)
    break_spec(domain["spec"])
    refused = es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain), check=False)
    assert refused.returncode != 0, f"{problem}: accepted"
    assert f"{field}:" in refused.stderr or f"{field} " in refused.stderr, refused.stderr
    assert "is invalid" in refused.stderr


def test_a_too_long_name_is_refused(es4ps_crd, domain_namespace):
    domain = example_domain(domain_namespace)
    domain["metadata"]["name"] = "a" * 41
    refused = es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain), check=False)
    assert refused.returncode != 0
    assert "metadata.name must be at most 40 characters" in refused.stderr


@pytest.mark.parametrize("example", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_is_accepted(es4ps_crd, domain_namespace, example):
    domain = yaml.safe_load(example.read_text())
    domain["metadata"]["namespace"] = domain_namespace
    es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain))


IMMUTABLE = [
    ("realm", lambda s: s.update(realm="AD.OTHER.EXAMPLE"), "spec.realm", "realm is immutable"),
    ("NetBIOS name", lambda s: s.update(netbiosName="OTHER"), "spec.netbiosName", "netbiosName is immutable"),
    (
        "directory storage",
        lambda s: s["directory"]["storage"].update(size="10Gi"),
        "spec.directory.storage",
        "directory.storage is immutable",
    ),
    (
        "portal storage class",
        lambda s: s["portal"]["storage"].update(storageClassName="fast"),
        "spec.portal.storage",
        "portal.storage is immutable",
    ),
]


@pytest.mark.parametrize(("what", "change", "field", "message"), IMMUTABLE, ids=[case[0] for case in IMMUTABLE])
def test_immutable_fields_cannot_change(es4ps_crd, domain_namespace, what, change, field, message):
    # No operator serves this namespace: the object is only stored.
    domain = example_domain(domain_namespace)
    es4ps_crd.apply(yaml.safe_dump(domain))
    changed = copy.deepcopy(domain)
    change(changed["spec"])
    refused = es4ps_crd.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(changed), check=False)
    assert refused.returncode != 0, f"changing the {what} was accepted"
    assert field in refused.stderr and message in refused.stderr, refused.stderr
