"""Nothing reaches the directory before the address is proven, with the real processes of every component.

`es4ps-portal serve` and `consume`, the real directory worker, a Samba AD DC,
RabbitMQ with mutual TLS and an SMTP server. A registration's "create user"
waits in the portal's outbox until the person confirms the address: an
unconfirmed registration takes no RID, uid, name or group in the directory,
expires without a trace there, and an outsider who knows someone's name and
address cannot make the worker touch a legacy account of theirs. A
registration the previous release made (its account created, disabled, at
once) still completes when confirmed after the upgrade, and expires as before.

How "nothing happened" is shown: a person confirmed afterwards (the control)
has their account created and enabled, so the worker has handled every task
published before theirs; the directory is read then.
"""

from __future__ import annotations

import sqlite3
import uuid

from es4ps_localcluster.processes import wait_until
from es4ps_testkit.portal_client import _CSRF_RE
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, form, unique_client_ip, unique_username
from es4ps_testkit.samba import account_is_enabled, directory_account, find_account, password_authenticates
from samba.dcerpc import security
from samba.ndr import ndr_unpack

MANAGED_OU = "OU=ES4PS"  # the worker's default (ES4PS_USERS_OU)
UNCONFIRMED = 1000
PER_CLIENT = 100  # registrations per client address: under the rate limit (600 an hour) and the cap (1000)


def rid_of(dc, username: str) -> int:
    account = find_account(dc, username, attrs=["objectSid"])
    assert account is not None, f"{username} is not in the directory"
    return int(str(ndr_unpack(security.dom_sid, account["objectSid"][0])).rsplit("-", 1)[1])


def next_rid(dc) -> int:
    """The RID the DC hands out next: a probe account made and deleted by the Administrator takes one."""
    name = f"probe{uuid.uuid4().hex[:10]}"
    samdb = dc.samdb()
    dn = f"CN={name},CN=Users,{dc.base_dn}"
    samdb.add({"dn": dn, "objectClass": "user", "sAMAccountName": name})
    try:
        return rid_of(dc, name) + 1
    finally:
        samdb.delete(dn)


def confirmed_person(live_portal, mail_catcher, samba_dc) -> str:
    """A person registers and confirms; returns the username once the account is ready (the worker caught up)."""
    name = unique_username("ctl")
    email = f"{name}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    assert person.register(name, email).status_code == 200
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready", timeout_s=300)  # behind whatever was sent before
    return name


def register_many(live_portal, names: list[str]) -> None:
    """Send the registration form for each name (one form page per client, then its posts, as fast as it takes)."""
    for start in range(0, len(names), PER_CLIENT):
        client = live_portal.client(unique_client_ip())
        page = client.get("/register/")
        token = _CSRF_RE.search(page.text).group(1)
        for name in names[start : start + PER_CLIENT]:
            sent = client.http.post(
                client._url("/register/"),
                data={**form(name), "csrfmiddlewaretoken": token},
                headers={"Referer": client._public("/register/")},
                timeout=60,
                allow_redirects=False,
            )
            assert sent.status_code == 302, f"{name}: HTTP {sent.status_code}"


def expire(live_portal, usernames: list[str]) -> str:
    """Make the registrations older than the retention (168 h) and run the hourly expiry now."""
    writable = sqlite3.connect(live_portal.directory / "data" / "portal.sqlite3")
    try:
        with writable:
            writable.executemany(
                "UPDATE accounts_user SET date_joined = datetime(date_joined, '-8 days') WHERE username = ?",
                [(name,) for name in usernames],
            )
    finally:
        writable.close()
    return live_portal.manage("expire_registrations")


def held_tasks(live_portal, username: str) -> list[tuple[str, str, int]]:
    """The registration's tasks in the outbox: operation, state, held."""
    with live_portal.database() as database:
        query = (
            "SELECT operation, state, held FROM accounts_provisioningtask"
            " WHERE user_id = (SELECT id FROM accounts_user WHERE username = ?) ORDER BY id"
        )
        return database.execute(query, (username,)).fetchall()


def portal_users(live_portal, usernames: list[str]) -> int:
    with live_portal.database() as database:
        query = "SELECT count(*) FROM accounts_user WHERE username IN ({})"
        return database.execute(query.format(",".join("?" * len(usernames))), usernames).fetchone()[0]


def test_a_registration_never_confirmed_leaves_no_object_in_the_directory(
    live_portal, mail_catcher, samba_dc, username
):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    registered = person.register(username, email)
    assert registered.status_code == 200 and "Confirm your e-mail address" in registered.text
    mail_catcher.wait_for(email)  # the mail went out: the registration is complete on the portal's side

    confirmed_person(live_portal, mail_catcher, samba_dc)
    assert find_account(samba_dc, username) is None
    # Its create is held, not sent (and the page, before the address is proven, shows nothing but "confirm").
    assert held_tasks(live_portal, username) == [("create_user", "queued", 1)]
    assert person.status()["tasks"] == []

    # Expiry forgets it at once: nothing is sent to the directory, the name and the address are free.
    assert expire(live_portal, [username]).startswith("1 ")
    assert portal_users(live_portal, [username]) == 0
    confirmed_person(live_portal, mail_catcher, samba_dc)
    assert find_account(samba_dc, username) is None
    again = live_portal.client(unique_client_ip()).register(username, email)
    assert again.status_code == 200 and again.url.endswith("/status/")


