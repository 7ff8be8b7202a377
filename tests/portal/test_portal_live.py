"""The acceptance flow, as a new user goes through it, against the real processes of every component.

`es4ps-portal serve` and `consume`, the real directory worker, a Samba AD DC,
RabbitMQ with mutual TLS and an SMTP server catching the mails.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
import uuid

import ldb
import pytest
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_client_ip
from es4ps_testkit.samba import account_is_enabled, directory_account, find_account, password_authenticates


def without_csrf_tokens(page: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"', page)


def task_states(status: dict) -> dict[str, str]:
    """Operation -> state of the newest task of each operation (the list is oldest first)."""
    return {task["operation"]: task["state"] for task in status["tasks"]}


def test_register_confirm_by_mail_and_sign_in(live_portal, mail_catcher, samba_dc, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())

    registered = person.register(username, email)
    assert registered.status_code == 200 and registered.url.endswith("/status/")
    assert "Confirm your e-mail address" in registered.text

    # Nothing reaches the directory before the address is proven (the create waits in the outbox), and the page
    # shows nothing but "confirm your address" (the same page as for a name or an address that was taken).
    assert person.status()["tasks"] == []
    assert directory_account(samba_dc, username) is None
    refused = person.login(username, GOOD_PASSWORD)
    assert "The username or password is not right." in refused.text

    # The mail arrives; its link is opened on another device.
    mail = mail_catcher.wait_for(email)
    phone = live_portal.client(unique_client_ip())
    confirmed = phone.confirm_link(mail.link("/verify/"))
    assert confirmed.status_code == 200 and confirmed.url.endswith("/status/")
    ready = phone.wait_for_status(lambda s: s["state"] == "ready")
    assert ready["message"] == f"Your account is ready. Sign in as {username}@{samba_dc.realm}."
    assert task_states(ready) == {"create_user": "done", "enable_user": "done"}
    # The first browser sees it too, on the page it kept open.
    assert person.status()["state"] == "ready"

    assert account_is_enabled(directory_account(samba_dc, username))
    assert password_authenticates(samba_dc, username, GOOD_PASSWORD)
    wrong = person.login(username, "Wrong-Horse-42")
    assert "The username or password is not right." in wrong.text
    signed_in = person.login(username, GOOD_PASSWORD)
    assert signed_in.url.endswith("/account/")
    assert f"{username}@{samba_dc.realm}" in signed_in.text

    # Nothing secret was written by the portal: no password, no token, no code.
    logs = live_portal.logs()
    token = mail.link("/verify/").split("token=", 1)[1]
    assert GOOD_PASSWORD not in logs and token not in logs
    with live_portal.database() as database:
        rows = [
            *database.execute("SELECT * FROM accounts_user"),
            *database.execute("SELECT * FROM accounts_emailtoken"),
            *database.execute("SELECT * FROM accounts_provisioningtask"),
        ]
    rows = " ".join(map(str, rows))
    assert GOOD_PASSWORD not in rows and token not in rows


def test_a_reused_link_is_refused_with_a_clear_message(live_portal, mail_catcher, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    person.register(username, email)
    link = mail_catcher.wait_for(email).link("/verify/")
    assert person.confirm_link(link).url.endswith("/status/")
    replay = live_portal.client(unique_client_ip()).confirm_link(link)
    assert replay.status_code == 400
    assert "This link was already used" in replay.text
    with live_portal.database() as database:
        (enables,) = database.execute(
            "SELECT COUNT(*) FROM accounts_provisioningtask t JOIN accounts_user u ON t.user_id = u.id "
            "WHERE u.username = ? AND t.operation = 'enable_user'",
            (username,),
        ).fetchone()
    assert enables == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "{username}@acme.example.evil"}, "Registration is open to addresses of acme.example only."),
        ({"password": "password"}, "Use at least 14 characters."),
    ],
)
def test_a_refused_registration_says_why_and_keeps_nothing(live_portal, mail_catcher, username, changes, message):
    email = changes.get("email", "{username}@" + ALLOWED_DOMAIN).format(username=username)
    response = live_portal.client(unique_client_ip()).register(
        username, email, password=changes.get("password", GOOD_PASSWORD)
    )
    assert response.status_code == 200 and response.url.endswith("/register/")
    assert message in response.text
    with live_portal.database() as database:
        assert database.execute("SELECT COUNT(*) FROM accounts_user WHERE username = ?", (username,)).fetchone() == (0,)
    assert mail_catcher.mails_to(email) == []


def test_name_and_password_changes_reach_the_directory(live_portal, mail_catcher, samba_dc, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    person.register(username, email)
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready")
    person.login(username, GOOD_PASSWORD)

    renamed = person.post("/account/", {"first_name": "Augusta", "last_name": "King"})
    assert renamed.url.endswith("/status/")
    person.wait_for_status(lambda s: task_states(s).get("update_attributes") == "done")
    account = directory_account(samba_dc, username)
    assert (account["givenName"], account["sn"], account["displayName"]) == ("Augusta", "King", "Augusta King")

    wrong_current = person.post(
        "/account/password/",
        {"current_password": "Not-My-Pass-1", "new_password1": "Second-Horse-43", "new_password2": "Second-Horse-43"},
    )
    assert "This is not your current password." in wrong_current.text
    changed = person.post(
        "/account/password/",
        {"current_password": GOOD_PASSWORD, "new_password1": "Second-Horse-43", "new_password2": "Second-Horse-43"},
    )
    assert changed.url.endswith("/status/")
    person.wait_for_status(lambda s: task_states(s).get("set_password") == "done")
    assert password_authenticates(samba_dc, username, "Second-Horse-43")
    assert not password_authenticates(samba_dc, username, GOOD_PASSWORD)
    # The owner is told, once the directory took it (mail 1 was the verification).
    notice = mail_catcher.wait_for(email, count=2)
    assert notice.subject == "Acme Corp: your password was changed"
    assert f'the password of the account "{username}" in {samba_dc.realm} was changed on' in notice.text
    assert notice.link("/password/reset/") == f"{live_portal.url}/password/reset/"


def test_a_forgotten_password_is_reset_by_mail(live_portal, mail_catcher, samba_dc, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    person.register(username, email)
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready")

    stranger = live_portal.client(unique_client_ip())
    unknown = stranger.post("/password/reset/", {"email": f"nobody-{username}@{ALLOWED_DOMAIN}"})
    known = stranger.post("/password/reset/", {"email": email})
    # The same page either way (but for the random mask of its forms' CSRF token): it does not tell who has an account.
    assert without_csrf_tokens(unknown.text.replace(f"nobody-{username}", username)) == without_csrf_tokens(
        known.text.replace(email, f"{username}@{ALLOWED_DOMAIN}")
    )
    assert mail_catcher.mails_to(f"nobody-{username}@{ALLOWED_DOMAIN}") == []

    link = mail_catcher.wait_for(email, count=2).link("/password/reset/confirm/")
    page = stranger.get(link)
    csrf = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    token = link.split("token=", 1)[1]
    new_password = "Third-Horse-44"  # noqa: S105 - a test password
    reset = stranger.http.post(
        f"{live_portal.url}/password/reset/confirm/",
        data={
            "csrfmiddlewaretoken": csrf,
            "token": token,
            "new_password1": new_password,
            "new_password2": new_password,
        },
    )
    assert reset.url.endswith("/status/")
    stranger.wait_for_status(lambda s: task_states(s).get("set_password") == "done")
    assert password_authenticates(samba_dc, username, new_password)
    assert "your password was changed" in mail_catcher.wait_for(email, count=3).subject
    again = stranger.http.post(
        f"{live_portal.url}/password/reset/confirm/",
        data={
            "csrfmiddlewaretoken": csrf,
            "token": token,
            "new_password1": "Other-Horse-45",
            "new_password2": "Other-Horse-45",
        },
    )
    assert again.status_code == 400 and "already used" in again.text


def test_an_expired_password_is_changed_in_the_portal(live_portal, mail_catcher, samba_dc, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    person.register(username, email)
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    person.wait_for_status(lambda s: s["state"] == "ready")
    # The directory wants a new password (as after maxAgeDays; pwdLastSet 0 is how an administrator says so).
    samdb = samba_dc.samdb()
    account = find_account(samba_dc, username, attrs=[])
    expire = ldb.Message(account.dn)
    expire["pwdLastSet"] = ldb.MessageElement("0", ldb.FLAG_MOD_REPLACE, "pwdLastSet")
    samdb.modify(expire)
    assert not password_authenticates(samba_dc, username, GOOD_PASSWORD)

    someone = live_portal.client(unique_client_ip())
    assert "The username or password is not right." in someone.login(username, "Wrong-Horse-42").text
    assert someone.get("/password/expired/").url.endswith("/login/")  # only after the right password

    expired = person.login(username, GOOD_PASSWORD)
    assert expired.url.endswith("/password/expired/")
    assert "Your password has expired" in expired.text
    too_short = person.post("/password/expired/", {"new_password1": "Short-1", "new_password2": "Short-1"})
    assert "Use at least 14 characters." in too_short.text
    new_password = "Fourth-Horse-46"  # noqa: S105 - a test password
    changed = person.post("/password/expired/", {"new_password1": new_password, "new_password2": new_password})
    assert changed.url.endswith("/status/")
    # Used once: the page does not offer another change without a new sign-in.
    assert person.get("/password/expired/").url.endswith("/login/")
    person.wait_for_status(lambda s: task_states(s).get("set_password") == "done")

    assert password_authenticates(samba_dc, username, new_password)
    assert person.login(username, new_password).url.endswith("/account/")
    assert "your password was changed" in mail_catcher.wait_for(email, count=2).subject


def test_logins_are_rate_limited_per_account(live_portal, username):
    attacker = live_portal.client(unique_client_ip())
    for _ in range(5):
        assert attacker.login(username, "Guess-Word-99").status_code == 200
    limited = attacker.login(username, "Guess-Word-99")
    assert limited.status_code == 429 and "Too many attempts" in limited.text
    # The limit is the account's: another address trying the same account is stopped too.
    assert live_portal.client(unique_client_ip()).login(username, "Guess-Word-99").status_code == 429


def test_staff_see_users_and_tasks_in_the_admin(live_portal, mail_catcher, username):
    email = f"{username}@{ALLOWED_DOMAIN}"
    live_portal.client(unique_client_ip()).register(username, email)
    staff = live_portal.signed_in_staff()

    # The consumer makes the registration off the request path: it shows once made.
    def listed() -> bool:
        users = staff.get("/admin/accounts/user/", params={"q": username, "verified": "no"})
        return username in users.text and email in users.text

    wait_until(listed, 60, "the registration in the admin's user list")
    tasks = staff.get("/admin/provisioning/provisioningtask/", params={"q": username})
    assert "create_user" in tasks.text or "create the account" in tasks.text
    # An end user cannot use the admin, even with the right directory password.
    end_user = live_portal.client(unique_client_ip())
    refused = end_user.post("/admin/login/", {"username": username, "password": GOOD_PASSWORD, "next": "/admin/"})
    assert "/admin/login/" in refused.url


def test_health_endpoints_answer_for_any_host(live_portal):
    import requests

    # Probes reach the pod by its IP, not by the portal's host name.
    assert requests.get(f"{live_portal.url}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=5).status_code == 200
    assert requests.get(f"{live_portal.url}/readyz", headers={"Host": "10.1.2.3:8000"}, timeout=5).json() == {
        "status": "ok"
    }
    assert requests.get(f"{live_portal.url}/register/", headers={"Host": "evil.example"}, timeout=5).status_code == 400


def test_the_consumer_survives_junk_on_the_result_queue(live_portal, mail_catcher, worker_env, username):
    from celery import Celery
    from es4ps_contract.tasks import RESULT_TASK_NAME, RESULTS_QUEUE
    from es4ps_contract.transport import celery_settings

    # Whoever holds a worker certificate can write to the result queue: junk must not stop the consumer.
    worker_side = Celery("junk-sender", set_as_current=False)
    worker_side.conf.update(celery_settings(worker_env))
    for junk in ("not an event", {"task_id": "x"}, {"task_id": "1", "operation": "create_user", "outcome": "maybe"}):
        worker_side.send_task(RESULT_TASK_NAME, args=[junk], queue=RESULTS_QUEUE)
    worker_side.close()

    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    person.register(username, email)
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    assert person.wait_for_status(lambda s: s["state"] == "ready")["state"] == "ready"
    assert "dropping a result event that is not a DC's (unsigned)" in live_portal.consume_log.read_text()


def test_forged_result_events_change_nothing_the_portal_shows(
    live_portal, mail_catcher, directory_worker, worker_env, contract_keys, username
):
    """A worker's broker certificate can write to the results queue; without the DC's key nothing it says counts."""
    from celery import Celery
    from es4ps_contract.events import Outcome, ResultEvent, sign_event
    from es4ps_contract.tasks import RESULT_TASK_NAME, RESULTS_QUEUE
    from es4ps_contract.transport import celery_settings
    from es4ps_testkit.worker import DirectoryWorker
    from nacl.signing import SigningKey

    email = f"{username}@{ALLOWED_DOMAIN}"
    person = live_portal.client(unique_client_ip())
    directory_worker.stop()  # the tasks wait in the queue: only forged results could move them
    try:
        person.register(username, email)
        person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
        database = sqlite3.connect(live_portal.directory / "data" / "portal.sqlite3")
        tasks = database.execute(
            "SELECT t.task_id, t.operation FROM accounts_provisioningtask t JOIN accounts_user u ON t.user_id = u.id"
            " WHERE u.username = ?",
            (username,),
        ).fetchall()
        database.close()
        assert sorted(operation for _, operation in tasks) == ["create_user", "enable_user"]
        forger = Celery("forger", set_as_current=False)
        forger.conf.update(celery_settings(worker_env))
        for task_id, operation in tasks:
            # Django stores UUIDs in SQLite as 32 hex digits.
            forged = ResultEvent(
                str(uuid.UUID(task_id)),
                operation,
                username,
                Outcome.SUCCEEDED,
                "",
                DirectoryWorker.DEFAULT_NAME,
                time.time(),
            )
            forger.send_task(RESULT_TASK_NAME, args=[forged.to_message()], queue=RESULTS_QUEUE)
            forger.send_task(RESULT_TASK_NAME, args=[sign_event(SigningKey.generate(), forged)], queue=RESULTS_QUEUE)
        forger.close()
        wait_until(
            lambda: live_portal.consume_log.read_text().count("dropping a result event that is not a DC's") >= 4,
            60,
            "the consumer dropping the four forged events",
        )
        shown = person.status()
        assert shown["state"] != "ready"
        assert set(task_states(shown).values()) == {"queued"}
    finally:
        directory_worker.start()

    # The worker's own, signed results: the account is ready.
    assert person.wait_for_status(lambda s: s["state"] == "ready")["state"] == "ready"


def test_an_unverified_registration_expires_and_frees_the_name_and_the_address(
    live_portal, mail_catcher, samba_dc, username
):
    email = f"{username}@{ALLOWED_DOMAIN}"
    # Somebody registers another person's address and never confirms it.
    squatter = live_portal.client(unique_client_ip())
    squatter.register(username, email)
    mail = mail_catcher.wait_for(email)
    assert "no account is created, and the registration is deleted after 7 days." in " ".join(mail.text.split())
    link = mail.link("/verify/")
    # Eight days pass (the retention is seven by default).
    writable = sqlite3.connect(live_portal.directory / "data" / "portal.sqlite3")
    with writable:
        writable.execute(
            "UPDATE accounts_user SET date_joined = datetime(date_joined, '-8 days') WHERE username = ?", (username,)
        )
        writable.execute(
            "UPDATE accounts_emailtoken SET created_at = datetime(created_at, '-8 days') "
            "WHERE user_id = (SELECT id FROM accounts_user WHERE username = ?)",
            (username,),
        )
    writable.close()

    # What the consumer does every hour, on demand.
    expired = subprocess.run(
        [str(VENV_BIN / "es4ps-portal"), "manage", "expire_registrations"],
        env=live_portal.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert expired.returncode == 0, expired.stderr
    assert expired.stdout.startswith("1 unverified registrations expired")

    assert "This link is not valid" in squatter.confirm_link(link).text
    # Forgotten at once (test_portal_unconfirmed.py shows the directory never saw it).
    with live_portal.database() as database:
        users = database.execute("SELECT COUNT(*) FROM accounts_user WHERE username = ?", (username,))
        assert users.fetchone() == (0,)
    # The owner of the address registers, with the same name, and gets the account.
    owner = live_portal.client(unique_client_ip())
    assert owner.register(username, email).url.endswith("/status/")
    owner.confirm_link(mail_catcher.wait_for(email, count=2).link("/verify/"))
    assert owner.wait_for_status(lambda s: s["state"] == "ready")["state"] == "ready"
    assert password_authenticates(samba_dc, username, GOOD_PASSWORD)
