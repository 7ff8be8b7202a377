"""A person pre-stages computers of their own from their account page, as many as their policy's
`computers.perPerson` gives them: the staff's signed task (es4ps_portal.provisioning.computers.prestage),
a one-time join password shown once, the limit, names others hold, and who sees what.

In process, with the real broker's keys. The worker, the DC and a join with the shown password, and two
requests at once against two replicas on PostgreSQL: test_portal_own_computers_live.py.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from es4ps_contract.events import REASON_COMPUTER_NAME_TAKEN, Outcome, ResultEvent
from es4ps_contract.keys import load_sealing_private_key
from es4ps_contract.sealing import unseal_password
from es4ps_contract.tasks import Operation
from es4ps_portal.accounts.models import User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.provisioning.models import Computer, ProvisioningTask
from es4ps_portal.provisioning.policies import Policy
from es4ps_portal.provisioning.results import record_result_event
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_username

pytestmark = pytest.mark.django_db
ACCOUNT = "/account/"
PRESTAGE = "/account/computers/"
PER_PERSON = 2
_FINISHED_AT = iter(range(1_900_000_000, 2_000_000_000, 10))


@pytest.fixture
def computers_allowed(settings):
    """People at the allowed domain may pre-stage PER_PERSON computers; those at lab.<it> none (0)."""
    settings.POLICIES = (
        Policy(ALLOWED_DOMAIN, "", (), None, PER_PERSON),
        Policy(f"lab.{ALLOWED_DOMAIN}", "Lab", (), None, 0),
    )


def signed_in(domain: str = ALLOWED_DOMAIN) -> tuple[User, Client]:
    """A person with an enabled account at `domain`, and their signed-in browser."""
    username = unique_username("pc")
    user = User.objects.create(
        username=username, email=f"{username}@{domain}", first_name="Ada", last_name="Lovelace",
        directory_state=User.DirectoryState.ENABLED,
    )  # fmt: skip
    browser = Client(HTTP_X_FORWARDED_FOR="203.0.113.40")
    browser.force_login(user, backend="es4ps_portal.accounts.backends.DirectoryBackend")
    return user, browser


def unique_name() -> str:
    return "OWN" + uuid.uuid4().hex[:8].upper()


def shown_password(page) -> str | None:
    found = re.search(r'<code class="join-password">([A-Za-z0-9]+)</code>', page.content.decode())
    return found.group(1) if found else None


def finish(task: ProvisioningTask, outcome: Outcome = Outcome.SUCCEEDED, reason: str = "") -> None:
    at = float(next(_FINISHED_AT))
    assert record_result_event(
        ResultEvent(str(task.task_id), task.operation, task.subject_name, outcome, reason, "dc0", at)
    )


def everything_stored() -> str:
    """Every row of every table of the portal's database, as text: where a password must not be."""
    with connection.cursor() as cursor:
        rows = []
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - the database's own table names
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def test_a_person_prestages_a_computer_of_their_own_and_sees_its_password_once(
    broker, computers_allowed, contract_keys
):
    user, browser = signed_in()
    page = browser.get(ACCOUNT)
    assert "Your computers" in page.content.decode() and "up to 2 computers" in page.content.decode()
    name = unique_name()

    page = browser.post(PRESTAGE, {"name": name.lower()})

    password = shown_password(page)
    assert page.status_code == 200 and len(password) == 24 and "no-store" in page["Cache-Control"]
    computer = Computer.objects.get(name=name)
    assert (computer.owner, computer.state, computer.ou) == (user, Computer.State.PENDING, "")
    # The staff's task: sealed for the computer's account, in the computers OU itself.
    task = ProvisioningTask.objects.get(computer=computer)
    assert (task.operation, task.payload.get("ou", "")) == (Operation.PRESTAGE_COMPUTER, "")
    key = load_sealing_private_key(contract_keys.worker_env["ES4PS_SEALING_PRIVATE_KEY_FILE"])
    assert unseal_password(key, task.payload["sealed_password"], f"{name}$") == password
    # Audited like staff's pre-stage, with the person as actor; the password is kept nowhere, shown once.
    records = AuditRecord.objects.filter(subject=f"{name}$")
    assert list(records.values_list("action", "actor", "actor_kind")) == [
        ("prestage_computer", user.username, "person")
    ]
    assert password not in everything_stored()
    again = browser.get(ACCOUNT).content.decode()
    assert name in again and password not in again
    finish(task)
    assert "in the directory" in browser.get(ACCOUNT).content.decode()


