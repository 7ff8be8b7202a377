"""Computers in the admin: pre-stage (a one-time join password shown once), act on a selection, the reported list.

In process, with the real broker's keys: what the portal writes to its outbox
(signed and sealed when the relay sends it), shows, records in the audit
trail, and makes of the workers' results. What the worker and the DC do with
these tasks: test_portal_computers_live.py and tests/directory/test_computers.py.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from es4ps_contract.events import REASON_COMPUTER_NAME_TAKEN, Outcome, ResultEvent
from es4ps_contract.inventory import ComputerFacts
from es4ps_contract.keys import load_sealing_private_key
from es4ps_contract.sealing import unseal_password
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.provisioning.computers import request_report
from es4ps_portal.provisioning.models import Computer, ProvisioningTask
from es4ps_portal.provisioning.results import record_result_event
from es4ps_testkit.admin_sign_in import sign_in_staff
from es4ps_testkit.registration import unique_username

pytestmark = pytest.mark.django_db
STAFF_PASSWORD = "Staff-Passw0rd!1"  # noqa: S105 - a test staff member's local password
CHANGELIST = "/admin/provisioning/computer/"
_FINISHED_AT = iter(range(1_900_000_000, 2_000_000_000, 10))


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser(
        unique_username("boss"), f"boss-{unique_username()}@acme.example", STAFF_PASSWORD
    )


def staff_client(user: User) -> Client:
    client = Client(HTTP_X_FORWARDED_FOR="198.51.100.8")
    sign_in_staff(client, user)
    return client


def admin_messages(response) -> str:
    return " | ".join(str(message) for message in response.context["messages"])


def unique_name() -> str:
    return "PC" + uuid.uuid4().hex[:8].upper()


def shown_password(page) -> dict[str, str]:
    """The one-time join passwords a page shows, by computer."""
    text = page.content.decode()
    return dict(re.findall(r"<td>([A-Z0-9-]+)</td><td><code class=\"join-password\">([A-Za-z0-9]+)</code>", text))


def unsealed(task: ProvisioningTask, contract_keys) -> str:
    key = load_sealing_private_key(contract_keys.worker_env["ES4PS_SEALING_PRIVATE_KEY_FILE"])
    return unseal_password(key, task.payload["sealed_password"], task.subject_name)


def newest(computer: Computer) -> ProvisioningTask:
    return ProvisioningTask.objects.filter(computer=computer).order_by("-created_at", "-id").first()


def finish(task: ProvisioningTask, outcome: Outcome = Outcome.SUCCEEDED, reason: str = "", **fields) -> None:
    """The worker's result event for `task`, as the consumer records it."""
    at = float(next(_FINISHED_AT))
    event = ResultEvent(str(task.task_id), task.operation, task.subject_name, outcome, reason, "dc0", at, **fields)
    assert record_result_event(event)


def act(client, action: str, *computers: Computer, **extra):
    data = {"action": action, "_selected_action": [str(c.pk) for c in computers], "index": "0", **extra}
    return client.post(CHANGELIST, data, follow=True)


def trail(computer_name: str) -> list[tuple[str, str, str]]:
    found = AuditRecord.objects.filter(subject=f"{computer_name}$").order_by("at", "id")
    return list(found.values_list("action", "actor_kind", "outcome"))


