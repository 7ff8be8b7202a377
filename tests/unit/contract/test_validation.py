"""Field rules: deliberate normalisation, clear refusals."""

import pytest
from es4ps_contract.validation import InvalidField, normalize_email, normalize_name, normalize_username


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ana", "ana"), ("  Ana.Lopez ", "ana.lopez"), ("j-doe_2", "j-doe_2"), ("a" * 20, "a" * 20), ("x1", "x1")],
)
def test_usernames_are_stripped_and_lower_cased(raw, expected):
    assert normalize_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is required"),
        ("a" * 21, "at most 20 characters"),
        ("*)(objectClass=*", "may contain only"),
        ("ana\\2a", "may contain only"),
        ("josé", "may contain only"),
        ("-ana", "must start and end"),
        ("ana.", "must start and end"),
        ("12345", "at least one letter"),
        ("Administrator", "is reserved"),
        ("krbtgt", "is reserved"),
        (42, "must be a string"),
    ],
)
def test_bad_usernames_are_refused_with_the_reason(raw, message):
    with pytest.raises(InvalidField, match=message) as caught:
        normalize_username(raw)
    assert caught.value.field == "username"


def test_names_are_put_in_nfc_form_not_mangled():
    decomposed = "Zoe\u0308 N\u0303un\u0303ez"
    assert normalize_name(decomposed, "given_name") == "Zoë Ñuñez"


@pytest.mark.parametrize("raw", ["Ana\u200bLopez", "Ana\x00", "Evil\u202eName", "Tab\there"])
def test_invisible_and_control_characters_in_names_are_refused(raw):
    with pytest.raises(InvalidField, match="control or invisible"):
        normalize_name(raw, "surname")


def test_name_length_is_bounded():
    assert normalize_name("A" * 64, "surname") == "A" * 64
    with pytest.raises(InvalidField, match="at most 64"):
        normalize_name("A" * 65, "surname")


def test_emails_keep_the_local_part_and_lower_case_the_domain():
    assert normalize_email(" Ana.Lopez@ACME.Example ") == "Ana.Lopez@acme.example"


@pytest.mark.parametrize("raw", ["", "ana", "@acme.example", "ana@", "a b@acme.example", "a@b@c", "x" * 65 + "@a.b"])
def test_bad_emails_are_refused(raw):
    with pytest.raises(InvalidField):
        normalize_email(raw)
