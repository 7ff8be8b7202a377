"""Staff actions in the admin, manual approval and policies, in process against the real broker and SMTP server.

What the directory does with the tasks is shown with the real worker and DC in
test_portal_staff_live.py; here, what the portal publishes, mails and records.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from es4ps_contract.events import Outcome, ResultEvent
from es4ps_contract.keys import load_verify_key
from es4ps_contract.signing import open_task
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.provisioning.models import ProvisioningTask
from es4ps_portal.provisioning.outbox import relay_round
from es4ps_portal.provisioning.policies import parse_policies, parse_unix
from es4ps_portal.provisioning.results import record_result_event
from es4ps_testkit.admin_sign_in import sign_in_staff
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.live_portal import read_task_queue
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.registration import ALLOWED_DOMAIN, form, unique_username

pytestmark = pytest.mark.django_db

STAFF_PASSWORD = "Staff-Passw0rd!1"  # noqa: S105 - a test staff member's local password
STAFF_ADDRESS = "198.51.100.7"


def staff_client(user: User) -> Client:
    client = Client(HTTP_X_FORWARDED_FOR=STAFF_ADDRESS)
    sign_in_staff(client, user)
    return client


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser(
        unique_username("boss"), f"boss-{unique_username()}@acme.example", STAFF_PASSWORD
    )


def person(state: str = User.DirectoryState.ENABLED, verified: bool = True, **fields) -> User:
    username = unique_username("p")
    return User.objects.create(
        username=username,
        email=f"{username}@{ALLOWED_DOMAIN}",
        email_verified_at=timezone.now() if verified else None,
        directory_state=state,
        **fields,
    )


def act(client: Client, action: str, *users: User):
    """Run an admin action on a selection, as the changelist's form sends it; returns the page it leads to."""
    data = {"action": action, "_selected_action": [str(user.pk) for user in users], "index": "0"}
    return client.post("/admin/accounts/user/", data, follow=True)


def admin_messages(response) -> str:
    return " | ".join(str(message) for message in response.context["messages"])


def newest_task(user: User) -> ProvisioningTask:
    return ProvisioningTask.objects.filter(user=user).order_by("-created_at", "-id").first()


def finish(task: ProvisioningTask, outcome: Outcome = Outcome.SUCCEEDED, reason: str = "") -> None:
    """The worker's result event for `task`, as the consumer records it."""
    event = ResultEvent(str(task.task_id), task.operation, task.user.username, outcome, reason, "dc0", 1_900_000_000.0)
    assert record_result_event(event)


def records(user: User) -> list[tuple[str, str, str]]:
    """(action, actor kind, outcome) of the account's audit records, oldest first."""
    found = AuditRecord.objects.filter(registration=user.registration_id).order_by("at", "id")
    return list(found.values_list("action", "actor_kind", "outcome"))