def everything_stored() -> str:
    """Every row of every table of the portal's database, as text: where a password must not be."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        rows = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - the database's own table names
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def prestaged(client, name: str, ou: str = "") -> tuple[Computer, str]:
    page = client.post(f"{CHANGELIST}add/", {"name": name.lower(), "ou": ou})
    assert page.status_code == 200, page.status_code
    return Computer.objects.get(name=name), shown_password(page)[name]


def test_staff_prestage_a_computer_and_see_its_one_time_password_once(broker, boss, contract_keys):
    staff = staff_client(boss)
    name = unique_name()

    page = staff.post(f"{CHANGELIST}add/", {"name": name.lower(), "ou": "Labs"})

    password = shown_password(page)[name]
    assert len(password) == 24 and "no-store" in page["Cache-Control"]
    computer = Computer.objects.get(name=name)
    assert (computer.state, computer.ou, computer.record_id is not None) == (Computer.State.PENDING, "Labs", True)
    task = newest(computer)
    assert task.operation == Operation.PRESTAGE_COMPUTER
    assert task.payload["computer_id"] == str(computer.record_id) and task.payload["ou"] == "Labs"
    # Sealed for the computer's account; in clear nowhere the portal keeps anything, nor on any later page.
    assert unsealed(task, contract_keys) == password
    assert password not in everything_stored()
    assert password not in staff.get(CHANGELIST).content.decode()
    assert password not in staff.get(f"{CHANGELIST}{computer.pk}/change/").content.decode()
    assert trail(name) == [("prestage_computer", "staff", "requested")]

    finish(task)
    computer.refresh_from_db()
    assert (computer.state, computer.enabled) == (Computer.State.PRESENT, True)
    # The same name again is refused: nothing new is written.
    again = staff.post(f"{CHANGELIST}add/", {"name": name, "ou": ""})
    assert "a computer of this name is in the domain already" in again.content.decode()
    assert ProvisioningTask.objects.filter(computer=computer).count() == 1


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"name": "bad_name", "ou": ""}, "may contain only the letters A-Z, digits and"),
        ({"name": "A" * 16, "ou": ""}, "must be at most 15 characters"),
        ({"name": "SYSTEM", "ou": ""}, "is reserved"),
        ({"name": "GOODNAME1", "ou": "Labs,OU=Domain Controllers"}, "OU"),
    ],
)
def test_a_bad_name_or_ou_is_refused_clearly_and_nothing_is_written(broker, boss, fields, said):
    staff = staff_client(boss)
    page = staff.post(f"{CHANGELIST}add/", fields)
    assert page.status_code == 200 and said in page.content.decode()
    assert 'class="errorlist' in page.content.decode()
    assert not Computer.objects.exists() and not ProvisioningTask.objects.exists()


def test_actions_on_a_selection_are_signed_tasks_audited_and_followed(broker, boss, contract_keys):
    staff = staff_client(boss)
    name = unique_name()
    computer, _password = prestaged(staff, name)
    finish(newest(computer))
    foreign = Computer.objects.create(name=unique_name(), container="CN=Computers", enabled=True, joined=True)

    page = act(staff, "disable", computer, foreign)
    assert "done for 1 computer" in admin_messages(page)
    assert f"{foreign.name}: the portal did not pre-stage this computer" in admin_messages(page)
    assert not ProvisioningTask.objects.filter(computer=foreign).exists()
    disable = newest(computer)
    assert (disable.operation, disable.payload) == (
        Operation.DISABLE_COMPUTER,
        {"computer": name, "computer_id": str(computer.record_id)},
    )
    finish(disable)
    computer.refresh_from_db()
    assert computer.enabled is False

    act(staff, "enable", computer)
    finish(newest(computer))
    page = act(staff, "reset", computer)
    new_password = shown_password(page)[name]
    assert unsealed(newest(computer), contract_keys) == new_password and "no-store" in page["Cache-Control"]
    finish(newest(computer))

    refused = act(staff, "move", computer, ou="Labs,DC=elsewhere")
    assert "Nothing moved" in admin_messages(refused) and newest(computer).operation == Operation.RESET_COMPUTER
    act(staff, "move", computer, ou="Library")
    assert (newest(computer).operation, newest(computer).payload["ou"]) == (Operation.MOVE_COMPUTER, "Library")
    finish(newest(computer))

    act(staff, "delete", computer)
    assert "its deletion is under way" in admin_messages(act(staff, "disable", computer))
    finish(newest(computer))
    assert not Computer.objects.filter(pk=computer.pk).exists()
    assert trail(name) == [
        ("prestage_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("disable_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("enable_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("reset_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("move_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
        ("delete_computer", "staff", "requested"),
        ("directory_result", "directory", "succeeded"),
    ]
    assert new_password not in everything_stored()


def test_a_prestage_the_directory_refuses_says_why_and_can_be_forgotten(broker, boss):
    staff = staff_client(boss)
    computer, _password = prestaged(staff, unique_name())
    finish(newest(computer), Outcome.FAILED, REASON_COMPUTER_NAME_TAKEN)
    computer.refresh_from_db()
    assert computer.state == Computer.State.FAILED
    assert "pre-staging failed" in staff.get(CHANGELIST).content.decode()
    act(staff, "delete", computer)
    assert not Computer.objects.filter(pk=computer.pk).exists()
    assert trail(computer.name)[-1] == ("delete_computer", "staff", "succeeded")


def test_the_reported_list_is_what_staff_see(broker, boss):
    staff = staff_client(boss)
    ours, _password = prestaged(staff, unique_name())
    gone = Computer.objects.create(name=unique_name(), container="CN=Computers")
    facts = [
        ComputerFacts("DC0", "OU=Domain Controllers", "Samba", "4.17", 1_900_000_000, True, True),
        ComputerFacts(ours.name, "OU=Computers,OU=ES4PS", "Debian GNU/Linux", "12", 0, True, True, str(ours.record_id)),
    ]
    report = request_report()
    assert (report.operation, report.payload, report.computer, report.user) == ("report_computers", {}, None, None)

    finish(report, computers=tuple(facts))

    listed = staff.get(CHANGELIST).content.decode()
    assert "DC0" in listed and "OU=Domain Controllers" in listed and "Debian GNU/Linux" in listed
    ours.refresh_from_db()
    assert (ours.state, ours.joined, ours.operating_system) == (Computer.State.PRESENT, True, "Debian GNU/Linux")
    assert not Computer.objects.filter(pk=gone.pk).exists()  # not ours, and no longer in the domain
    # A result that lists computers for a task that did not ask for them changes nothing.
    disable = act(staff, "disable", ours) and newest(ours)
    event = ResultEvent(str(disable.task_id), disable.operation, disable.subject_name, Outcome.SUCCEEDED,
                        worker="dc0", finished_at=2_100_000_000.0, computers=tuple(facts[:1]))  # fmt: skip
    assert not record_result_event(event)
    assert newest(ours).state == ProvisioningTask.State.QUEUED


def test_staff_without_the_permission_see_the_list_and_cannot_act(broker, boss):
    helpdesk = User.objects.create_user(unique_username("hd"), "hd@acme.example", STAFF_PASSWORD, is_staff=True)
    helpdesk.user_permissions.add(Permission.objects.get(codename="view_computer"))
    computer, _password = prestaged(staff_client(boss), unique_name())
    finish(newest(computer))
    client = staff_client(helpdesk)

    listed = client.get(CHANGELIST).content.decode()
    assert computer.name in listed and 'value="disable"' not in listed
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    act(client, "disable", computer)
    assert newest(computer).operation == Operation.PRESTAGE_COMPUTER
