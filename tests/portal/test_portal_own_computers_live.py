"""A person pre-stages a computer from their account page and it is joinable with the password the page showed.

With the real processes: `es4ps-portal serve` and `consume`, the worker and Samba DC, RabbitMQ with mutual
TLS. The live portal's students may pre-stage LIVE_COMPUTERS_PER_PERSON computers (es4ps_testkit.live_portal);
other people none. Joinable is checked the cheap way a join starts: a Kerberos login as the computer's account
(`NAME$`) with the one-time password (test_portal_computers_live.py joins a real workstation with staff's).
Two requests at once for the last place, against two replicas on PostgreSQL: test_portal_replicas.py.
"""

from __future__ import annotations

import re
import uuid

import ldb
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.directory_checks import kerberos_login
from es4ps_testkit.live_portal import LIVE_COMPUTERS_PER_PERSON
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD

ACCOUNT = "/account/"
PRESTAGE = "/account/computers/"
STUDENTS = f"students.{ALLOWED_DOMAIN}"


def signed_in(live_portal, mail_catcher, username: str, domain: str = ALLOWED_DOMAIN):
    """A person whose account is ready, signed in on the portal."""
    person = live_portal.ready_person(mail_catcher, username, domain)
    assert person.login(username, GOOD_PASSWORD).url.endswith(ACCOUNT)
    return person


def prestage(person, name: str):
    """Pre-stage `name` from the person's account page: (the answer, the one-time password it shows or None)."""
    page = person.post(PRESTAGE, {"name": name.lower()}, form_page=ACCOUNT)
    found = re.search(r'<code class="join-password">([A-Za-z0-9]+)</code>', page.text)
    return page, found.group(1) if found else None


def computer_state(live_portal, name: str) -> tuple | None:
    with live_portal.database() as database:
        query = "SELECT c.state, u.username FROM provisioning_computer c LEFT JOIN accounts_user u ON u.id = c.owner_id"
        return database.execute(f"{query} WHERE c.name = ?", (name,)).fetchone()


def test_a_person_prestages_computers_from_their_page_up_to_the_policys_number(
    live_portal, mail_catcher, samba_dc, username
):
    person = signed_in(live_portal, mail_catcher, username, STUDENTS)
    assert "Your computers" in person.get(ACCOUNT).text
    names = ["MY" + uuid.uuid4().hex[:8].upper() for _ in range(LIVE_COMPUTERS_PER_PERSON + 1)]

    page, password = prestage(person, names[0])

    assert page.status_code == 200 and password and "no-store" in page.headers["Cache-Control"]
    wait_until(lambda: computer_state(live_portal, names[0])[0] == "present", 60, "the pre-stage's result")
    assert computer_state(live_portal, names[0]) == ("present", username)
    found = samba_dc.samdb().search(
        base=samba_dc.base_dn, scope=ldb.SCOPE_SUBTREE, expression=f"(sAMAccountName={names[0]}$)", attrs=["cn"]
    )
    assert str(found[0].dn).startswith(f"CN={names[0]},OU=Computers,OU=ES4PS,")
    # Joinable with the shown password (what adcli --one-time-password logs in with), and with no other.
    assert kerberos_login(samba_dc.address, samba_dc.realm, f"{names[0]}$", password)
    assert not kerberos_login(samba_dc.address, samba_dc.realm, f"{names[0]}$", password[::-1])
    assert names[0] in person.get(ACCOUNT).text and password not in person.get(ACCOUNT).text

    for name in names[1:LIVE_COMPUTERS_PER_PERSON]:
        assert prestage(person, name)[1]
    refused, none = prestage(person, names[-1])
    assert none is None and "You may not pre-stage more computers: your policy allows 2." in refused.text
    assert computer_state(live_portal, names[-1]) is None
    assert password not in live_portal.logs()


def test_another_person_sees_none_of_them_and_one_without_computers_in_their_policy_is_refused(
    live_portal, mail_catcher, username
):
    student = signed_in(live_portal, mail_catcher, f"{username}s", STUDENTS)
    theirs = "MY" + uuid.uuid4().hex[:8].upper()
    assert prestage(student, theirs)[1]
    other_student = signed_in(live_portal, mail_catcher, f"{username}o", STUDENTS)
    assert "Your computers" in other_student.get(ACCOUNT).text and theirs not in other_student.get(ACCOUNT).text
    # Someone else's name is refused, clearly.
    taken, none = prestage(other_student, theirs)
    assert none is None and "a computer of this name is in the domain already" in taken.text

    person = signed_in(live_portal, mail_catcher, f"{username}p")  # at the allowed domain: no policy, no computers
    assert "Your computers" not in person.get(ACCOUNT).text
    refused, none = prestage(person, "MY" + uuid.uuid4().hex[:8].upper())
    assert refused.status_code == 403 and none is None
    assert computer_state(live_portal, theirs)[1] == f"{username}s"