def test_a_thousand_unconfirmed_registrations_consume_no_rid(live_portal, mail_catcher, samba_dc, username):
    names = [f"{username}n{i}" for i in range(UNCONFIRMED)]
    before = next_rid(samba_dc)
    register_many(live_portal, names)
    # The consumer makes the registrations the forms left.
    wait_until(lambda: portal_users(live_portal, names) == UNCONFIRMED, 600, "every registration made")

    control = confirmed_person(live_portal, mail_catcher, samba_dc)
    # The control's account took the very RID the probe said was next: no unconfirmed one took any.
    assert rid_of(samba_dc, control) == before, f"{rid_of(samba_dc, control) - before} RIDs went to unconfirmed ones"
    assert [name for name in names[:: UNCONFIRMED // 20] if find_account(samba_dc, name) is not None] == []

    expire(live_portal, names)
    assert portal_users(live_portal, names) == 0


def test_an_outsider_cannot_get_a_legacy_account_adopted_or_deleted(live_portal, mail_catcher, samba_dc, username):
    """A legacy account (made before bindings: no `info`, its owner's `mail`) in the managed OU; an outsider who
    knows its name and address registers with them and never confirms (the mail goes to the owner)."""
    owner_email = f"{username}@{ALLOWED_DOMAIN}"
    dn = f"CN={username},{MANAGED_OU},{samba_dc.base_dn}"
    samba_dc.samdb().add({"dn": dn, "objectClass": "user", "sAMAccountName": username, "mail": owner_email})
    legacy = find_account(samba_dc, username, ["uSNChanged"])["uSNChanged"][0]

    outsider = live_portal.client(unique_client_ip())
    assert outsider.register(username, owner_email).status_code == 200
    mail_catcher.wait_for(owner_email)  # to the owner, who does not confirm
    confirmed_person(live_portal, mail_catcher, samba_dc)
    expire(live_portal, [username])
    confirmed_person(live_portal, mail_catcher, samba_dc)

    account = find_account(samba_dc, username, ["uSNChanged", "info", "uidNumber"])
    assert account is not None, "the legacy account was deleted"
    assert account["uSNChanged"][0] == legacy, "the legacy account was written to"
    assert "info" not in account and "uidNumber" not in account


def test_a_name_the_directory_holds_is_refused_at_confirmation_with_what_to_do(
    live_portal, mail_catcher, samba_dc, username
):
    """Staff made `username` in the directory by hand; a person registers it (the portal cannot know), confirms,
    is told the name is taken and what to do, withdraws and registers again with another name."""
    samdb = samba_dc.samdb()
    samdb.add({"dn": f"CN={username},CN=Users,{samba_dc.base_dn}", "objectClass": "user", "sAMAccountName": username})
    untouched = str(find_account(samba_dc, username, ["uSNChanged"])["uSNChanged"][0])
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    assert person.register(username, email).status_code == 200
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    refused = person.wait_for_status(lambda s: s["state"] == "name_taken")
    assert refused["message"] == (
        f"The username {username} is already used in the directory, so your account could not be created."
        " Withdraw this registration below, then register again with another username."
    )
    assert refused["can_withdraw"] is True
    page = person.get("/status/")
    assert "Withdraw and register again" in page.text
    assert str(find_account(samba_dc, username, ["uSNChanged"])["uSNChanged"][0]) == untouched

    token = _CSRF_RE.search(page.text).group(1)
    withdrawn = person.http.post(
        person._url("/register/withdraw/"),
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": person._public("/status/")},
        timeout=60,
    )
    assert withdrawn.url.endswith("/register/")
    assert "Your registration was withdrawn. Register again with another username." in withdrawn.text
    assert portal_users(live_portal, [username]) == 0
    other = f"{username}b"
    assert person.register(other, email).status_code == 200
    person.confirm_link(mail_catcher.wait_for(email, count=2).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready")
    assert directory_account(samba_dc, other)["mail"] == email
    wait_until(lambda: find_account(samba_dc, username) is not None, 5, "the hand-made account is still there")


def as_the_previous_release_registered(live_portal, samba_dc, username: str):
    """A registration as the previous release made it: its create sent at once (here: released without the
    address's proof), the account created disabled by the worker; returns the person's browser."""
    person = live_portal.client(unique_client_ip())
    assert person.register(username, f"{username}@{ALLOWED_DOMAIN}").status_code == 200
    wait_until(lambda: portal_users(live_portal, [username]) == 1, 60, "the registration made by the consumer")
    writable = sqlite3.connect(live_portal.directory / "data" / "portal.sqlite3")
    try:
        with writable:
            writable.execute(
                "UPDATE accounts_provisioningtask SET held = 0"
                " WHERE user_id = (SELECT id FROM accounts_user WHERE username = ?)",
                (username,),
            )
    finally:
        writable.close()
    wait_until(lambda: held_tasks(live_portal, username) == [("create_user", "done", 0)], 60, "the create applied")
    assert not account_is_enabled(directory_account(samba_dc, username))
    return person


def test_a_registration_of_the_previous_release_completes_when_confirmed_and_expires_as_before(
    live_portal, mail_catcher, samba_dc, username
):
    confirming, expiring = f"{username}c", f"{username}e"
    person = as_the_previous_release_registered(live_portal, samba_dc, confirming)
    as_the_previous_release_registered(live_portal, samba_dc, expiring)

    person.confirm_link(mail_catcher.wait_for(f"{confirming}@{ALLOWED_DOMAIN}").link("/verify/"))
    ready = person.wait_for_status(lambda s: s["state"] == "ready")
    assert [t["operation"] for t in ready["tasks"]] == ["create_user", "enable_user"]
    assert account_is_enabled(directory_account(samba_dc, confirming))
    assert password_authenticates(samba_dc, confirming, GOOD_PASSWORD)

    assert expire(live_portal, [expiring]).startswith("1 ")
    wait_until(lambda: find_account(samba_dc, expiring) is None, 60, "the disabled account deleted")
    wait_until(lambda: portal_users(live_portal, [expiring]) == 0, 30, "the registration forgotten once deleted")