def test_the_policys_limit_refuses_the_next_computer_and_a_failed_one_takes_no_place(broker, computers_allowed):
    user, browser = signed_in()
    names = [unique_name() for _ in range(PER_PERSON + 1)]
    for name in names[:PER_PERSON]:
        assert shown_password(browser.post(PRESTAGE, {"name": name}))

    refused = browser.post(PRESTAGE, {"name": names[-1]})

    assert shown_password(refused) is None
    assert "You may not pre-stage more computers: your policy allows 2." in refused.content.decode()
    assert not Computer.objects.filter(name=names[-1]).exists()
    assert not AuditRecord.objects.filter(subject=f"{names[-1]}$").exists()
    # One the directory refused (its name was taken there) frees its place.
    finish(ProvisioningTask.objects.get(computer__name=names[0]), Outcome.FAILED, REASON_COMPUTER_NAME_TAKEN)
    assert shown_password(browser.post(PRESTAGE, {"name": names[-1]}))
    assert Computer.objects.get(name=names[-1]).owner == user


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("bad_name", "may contain only the letters A-Z, digits and"),
        ("A" * 16, "must be at most 15 characters"),
        ("SYSTEM", "is reserved"),
    ],
)
def test_a_bad_name_is_refused_clearly_and_nothing_is_written(broker, computers_allowed, name, said):
    _user, browser = signed_in()
    page = browser.post(PRESTAGE, {"name": name})
    assert page.status_code == 200 and said in page.content.decode() and shown_password(page) is None
    assert not Computer.objects.exists() and not ProvisioningTask.objects.exists()


def test_a_name_someone_else_holds_is_refused_clearly(broker, computers_allowed):
    other, other_browser = signed_in()
    theirs = unique_name()
    assert shown_password(other_browser.post(PRESTAGE, {"name": theirs}))
    joined_elsewhere = Computer.objects.create(name=unique_name(), container="CN=Computers", enabled=True)
    _user, browser = signed_in()

    for name in (theirs, joined_elsewhere.name):
        page = browser.post(PRESTAGE, {"name": name.lower()})
        assert "a computer of this name is in the domain already" in page.content.decode()
        assert shown_password(page) is None
    assert Computer.objects.get(name=theirs).owner == other
    assert Computer.objects.get(name=joined_elsewhere.name).owner is None
    assert ProvisioningTask.objects.count() == 1


@pytest.mark.parametrize("domain", [f"lab.{ALLOWED_DOMAIN}", "bücher.example"], ids=["perPerson 0", "no policy"])
def test_a_person_whose_policy_gives_no_computers_sees_nothing_and_is_refused(broker, computers_allowed, domain):
    _user, browser = signed_in(domain)
    page = browser.get(ACCOUNT).content.decode()
    assert "Your computers" not in page and PRESTAGE not in page

    refused = browser.post(PRESTAGE, {"name": unique_name()})

    assert refused.status_code == 403
    assert not Computer.objects.exists() and not ProvisioningTask.objects.exists()


def test_a_person_sees_only_their_own_computers(broker, computers_allowed):
    _other, other_browser = signed_in()
    theirs = unique_name()
    other_browser.post(PRESTAGE, {"name": theirs})
    staffs = Computer.objects.create(name=unique_name(), record_id=uuid.uuid4(), state=Computer.State.PRESENT)
    _user, browser = signed_in()
    mine = unique_name()
    browser.post(PRESTAGE, {"name": mine})

    page = browser.get(ACCOUNT).content.decode()

    assert mine in page and theirs not in page and staffs.name not in page
    assert theirs in other_browser.get(ACCOUNT).content.decode()


def test_a_signed_out_visitor_cannot_prestage(broker, computers_allowed):
    answer = Client().post(PRESTAGE, {"name": unique_name()})
    assert answer.status_code == 302 and "/login/" in answer["Location"]
    assert not Computer.objects.exists()
