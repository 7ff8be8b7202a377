"""Allowed e-mail domains are compared as DNS names, never as patterns."""

import pytest
from es4ps_portal.accounts.email_domains import (
    InvalidDomain,
    canonical_domain,
    display_domain,
    is_allowed,
    parse_allowed_domains,
)

ALLOWED = parse_allowed_domains("acme.example, Bücher.example")


@pytest.mark.parametrize(
    "domain",
    ["acme.example", "ACME.Example", "mail.acme.example", "a.b.acme.example", "bücher.example", "BÜCHER.example",
     "xn--bcher-kva.example", "ａｃｍｅ.example", "acme．example"],
)  # fmt: skip
def test_allowed_domains_and_their_subdomains_are_admitted(domain):
    assert is_allowed(domain, ALLOWED)


@pytest.mark.parametrize(
    "domain",
    [
        "acmeXexample",  # the dot of a naive regex matches any character
        "acme.example.evil",  # a suffix-less match
        "acme.example.evil.example",
        "evil-acme.example",  # endswith without the label boundary
        "evilacme.example",
        "example",  # a parent is not a subdomain
        "аcme.example",  # Cyrillic а: a look-alike is another name
        "acme.exаmple",
        "bucher.example",  # an umlaut is not optional
        "acme.example.",  # trailing dot
        ".acme.example",
        "mail..acme.example",
        "",
        "acme example",
    ],
)
def test_tricks_and_look_alikes_are_refused(domain):
    assert not is_allowed(domain, ALLOWED)


def test_allowed_domains_are_parsed_into_canonical_unique_names():
    assert parse_allowed_domains(" acme.example,ACME.example,, bücher.example ") == (
        "acme.example",
        "xn--bcher-kva.example",
    )


@pytest.mark.parametrize("setting", ["", " , ", "acme..example", "not a domain", "acme.example,-bad-.example"])
def test_bad_settings_are_refused_naming_the_entry(setting):
    with pytest.raises(InvalidDomain):
        parse_allowed_domains(setting)


def test_canonical_and_display_forms_round_trip():
    assert canonical_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert display_domain("xn--bcher-kva.example") == "bücher.example"


def test_overlong_names_are_refused():
    with pytest.raises(InvalidDomain):
        canonical_domain(("a" * 60 + ".") * 5 + "example")
