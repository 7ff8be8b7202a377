"""The login check against the real Samba DC: LDAPS and StartTLS, the DC's certificate verified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from es4ps_portal.accounts import directory
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.samba import find_account

PASSWORD = "Direct-Horse-17"  # noqa: S105 - a test account's password


@pytest.fixture(scope="module")
def enabled_account(samba_dc) -> str:
    """An enabled account made directly in the DC (as the worker would leave it).

    Made once per DC: pytest-django runs this module's database test before the
    others, so the module (and this fixture) may be set up twice in one session.
    """
    username = "dircheck"
    if find_account(samba_dc, username) is None:
        samba_dc.samdb().newuser(username, PASSWORD)
    return username


@pytest.fixture(params=["ldaps", "starttls"])
def dc_settings(request, settings, samba_dc):
    settings.LDAP_URL = samba_dc.ldaps_url if request.param == "ldaps" else samba_dc.ldap_url
    settings.LDAP_CA_FILE = str(samba_dc.ca_file)
    settings.REALM = samba_dc.realm
    return settings


def test_the_right_password_binds_and_a_wrong_one_does_not(dc_settings, enabled_account):
    assert directory.check_password(enabled_account, PASSWORD)
    assert not directory.check_password(enabled_account, PASSWORD + "x")
    assert not directory.check_password("nobody-here", PASSWORD)


def test_an_empty_password_is_never_an_anonymous_bind(dc_settings, enabled_account):
    assert not directory.check_password(enabled_account, "")


def test_a_dc_certificate_from_another_ca_is_not_trusted(dc_settings, enabled_account, tmp_path):
    dc_settings.LDAP_CA_FILE = str(ThrowawayCA(tmp_path, "some other CA").ca_file)
    with pytest.raises(directory.DirectoryUnavailable):
        directory.check_password(enabled_account, PASSWORD)


def test_an_unreachable_dc_is_reported_as_such(settings, samba_dc, enabled_account):
    settings.LDAP_URL = "ldaps://127.0.0.1:1"
    settings.LDAP_CA_FILE = str(samba_dc.ca_file)
    with pytest.raises(directory.DirectoryUnavailable):
        directory.check_password(enabled_account, PASSWORD)


@pytest.mark.django_db
def test_a_staff_name_never_signs_in_through_the_directory(dc_settings, enabled_account):
    """Even when the directory holds an account of that name and the password is right."""
    from django.contrib.auth import authenticate
    from django.utils import timezone
    from es4ps_portal.accounts.models import User

    User.objects.create(username=enabled_account, is_staff=True, email_verified_at=timezone.now())
    assert directory.check_password(enabled_account, PASSWORD)
    assert authenticate(None, username=enabled_account, password=PASSWORD) is None
