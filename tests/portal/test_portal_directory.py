"""The login check against the real Samba DC: LDAPS and StartTLS, the DC's certificate verified, and what a
refused bind says (an expired password, a locked account); and against a directory ES4PS does not run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ldb
import pytest
from es4ps_portal.accounts import directory
from es4ps_portal.accounts.directory import Outcome
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.outside_ad import DELEGATED_OU
from es4ps_testkit.registration import unique_username
from es4ps_testkit.samba import find_account, password_authenticates

PASSWORD = "Direct-Horse-17"  # noqa: S105 - a test account's password


@pytest.fixture(scope="module")
def enabled_account(samba_dc) -> str:
    """An enabled account made directly in the DC (as the worker would leave it)."""
    username = unique_username("dir")  # a fresh one, also when pytest sets this fixture up again
    samba_dc.samdb().newuser(username, PASSWORD)
    return username


@pytest.fixture(params=["ldaps", "starttls"])
def dc_settings(request, settings, samba_dc):
    settings.LDAP_URL = samba_dc.ldaps_url if request.param == "ldaps" else samba_dc.ldap_url
    settings.LDAP_CA_FILE = str(samba_dc.ca_file)
    settings.REALM = samba_dc.realm
    return settings


def outcome(username: str, password: str) -> Outcome:
    return directory.bind(username, password).outcome


def test_the_right_password_binds_and_a_wrong_one_does_not(dc_settings, enabled_account):
    assert outcome(enabled_account, PASSWORD) is Outcome.ACCEPTED
    assert outcome(enabled_account, PASSWORD + "x") is Outcome.WRONG
    assert outcome("nobody-here", PASSWORD) is Outcome.WRONG


def test_a_bind_reads_when_the_password_was_set(dc_settings, enabled_account):
    set_at = directory.bind(enabled_account, PASSWORD).password_set_at
    assert set_at is not None
    assert datetime.now(UTC) - timedelta(hours=1) < set_at <= datetime.now(UTC)


def test_an_empty_password_is_never_an_anonymous_bind(dc_settings, enabled_account):
    assert outcome(enabled_account, "") is Outcome.WRONG


def bad_password_count(dc, username: str) -> int:
    """The DC's own count of the account's wrong passwords (badPwdCount is kept per DC, never replicated)."""
    return int(find_account(dc, username, attrs=["badPwdCount"])["badPwdCount"][0])


def made_on_alone(dc, other, prefix: str) -> str:
    """A new account made on `dc` that `other`, its inbound replication off, does not hold. A pull `other` had
    begun before the option was set can still bring one in (seen on a loaded machine): then a new name is tried."""
    for _ in range(3):
        username = unique_username(prefix)
        dc.samdb().newuser(username, PASSWORD)
        if not password_authenticates(dc, username, PASSWORD, address=other.address):
            return username
    pytest.fail(f"{other.hostname} pulled each new account from {dc.hostname} though its inbound replication is off")


def test_a_password_a_dc_has_not_replicated_yet_is_checked_on_the_other_dcs(settings, samba_dc, second_dc):
    """The DCs' Service may pick a DC that has not pulled a new account yet (one just restarted, as in an upgrade,
    and the account made by another DC's worker): the password it calls wrong is checked on each other DC, once
    each, before the portal says no."""
    settings.LDAP_CA_FILE, settings.REALM = str(samba_dc.ca_file), samba_dc.realm
    second_dc.inbound_replication(False)  # on_first stays on the first DC (dc0, the PDC emulator) alone
    on_first = made_on_alone(samba_dc, second_dc, "pdc")
    settings.LDAP_URL, settings.LDAP_DC_URLS = second_dc.ldaps_url, ()
    assert outcome(on_first, PASSWORD) is Outcome.WRONG  # the DC the Service picked, alone

    settings.LDAP_DC_URLS = (samba_dc.ldaps_url, second_dc.ldaps_url)
    accepted = directory.bind(on_first, PASSWORD)
    assert accepted.outcome is Outcome.ACCEPTED and accepted.password_set_at is not None
    assert outcome(on_first, PASSWORD + "x") is Outcome.WRONG
    assert bad_password_count(samba_dc, on_first) == 1  # asked once, though the list names it
    assert outcome("nobody-here", PASSWORD) is Outcome.WRONG

    # the other way round: made on the second DC, which the first has not pulled from; the Service picks the first
    samba_dc.inbound_replication(False)
    try:
        on_second = made_on_alone(second_dc, samba_dc, "dc2")
        settings.LDAP_URL = samba_dc.ldaps_url
        assert outcome(on_second, PASSWORD) is Outcome.ACCEPTED
    finally:
        samba_dc.inbound_replication(True)


def test_a_wrong_password_counts_once_on_the_dc_that_answered(settings, samba_dc, username):
    """When the Service picked a DC the list names too, its answer is not asked for again: every wrong password
    would count twice there, and lock the account out after half the tries the policy allows."""
    samba_dc.samdb().newuser(username, PASSWORD)
    settings.LDAP_URL, settings.LDAP_DC_URLS = samba_dc.ldaps_url, (samba_dc.ldaps_url,)
    settings.LDAP_CA_FILE, settings.REALM = str(samba_dc.ca_file), samba_dc.realm
    for attempt in (1, 2):
        assert outcome(username, "Wrong-" + PASSWORD) is Outcome.WRONG
        assert bad_password_count(samba_dc, username) == attempt


def set_attribute(samba_dc, username: str, attribute: str, value: str) -> None:
    samdb = samba_dc.samdb()
    message = ldb.Message(find_account(samba_dc, username, attrs=[]).dn)
    message[attribute] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, attribute)
    samdb.modify(message)


def test_an_expired_password_is_told_only_to_who_knows_it(dc_settings, samba_dc, username):
    """pwdLastSet 0 ("must change at the next sign-in") makes the DC answer as for an expired password (data 773;
    532 after maxAgeDays, which Samba does not allow shorter than a day)."""
    samba_dc.samdb().newuser(username, PASSWORD)
    set_attribute(samba_dc, username, "pwdLastSet", "0")

    assert outcome(username, PASSWORD) is Outcome.EXPIRED
    assert outcome(username, PASSWORD + "x") is Outcome.WRONG


def test_a_locked_account_is_told_as_locked(dc_settings, samba_dc, username):
    """The session DC runs the default policy: locked after 10 wrong passwords in a row."""
    samba_dc.samdb().newuser(username, PASSWORD)
    for _attempt in range(10):
        assert outcome(username, "Wrong-" + PASSWORD) is Outcome.WRONG
    assert outcome(username, PASSWORD) is Outcome.LOCKED


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [
        ("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1", Outcome.WRONG),
        ("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 532, v1db1", Outcome.EXPIRED),
        ("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1", Outcome.EXPIRED),
        ("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1", Outcome.LOCKED),
        ("", Outcome.WRONG),
    ],
)
def test_refused_binds_are_sorted_by_their_sub_code(diagnostic, expected):
    assert directory.refusal_outcome(diagnostic) is expected


def test_a_dc_certificate_from_another_ca_is_not_trusted(dc_settings, enabled_account, tmp_path):
    dc_settings.LDAP_CA_FILE = str(ThrowawayCA(tmp_path, "some other CA").ca_file)
    with pytest.raises(directory.DirectoryUnavailable):
        directory.bind(enabled_account, PASSWORD)


def test_an_unreachable_dc_is_reported_as_such(settings, samba_dc, enabled_account):
    settings.LDAP_URL = "ldaps://127.0.0.1:1"
    settings.LDAP_CA_FILE = str(samba_dc.ca_file)
    with pytest.raises(directory.DirectoryUnavailable):
        directory.bind(enabled_account, PASSWORD)


@pytest.mark.django_db
def test_a_staff_name_never_signs_in_through_the_directory(dc_settings, enabled_account):
    """Even when the directory holds an account of that name and the password is right."""
    from django.contrib.auth import authenticate
    from django.utils import timezone
    from es4ps_portal.accounts.models import User

    User.objects.create(username=enabled_account, is_staff=True, email_verified_at=timezone.now())
    assert outcome(enabled_account, PASSWORD) is Outcome.ACCEPTED
    assert authenticate(None, username=enabled_account, password=PASSWORD) is None


@pytest.fixture
def outside_settings(settings, outside_ad):
    """The portal of a domain in external mode: sign-ins checked against the organisation's directory.

    By its address: this test process has no name for it, and its certificate carries the address too (the
    worker, which does resolve its name, is checked by name in tests/directory/test_external_directory.py).
    """
    settings.LDAP_URL = f"ldaps://{outside_ad.address}:636"
    settings.LDAP_CA_FILE = str(outside_ad.ca_file)
    settings.REALM = outside_ad.realm
    return settings


def test_sign_in_is_checked_against_an_outside_directory(outside_settings, outside_ad):
    username = unique_username("ext")
    outside_ad.add_user(username, PASSWORD, ou=DELEGATED_OU)

    assert outcome(username, PASSWORD) is Outcome.ACCEPTED
    assert outcome(username, PASSWORD + "x") is Outcome.WRONG
    assert directory.bind(username, PASSWORD).password_set_at is not None
