"""The worker's pure rules for a directory it does not run: URL, privileged groups, Microsoft AD's error codes."""

from __future__ import annotations

import ldb
import pytest
from es4ps_contract.environment import SettingError
from es4ps_samba.worker.config import check_ldap_url
from es4ps_samba.worker.errors import credentials_refused, is_password_restriction
from es4ps_samba.worker.privilege import privileged_memberships

DOMAIN = "S-1-5-21-1-2-3"


@pytest.mark.parametrize(
    ("url", "ca"),
    [
        ("ldap://127.0.0.1", ""),
        ("ldap://localhost", ""),
        ("ldap://127.0.0.42", ""),
        ("ldaps://dc1.corp.example", "/ca"),
    ],
)
def test_loopback_ldap_or_ldaps_with_a_ca_is_accepted(url, ca):
    check_ldap_url(url, ca)


@pytest.mark.parametrize(
    ("url", "ca", "said"),
    [
        ("ldap://dc1.corp.example", "", "ldaps:// only"),
        ("ldap://192.0.2.10", "/ca", "ldaps:// only"),
        ("ldaps://dc1.corp.example", "", "ES4PS_LDAP_CA_FILE"),
        ("http://dc1.corp.example", "/ca", "ldaps:// only"),
    ],
)
def test_plain_ldap_beyond_the_pod_and_ldaps_without_a_ca_are_refused(url, ca, said):
    with pytest.raises(SettingError, match=said):
        check_ldap_url(url, ca)


def test_privileged_groups_are_named_from_the_token():
    token = [
        f"{DOMAIN}-513",  # Domain Users
        f"{DOMAIN}-512",  # Domain Admins
        "S-1-5-32-548",  # Account Operators
        "S-1-5-32-545",  # Users
        "S-1-5-21-9-9-9-512",  # Domain Admins of another domain: not this one's
        "S-1-1-0",
    ]
    assert privileged_memberships(token, DOMAIN) == ["Account Operators", "Domain Admins"]
    assert privileged_memberships([f"{DOMAIN}-500"], DOMAIN) == ["the built-in Administrator"]
    assert privileged_memberships([f"{DOMAIN}-1105", f"{DOMAIN}-513", "S-1-5-11"], DOMAIN) == []


def test_a_password_policy_refusal_is_known_by_microsofts_code_in_either_wording():
    microsoft = (
        "0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 (CONSTRAINT_ATT_TYPE),"
        " data 0, Att 9005a (unicodePwd)\n"
    )
    samba = "0000052D: Constraint violation - check_password_restrictions: the password is too short"
    assert is_password_restriction(ldb.ERR_CONSTRAINT_VIOLATION, microsoft)
    assert is_password_restriction(ldb.ERR_CONSTRAINT_VIOLATION, samba)
    # Not the person's fault: an unencrypted connection, or another constraint.
    unencrypted = "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0"
    assert not is_password_restriction(ldb.ERR_UNWILLING_TO_PERFORM, unencrypted)
    assert not is_password_restriction(ldb.ERR_CONSTRAINT_VIOLATION, "00002082: AtrErr: value out of range")


def test_a_refused_bind_is_told_from_an_unreachable_directory():
    assert credentials_refused(ldb.LdbError(ldb.ERR_INVALID_CREDENTIALS, "80090308: LdapErr: ... data 52e"))
    assert credentials_refused(
        ldb.LdbError(ldb.ERR_OPERATIONS_ERROR, "LDAP client internal error: NT_STATUS_LOGON_FAILURE")
    )
    assert not credentials_refused(
        ldb.LdbError(ldb.ERR_OPERATIONS_ERROR, "LDAP client internal error: NT_STATUS_CONNECTION_REFUSED")
    )