def test_disable_enable_and_delete_are_signed_tasks_whose_results_show(broker, boss, contract_keys, directory_worker):
    enabled, never_enabled = person(), person(User.DirectoryState.CREATED)
    staff = staff_client(boss)

    directory_worker.stop()  # the test reads the queue itself
    try:
        page = act(staff, "disable", enabled, never_enabled)
        disable = newest_task(enabled)
        relay_round()  # what the consumer's relay does: the task goes from the outbox to the broker
        messages = read_task_queue(broker, take=[str(disable.task_id)])
    finally:
        directory_worker.start()

    assert "Disable the accounts in the directory: done for 1 account." in admin_messages(page)
    assert f"1 account skipped: {never_enabled.username}: only an enabled account can be disabled" in admin_messages(
        page
    )
    assert (disable.operation, disable.state) == (Operation.DISABLE_USER, ProvisioningTask.State.QUEUED)
    assert newest_task(never_enabled) is None
    # The task on the queue is signed and names the account's registration.
    (message,) = [m for m in messages if m["id"] == str(disable.task_id)]
    verify_key = load_verify_key(contract_keys.worker_env["ES4PS_SIGNING_PUBLIC_KEY_FILE"])
    task = open_task(verify_key, message["args"][0], operation=Operation.DISABLE_USER, task_id=message["id"]).task
    assert (task.username, task.registration) == (enabled.username, str(enabled.registration_id))

    finish(disable)
    enabled.refresh_from_db()
    assert enabled.directory_state == User.DirectoryState.DISABLED
    listed = staff.get("/admin/accounts/user/", {"q": enabled.username}).content.decode()
    assert "disable the account: done" in listed  # the last task's result, in the list

    act(staff, "enable", enabled)
    finish(newest_task(enabled), Outcome.FAILED, "the directory is unavailable (retries exhausted)")
    enabled.refresh_from_db()
    assert enabled.directory_state == User.DirectoryState.DISABLED  # a failed enable leaves it disabled
    act(staff, "enable", enabled)
    finish(newest_task(enabled))
    enabled.refresh_from_db()
    assert enabled.directory_state == User.DirectoryState.ENABLED

    act(staff, "delete", enabled)
    assert "its deletion is under way" in admin_messages(act(staff, "delete", enabled))
    finish(newest_task(enabled))
    assert not User.objects.filter(pk=enabled.pk).exists()
    # The portal forgot the person; the audit trail did not.
    assert records(enabled) == [
        ("disable_account", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("enable_account", "staff", "requested"),
        ("directory_result", "directory", "failed"),
        ("enable_account", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("delete_account", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
    ]
    staff_records = AuditRecord.objects.filter(registration=enabled.registration_id, actor_kind="staff")
    assert set(staff_records.values_list("actor", "address")) == {(boss.username, STAFF_ADDRESS)}


def test_mail_actions_send_the_person_a_link_and_never_a_password(broker, smtp: MailCatcher, boss):
    unverified, enabled = person(User.DirectoryState.CREATED, verified=False), person()
    staff = staff_client(boss)

    page = act(staff, "resend_verification_mail", unverified, enabled)

    assert "done for 1 account" in admin_messages(page)
    assert f"{enabled.username}: the address is confirmed already" in admin_messages(page)
    mail = smtp.wait_for(unverified.email)
    assert "/verify/?token=" in mail.text and "type this code" in mail.text

    page = act(staff, "send_password_reset_mail", enabled, unverified)
    assert f"{unverified.username}: the account is not enabled" in admin_messages(page)
    reset = smtp.wait_for(enabled.email)
    assert reset.subject.endswith("set a new password") and "/password/reset/confirm/?token=" in reset.text
    assert records(enabled) == [("send_password_reset_mail", "staff", "succeeded")]
    assert ProvisioningTask.objects.filter(user__in=[unverified, enabled]).count() == 0  # mails only


def test_staff_without_the_permissions_cannot_act(broker, boss):
    helpdesk = User.objects.create_user(unique_username("hd"), "hd@acme.example", STAFF_PASSWORD, is_staff=True)
    helpdesk.user_permissions.add(Permission.objects.get(codename="view_user"))
    enabled = person()
    client = staff_client(helpdesk)

    page = client.get("/admin/accounts/user/").content.decode()
    assert 'value="disable"' not in page and 'value="approve"' not in page
    act(client, "disable", enabled)
    assert newest_task(enabled) is None

    helpdesk.user_permissions.add(Permission.objects.get(codename="manage_directory_account"))
    client = staff_client(User.objects.get(pk=helpdesk.pk))
    page = client.get("/admin/accounts/user/").content.decode()
    assert 'value="disable"' in page and 'value="approve"' not in page
    act(client, "disable", enabled)
    assert newest_task(enabled).operation == Operation.DISABLE_USER


def verify_by_code(client: Client, smtp: MailCatcher, email: str):
    code = smtp.wait_for(email).text.split("type this code on the status page: ", 1)[1][:6]
    return client.post("/verify/code/", {"code": code}, follow=True)


def test_with_manual_approval_a_confirmed_registration_waits_for_staff(
    broker, smtp: MailCatcher, boss, settings, django_capture_on_commit_callbacks
):
    settings.REGISTRATION_APPROVAL = "Manual"
    approvers = Group.objects.create(name=f"approvers-{unique_username()}")
    approvers.permissions.add(*Permission.objects.filter(codename__in=["view_user", "approve_registration"]))
    approver = User.objects.create_user(unique_username("ap"), f"{unique_username('ap')}@acme.example", is_staff=True)
    approver.groups.add(approvers)
    bystander = User.objects.create_user(unique_username("by"), f"{unique_username('by')}@acme.example", is_staff=True)
    accepted, refused = unique_username("ok"), unique_username("no")
    browsers = {}
    for username in (accepted, refused):
        browsers[username] = Client()
        assert browsers[username].post("/register/", form(username)).status_code == 302
        consumer_round()
        assert [t.held for t in User.objects.get(username=username).provisioning_tasks.all()] == [True]
        with django_capture_on_commit_callbacks(execute=True):  # the test's transaction never commits
            confirmed = verify_by_code(browsers[username], smtp, f"{username}@{ALLOWED_DOMAIN}")
        assert "Staff approve new accounts; we will mail you." in confirmed.content.decode()
        user = User.objects.get(username=username)
        assert user.approval == User.Approval.WAITING
        # The address is proven: the account is created (disabled) now; no enable until staff approve.
        assert [(t.operation, t.held) for t in user.provisioning_tasks.all()] == [(Operation.CREATE_USER, False)]
        status = browsers[username].get("/status.json").json()
        assert status["state"] == "waiting_for_approval"
        # Every approver hears of it: superusers and members of a group with the permission; nobody else.
        for address in (boss.email, approver.email):
            request = smtp.wait_for(address, count=1 if username == accepted else 2)
            # The link to the registration in the admin, and nothing the registrant typed.
            assert f"/admin/accounts/user/{user.pk}/change/" in request.text and username not in request.text
    assert smtp.mails_to(bystander.email) == []

    staff = staff_client(approver)
    with django_capture_on_commit_callbacks(execute=True):
        act(staff, "approve", User.objects.get(username=accepted))
        act(staff, "refuse", User.objects.get(username=refused))

    approved = User.objects.get(username=accepted)
    assert approved.approval == User.Approval.APPROVED
    assert newest_task(approved).operation == Operation.ENABLE_USER
    assert smtp.wait_for(approved.email, count=2).subject == "Acme Corp: your account was approved"
    closing = User.objects.get(username=refused)
    assert newest_task(closing).operation == Operation.DELETE_USER
    assert smtp.wait_for(closing.email, count=2).subject == "Acme Corp: your registration was not approved"
    assert browsers[refused].get("/status.json").json()["state"] == "refused"
    finish(newest_task(closing))
    assert not User.objects.filter(username=refused).exists()  # the registration is closed
    assert ("refuse_registration", "staff", "requested") in records(closing)
    # Approving twice does nothing more.
    assert "does not wait for approval" in admin_messages(act(staff, "approve", approved))


STUDENTS = [{"emailDomain": f"students.{ALLOWED_DOMAIN}", "ou": "Students", "groups": ["students", "wifi"]}]
UNIX = {"enabled": True, "loginShell": "/bin/zsh", "homeDirectoryTemplate": "/home/{username}",
        "uidRange": {"start": 10000, "end": 999999}, "gidNumber": 100}  # fmt: skip


def test_a_registration_gets_its_policy_and_staff_move_accounts_when_it_changes(
    client, broker, smtp, boss, settings, contract_keys, directory_worker
):
    settings.UNIX_ATTRIBUTES = parse_unix(json.dumps(UNIX))
    settings.POLICIES = parse_policies(json.dumps(STUDENTS), settings.ALLOWED_EMAIL_DOMAINS, settings.UNIX_ATTRIBUTES)
    username = unique_username("st")
    directory_worker.stop()  # the test reads the queue itself
    try:
        assert (
            client.post("/register/", form(username, email=f"{username}@students.{ALLOWED_DOMAIN}")).status_code == 302
        )
        consumer_round()
        student = User.objects.get(username=username)
        create = newest_task(student)
        code = smtp.wait_for(f"{username}@students.{ALLOWED_DOMAIN}").text.split("code on the status page: ", 1)[1]
        client.post("/verify/code/", {"code": code[:6]})  # the create is held until the address is proven
        relay_round()
        (message,) = [m for m in read_task_queue(broker, take=[str(create.task_id)]) if m["id"] == str(create.task_id)]
    finally:
        directory_worker.start()
    verify_key = load_verify_key(contract_keys.worker_env["ES4PS_SIGNING_PUBLIC_KEY_FILE"])
    task = open_task(verify_key, message["args"][0], operation=Operation.CREATE_USER, task_id=message["id"]).task
    assert (task.ou, task.groups) == ("Students", ("students", "wifi"))
    assert task.unix == {
        "uid_range_start": 10000,
        "uid_range_end": 999999,
        "gid_number": 100,
        "login_shell": "/bin/zsh",
        "home_directory": f"/home/{username}",
    }
    assert (student.directory_ou, student.directory_groups, student.directory_unix) == (
        "Students",
        ["students", "wifi"],
        True,
    )

    # The policy changes: new accounts follow at once, existing ones when staff move them.
    settings.POLICIES = parse_policies(
        json.dumps([{**STUDENTS[0], "ou": "Pupils", "groups": ["wifi"]}]),
        settings.ALLOWED_EMAIL_DOMAINS,
        settings.UNIX_ATTRIBUTES,
    )
    User.objects.filter(pk=student.pk).update(directory_state=User.DirectoryState.ENABLED)
    staff = staff_client(boss)
    assert "done for 1 account" in admin_messages(act(staff, "apply_policy", student))
    move = newest_task(student)
    assert move.operation == Operation.APPLY_POLICY
    student.refresh_from_db()
    assert (student.directory_ou, student.directory_groups) == ("Pupils", ["wifi"])
    again = act(staff, "apply_policy", student)
    assert "is in its policy's OU and groups already" in admin_messages(again)


def test_with_the_broker_down_a_staff_action_waits_in_the_outbox(broker, boss):
    enabled = person()
    staff = staff_client(boss)
    broker.stop()
    try:
        page = act(staff, "disable", enabled)
    finally:
        broker.start()

    # Nothing asks the broker while the request runs: the task is written with the change and its
    # record, and the consumer's relay publishes it once the broker is back (test_portal_outbox.py).
    assert "done for 1 account" in admin_messages(page)
    waiting = newest_task(enabled)
    assert waiting.operation == Operation.DISABLE_USER
    assert waiting.published_at is None and waiting.payload
    assert records(enabled) == [("disable_account", "staff", "requested")]
