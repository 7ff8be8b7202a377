"""Computers the portal manages: pre-staged with a one-time join password, disabled for good, reset, moved, deleted.

Against the real DC, broker and worker, and a Debian workstation with sssd
(es4ps_testkit.workstation) that joins with the one-time password alone: no
administrator credential anywhere on that path (the task goes through the
worker's own account, the join through the computer's). The worker's rights
on computers end at the computers OU (`OU=Computers` in the managed OU),
tried here with its own credential as an attacker holding it would.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import time
import uuid

import ldb
import pytest
from es4ps_contract.events import (
    REASON_COMPUTER_DELETED,
    REASON_COMPUTER_NAME_TAKEN,
    REASON_COMPUTER_NOT_FOUND,
    REASON_COMPUTER_NOT_OURS,
    Outcome,
)
from es4ps_contract.tasks import (
    DeleteComputer,
    DisableComputer,
    EnableComputer,
    EnableUser,
    MoveComputer,
    ReportComputers,
    ResetComputer,
)
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.plugins.services import started
from es4ps_testkit.tasks import PASSWORD, binding, computer, create_task, prestage_task, run
from es4ps_testkit.workstation import Workstation
from samba.dsdb import UF_ACCOUNTDISABLE, UF_WORKSTATION_TRUST_ACCOUNT

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]

JOIN_PASSWORD = "Join7-Kq4mz-Vr8pt-Hx2wd"
SECOND_JOIN_PASSWORD = "Join9-Tn3bc-Wq6sy-Lp5fe"
UNIX = {
    "uid_range_start": 10000,
    "uid_range_end": 999999,
    "gid_number": 10513,
    "login_shell": "/bin/bash",
    "home_directory": "/home/placeholder",
}


def computers_ou(samba_dc) -> str:
    return f"OU=Computers,OU=ES4PS,{samba_dc.base_dn}"


def computer_object(samba_dc, name: str) -> ldb.Message | None:
    found = samba_dc.samdb().search(
        base=samba_dc.base_dn,
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={name}$)",
        attrs=["userAccountControl", "adminDescription", "dNSHostName"],
    )
    return found[0] if len(found) else None


def unique_computer_name() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


@pytest.fixture
def person(task_client, username) -> str:
    """A person of the domain with Unix attributes, enabled, made by the worker as the portal would."""
    assert run(task_client, create_task(task_client, username, unix=UNIX)).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    return username


@pytest.fixture
def machine(tmp_path, samba_dc):
    """An sssd workstation, installed and not joined, named as a fresh computer."""
    name = unique_computer_name()
    workstation = Workstation(tmp_path / "ws", samba_dc, hostname=name.lower(), client="sssd")
    started(workstation)
    yield workstation
    workstation.close()


def test_a_prestaged_computer_joins_with_its_one_time_password_and_logs_people_in(
    task_client, samba_dc, machine, person
):
    name = machine.hostname.upper()
    event = run(task_client, prestage_task(task_client, name, JOIN_PASSWORD))
    assert (event.outcome, event.operation, event.username) == (Outcome.SUCCEEDED, "prestage_computer", f"{name}$")
    prestaged = computer_object(samba_dc, name)
    assert str(prestaged.dn) == f"CN={name},{computers_ou(samba_dc)}"
    assert int(prestaged["userAccountControl"][0]) == UF_WORKSTATION_TRUST_ACCOUNT
    assert str(prestaged["adminDescription"][0]).startswith("es4ps registration=")

    machine.join_with_one_time_password(JOIN_PASSWORD)

    assert machine.login(person, PASSWORD)
    assert not machine.login(person, PASSWORD + "x")
    assert str(computer_object(samba_dc, name)["dNSHostName"][0]) == machine.fqdn
    # The join replaced the one-time password: it is void now, and the same task delivered again writes nothing.
    assert machine.run(*machine._adcli_join(), f"--one-time-password={JOIN_PASSWORD}").returncode != 0
    assert run(task_client, prestage_task(task_client, name, JOIN_PASSWORD)).outcome is Outcome.SUCCEEDED
    assert machine.login(person, PASSWORD)


def test_a_disabled_computer_logs_nobody_in_until_staff_enable_and_reset_it(task_client, samba_dc, machine, person):
    name = machine.hostname.upper()
    run(task_client, prestage_task(task_client, name, JOIN_PASSWORD))
    machine.join_with_one_time_password(JOIN_PASSWORD)
    assert machine.login(person, PASSWORD)

    started_at = time.monotonic()
    assert run(task_client, DisableComputer(**computer(name))).outcome is Outcome.SUCCEEDED
    # The workstation keeps its ticket; its keys no longer open the DC's tickets, so the next login fails.
    wait_until(lambda: not machine.login(person, PASSWORD), 30, "the disabled computer to refuse the login")
    print(f"disable task published -> first refused login: {time.monotonic() - started_at:.2f} s")
    assert int(computer_object(samba_dc, name)["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert not machine.login(person, PASSWORD)

    # Enabled again, it still cannot log anyone in (its password is one nobody keeps) until it joins again.
    assert run(task_client, EnableComputer(**computer(name))).outcome is Outcome.SUCCEEDED
    assert not machine.login(person, PASSWORD)
    sealed = task_client.seal(f"{name}$", SECOND_JOIN_PASSWORD)
    assert run(task_client, ResetComputer(sealed_password=sealed, **computer(name))).outcome is Outcome.SUCCEEDED
    machine.stop_client()
    machine.join_with_one_time_password(SECOND_JOIN_PASSWORD)
    # sssd starts offline from its cache and goes online within seconds; then it logs people in again.
    wait_until(lambda: machine.login(person, PASSWORD), 30, "the joined-again computer to log the person in")


def test_a_computer_moves_between_ous_and_its_deletion_is_final(task_client, samba_dc):
    name = unique_computer_name()
    assert run(task_client, prestage_task(task_client, name, JOIN_PASSWORD, ou="Labs")).outcome is Outcome.SUCCEEDED
    assert str(computer_object(samba_dc, name).dn) == f"CN={name},OU=Labs,{computers_ou(samba_dc)}"

    assert run(task_client, MoveComputer(ou="Library", **computer(name))).outcome is Outcome.SUCCEEDED
    assert str(computer_object(samba_dc, name).dn) == f"CN={name},OU=Library,{computers_ou(samba_dc)}"
    assert run(task_client, MoveComputer(ou="", **computer(name))).outcome is Outcome.SUCCEEDED
    assert str(computer_object(samba_dc, name).dn) == f"CN={name},{computers_ou(samba_dc)}"

    prestage = prestage_task(task_client, name, JOIN_PASSWORD)
    assert run(task_client, DeleteComputer(**computer(name))).outcome is Outcome.SUCCEEDED
    assert computer_object(samba_dc, name) is None
    # The same record pre-staged again (a captured task published later) is refused; a new record may take the name.
    assert (run(task_client, prestage).outcome, run(task_client, prestage).reason) == (
        Outcome.FAILED,
        REASON_COMPUTER_DELETED,
    )
    assert computer_object(samba_dc, name) is None
    fresh = prestage_task(task_client, name, JOIN_PASSWORD, computer_id=str(uuid.uuid4()))
    assert run(task_client, fresh).outcome is Outcome.SUCCEEDED
    assert computer_object(samba_dc, name) is not None


def test_tasks_of_another_record_or_for_computers_outside_the_ou_change_nothing(task_client, samba_dc):
    name = unique_computer_name()
    run(task_client, prestage_task(task_client, name, JOIN_PASSWORD))
    other = {"computer_id": str(uuid.uuid4())}
    events = [
        run(task_client, EnableComputer(**computer(name, **other))),
        run(task_client, MoveComputer(ou="Elsewhere", **computer(name, **other))),
        run(task_client, ResetComputer(sealed_password=task_client.seal(f"{name}$", "Other-9-pass"), **computer(name, **other))),  # noqa: E501
    ]  # fmt: skip
    assert {(e.outcome, e.reason) for e in events} == {(Outcome.FAILED, REASON_COMPUTER_NOT_OURS)}
    assert str(computer_object(samba_dc, name).dn) == f"CN={name},{computers_ou(samba_dc)}"

    # The DC's own account: its name is taken, and no task finds it.
    dc_name = samba_dc.hostname.upper()
    event = run(task_client, prestage_task(task_client, dc_name, JOIN_PASSWORD, computer_id=str(uuid.uuid4())))
    assert (event.outcome, event.reason) == (Outcome.FAILED, REASON_COMPUTER_NAME_TAKEN)
    event = run(task_client, DisableComputer(**computer(dc_name)), timeout_s=90)
    assert (event.outcome, event.reason) == (Outcome.FAILED, REASON_COMPUTER_NOT_FOUND)
    # A delete of a computer the OU does not hold counts as done (already absent), and leaves the DC alone.
    assert run(task_client, DeleteComputer(**computer(dc_name))).outcome is Outcome.SUCCEEDED
    dc_account = computer_object(samba_dc, dc_name)
    assert dc_account is not None and not int(dc_account["userAccountControl"][0]) & UF_ACCOUNTDISABLE


def test_the_worker_credential_cannot_touch_a_computer_outside_the_computers_ou(samba_dc):
    """The worker's rights grow to computer objects in its computers OU, and no further."""
    admin = samba_dc.samdb()
    samdb = samba_dc.samdb("es4ps-worker", samba_dc.worker_password)
    domain = samba_dc.base_dn
    joined_elsewhere = unique_computer_name()
    admin.add(
        {
            "dn": f"CN={joined_elsewhere},CN=Computers,{domain}",
            "objectClass": "computer",
            "sAMAccountName": f"{joined_elsewhere}$",
            "userAccountControl": str(UF_WORKSTATION_TRUST_ACCOUNT),
        }
    )
    dc_account = str(computer_object(samba_dc, samba_dc.hostname.upper()).dn)
    denied = {ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS, ldb.ERR_CONSTRAINT_VIOLATION}

    def refused(action) -> int:
        with pytest.raises(ldb.LdbError) as caught:
            action()
        return caught.value.args[0]

    def modify(dn: str, attribute: str, value: str | bytes):
        message = ldb.Message(ldb.Dn(samdb, dn))
        message[attribute] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, attribute)
        samdb.modify(message)

    disabled = str(UF_WORKSTATION_TRUST_ACCOUNT | UF_ACCOUNTDISABLE)
    password = '"Taken-0ver!pass"'.encode("utf-16-le")

    def attempts(target: str) -> list:
        moved = f"CN=moved-{uuid.uuid4().hex[:6]},{computers_ou(samba_dc)}"
        return [
            lambda: modify(target, "userAccountControl", disabled),
            lambda: modify(target, "unicodePwd", password),
            lambda: modify(target, "adminDescription", "es4ps registration=x"),
            lambda: samdb.delete(target),
            lambda: samdb.rename(target, moved),
        ]

    for target in (dc_account, f"CN={joined_elsewhere},CN=Computers,{domain}"):
        assert [refused(attempt) in denied for attempt in attempts(target)] == [True] * 5
    # Nor create one anywhere but in the computers OU (CN=Computers, the managed OU itself).
    for place in (f"CN=Computers,{domain}", f"OU=ES4PS,{domain}"):
        name = unique_computer_name()
        record = {
            "dn": f"CN={name},{place}",
            "objectClass": "computer",
            "sAMAccountName": f"{name}$",
            "userAccountControl": str(UF_WORKSTATION_TRUST_ACCOUNT),
        }
        assert refused(lambda record=record: samdb.add(record)) in denied
    assert not int(computer_object(samba_dc, samba_dc.hostname.upper())["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert computer_object(samba_dc, joined_elsewhere) is not None


def test_a_prestaged_computer_cannot_rewrite_its_own_binding(task_client, samba_dc):
    """The computer's own credential (the one-time password, as whoever holds it before the join) is refused."""
    name = unique_computer_name()
    run(task_client, prestage_task(task_client, name, JOIN_PASSWORD))
    itself = samba_dc.samdb(f"{name}$", JOIN_PASSWORD)
    line = str(computer_object(samba_dc, name)["adminDescription"][0])
    message = ldb.Message(ldb.Dn(itself, f"CN={name},{computers_ou(samba_dc)}"))
    message["adminDescription"] = ldb.MessageElement(
        f"es4ps registration={uuid.uuid4()}", ldb.FLAG_MOD_REPLACE, "adminDescription"
    )
    with pytest.raises(ldb.LdbError) as refused:
        itself.modify(message)
    assert refused.value.args[0] == ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS
    assert str(computer_object(samba_dc, name)["adminDescription"][0]) == line


def test_the_worker_reports_every_computer_of_the_domain(task_client, samba_dc):
    name = unique_computer_name()
    run(task_client, prestage_task(task_client, name, JOIN_PASSWORD, ou="Labs"))
    run(task_client, DisableComputer(**computer(name)))

    event = run(task_client, ReportComputers())

    assert event.outcome is Outcome.SUCCEEDED
    reported = {facts.name: facts for facts in event.computers}
    dc = reported[samba_dc.hostname.upper()]
    assert (dc.container, dc.enabled, dc.joined, dc.computer_id) == ("OU=Domain Controllers", True, True, "")
    assert dc.operating_system
    ours = reported[name]
    assert (ours.container, ours.enabled, ours.joined) == ("OU=Labs,OU=Computers,OU=ES4PS", False, False)
    assert ours.computer_id == computer(name)["computer_id"]
