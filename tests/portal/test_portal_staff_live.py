"""Staff act through the admin and the directory follows; a policy places a registration. With the real processes.

`es4ps-portal serve` and `consume`, the real worker and Samba DC, RabbitMQ with
mutual TLS and the SMTP server. The live portal's policies (es4ps_testkit's
portal plugin): students.acme.example -> OU Students, groups students and
wifi; Unix attributes for everybody.
"""

from __future__ import annotations

import ldb
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.live_portal import STAFF_USERNAME, staff_action
from es4ps_testkit.portal_client import PortalClient
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_client_ip
from es4ps_testkit.samba import account_is_enabled, directory_account, find_account, password_authenticates
from samba.dcerpc import security
from samba.ndr import ndr_unpack

NEW_PASSWORD = "Fourth-Horse-46"  # noqa: S105 - a test password


def last_task_shown(staff: PortalClient, username: str) -> str:
    return staff.get("/admin/accounts/user/", params={"q": username}).text


def test_staff_disable_enable_reset_and_delete_an_account_and_the_directory_follows(
    live_portal, mail_catcher, samba_dc, username
):
    person = live_portal.ready_person(mail_catcher, username)
    staff = live_portal.signed_in_staff()
    pk = live_portal.user_pk(username)

    assert "done for 1 account" in staff_action(staff, "disable", username, pk)
    wait_until(lambda: "disable the account: done" in last_task_shown(staff, username), 60, "the disable's result")
    assert not account_is_enabled(directory_account(samba_dc, username))
    assert not password_authenticates(samba_dc, username, GOOD_PASSWORD)
    assert person.status()["state"] == "disabled"

    staff_action(staff, "enable", username, pk)
    wait_until(lambda: "enable the account: done" in last_task_shown(staff, username), 60, "the enable's result")
    assert password_authenticates(samba_dc, username, GOOD_PASSWORD)

    # A reset: the person gets a link and chooses the password; staff never see or type it.
    assert "done for 1 account" in staff_action(staff, "send_password_reset_mail", username, pk)
    link = mail_catcher.wait_for(f"{username}@{ALLOWED_DOMAIN}", count=2).link("/password/reset/confirm/")
    person.reset_password(link, NEW_PASSWORD)
    wait_until(lambda: password_authenticates(samba_dc, username, NEW_PASSWORD), 60, "the new password to work")

    staff_action(staff, "delete", username, pk)
    wait_until(lambda: live_portal.user_pk(username) is None, 60, "the portal to forget the deleted account")
    assert find_account(samba_dc, username) is None
    # The audit trail keeps what happened, in order, with who did it.
    trail = staff.get("/admin/audit/auditrecord/", params={"q": username}).text
    for shown in ("disable the account", "enable the account", "send a password-reset mail", "reset the password",
                  "delete the account", "directory task finished", "register", "staff"):  # fmt: skip
        assert shown in trail, shown
    assert NEW_PASSWORD not in live_portal.logs() and NEW_PASSWORD not in trail


def test_a_student_gets_the_students_ou_groups_and_unix_attributes(live_portal, mail_catcher, samba_dc, username):
    live_portal.ready_person(mail_catcher, username, domain=f"students.{ALLOWED_DOMAIN}")

    attrs = ["objectSid", "memberOf", "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory"]
    account = find_account(samba_dc, username, attrs=attrs)
    assert str(account.dn).lower().startswith(f"cn={username},ou=students,ou=es4ps,")
    groups = {str(dn).split(",", 1)[0].lower() for dn in account["memberOf"]}
    assert groups == {"cn=students", "cn=wifi"}
    rid = int(str(ndr_unpack(security.dom_sid, account["objectSid"][0])).rsplit("-", 1)[1])
    assert int(account["uidNumber"][0]) == 10000 + rid
    assert int(account["gidNumber"][0]) == 10000 + 513  # Domain Users under the same RID mapping
    assert (str(account["loginShell"][0]), str(account["unixHomeDirectory"][0])) == ("/bin/bash", f"/home/{username}")
    # The groups live in the managed OU; nothing was put outside it.
    wifi = samba_dc.samdb().search(samba_dc.base_dn, expression="(sAMAccountName=wifi)", scope=ldb.SCOPE_SUBTREE)
    assert str(wifi[0].dn).lower().startswith("cn=wifi,ou=es4ps,")
    assert password_authenticates(samba_dc, username, GOOD_PASSWORD)


def test_the_live_admin_wants_a_second_factor_and_a_client_in_its_ranges(live_portal):
    """The shared live portal admits the tests' range only (es4ps_testkit's portal plugin): an outsider holding
    the staff password meets 403, an insider with the password alone stays at the form; both attempts that reach
    the form are in the audit trail, as is the sign-in with the TOTP code."""
    outsider = live_portal.client("203.0.113.77")
    assert outsider.get("/admin/login/").status_code == 403
    assert outsider.get("/register/").status_code == 200
    insider = live_portal.client(unique_client_ip())
    password_only = insider.post(
        "/admin/login/?next=/admin/",
        {"username": STAFF_USERNAME, "password": live_portal.staff_password},
        form_page="/admin/login/",
    )
    assert "/admin/login/" in password_only.url and insider.get("/admin/").url.endswith("/admin/login/?next=/admin/")
    staff = live_portal.signed_in_staff()
    trail = staff.get("/admin/audit/auditrecord/", params={"action__exact": "staff_sign_in", "q": STAFF_USERNAME})
    assert "right password; the second factor" in trail.text and "password and second factor" in trail.text
    assert "203.0.113.77" not in trail.text
