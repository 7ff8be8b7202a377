"""Staff pre-stage a computer in the admin and a real workstation joins with the password the page showed.

With the real processes: `es4ps-portal serve` and `consume`, the worker and
Samba DC, RabbitMQ with mutual TLS, and a Debian workstation with sssd
(es4ps_testkit.workstation). No administrator credential is used on the
computer's path: the portal's task goes through the worker's account, the
join through the computer's own one-time password.
"""

from __future__ import annotations

import re
import uuid

import ldb
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.plugins.services import started
from es4ps_testkit.portal_client import PortalClient
from es4ps_testkit.registration import GOOD_PASSWORD
from es4ps_testkit.workstation import Workstation
from samba.dsdb import UF_ACCOUNTDISABLE

CHANGELIST = "/admin/provisioning/computer/"


def computer_row(live_portal, name: str) -> tuple | None:
    """(id, state, enabled, operating system) of the portal's record of the computer."""
    with live_portal.database() as database:
        query = "SELECT id, state, enabled, operating_system FROM provisioning_computer WHERE name = ?"
        return database.execute(query, (name,)).fetchone()


def directory_computer(samba_dc, name: str) -> ldb.Message | None:
    found = samba_dc.samdb().search(
        base=samba_dc.base_dn, scope=ldb.SCOPE_SUBTREE, expression=f"(sAMAccountName={name}$)",
        attrs=["userAccountControl"],
    )  # fmt: skip
    return found[0] if len(found) else None


def computer_action(staff: PortalClient, action: str, name: str, pk: int) -> str:
    page = staff.post(
        CHANGELIST,
        {"action": action, "_selected_action": str(pk), "index": "0"},
        form_page=f"{CHANGELIST}?q={name}",
    )
    assert page.status_code == 200, page.status_code
    return page.text


def test_a_computer_staff_prestage_joins_with_the_shown_password_and_stops_logging_in_once_disabled(
    live_portal, mail_catcher, samba_dc, username, tmp_path
):
    live_portal.ready_person(mail_catcher, username)
    staff = live_portal.signed_in_staff()
    name = "LIVE" + uuid.uuid4().hex[:8].upper()

    page = staff.post(f"{CHANGELIST}add/", {"name": name.lower(), "ou": "Labs"}, form_page=f"{CHANGELIST}add/")
    password = re.search(rf"<td>{name}</td><td><code class=\"join-password\">(\w+)</code>", page.text).group(1)
    assert "no-store" in page.headers["Cache-Control"]
    wait_until(lambda: computer_row(live_portal, name)[1] == "present", 60, "the pre-stage's result")
    assert str(directory_computer(samba_dc, name).dn).startswith(f"CN={name},OU=Labs,OU=Computers,OU=ES4PS,")

    workstation = Workstation(tmp_path / "ws", samba_dc, hostname=name.lower(), client="sssd")
    started(workstation)
    try:
        workstation.join_with_one_time_password(password)
        assert workstation.login(username, GOOD_PASSWORD)
        assert not workstation.login(username, GOOD_PASSWORD + "x")

        pk = computer_row(live_portal, name)[0]
        assert "done for 1 computer" in computer_action(staff, "disable", name, pk)
        wait_until(lambda: computer_row(live_portal, name)[2] == 0, 60, "the disable's result")
        assert int(directory_computer(samba_dc, name)["userAccountControl"][0]) & UF_ACCOUNTDISABLE
        wait_until(lambda: not workstation.login(username, GOOD_PASSWORD), 30, "the disabled computer to refuse")
    finally:
        workstation.close()

    # The list shows the domain's computers as a worker reports them: the DC too, with its OS.
    staff.post(f"{CHANGELIST}refresh/", {}, form_page=CHANGELIST)
    dc = samba_dc.hostname.upper()
    wait_until(lambda: computer_row(live_portal, dc) is not None, 60, "a report listing the DC")
    assert computer_row(live_portal, dc)[3]
    listed = staff.get(CHANGELIST).text
    assert dc in listed and name in listed
    trail = staff.get("/admin/audit/auditrecord/", params={"q": f"{name}$"}).text
    assert "pre-stage a computer" in trail and "disable the computer" in trail and "directory task finished" in trail
    assert password not in live_portal.logs() and password not in trail
