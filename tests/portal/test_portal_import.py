"""ES4PS-Containers' people imported into the portal, their accounts moved by an administrator, claimed by them.

The real processes of every component: `es4ps-portal serve` and `consume`,
the directory worker, a Samba AD DC, RabbitMQ with mutual TLS, an SMTP
server. The DC holds accounts made exactly as ES4PS-Containers' worker makes
them (es4ps_testkit.legacy: newuser in CN=Users, no `mail`; on a domain that
joined the old one, these are the accounts it replicated); the old portal's
database is its SQLite file as Django 5 creates it. The steps are the
runbook's (docs/migration.md): `es4ps-portal manage import_es4ps_containers`,
`es4ps-samba-dc move-legacy-accounts` as the Administrator, then each person
claims their account through the reset mail.
"""
# ruff: noqa: S105 - test passwords

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit import ServiceError
from es4ps_testkit.legacy import (
    LegacyPerson,
    add_legacy_accounts,
    dumpdata_json,
    legacy_portal_database,
    legacy_portal_postgres,
    move_legacy_accounts,
    sqlite_dump,
)
from es4ps_testkit.live_portal import STAFF_USERNAME, staff_action
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_client_ip, unique_username
from es4ps_testkit.samba import find_account, password_authenticates

MANAGED_OU = "OU=ES4PS"
NEW_PASSWORD = "Claimed-Orchid-57"


def person(prefix: str, **changes) -> LegacyPerson:
    name = unique_username(prefix)
    fields = {"email": f"{name}@{ALLOWED_DOMAIN}", "first_name": "Ana", "last_name": "Lima"}
    return LegacyPerson(name, **{**fields, **changes, "password": f"Old-Pass-{name}-1"})


def import_people(live_portal, tmp_path, people: list[LegacyPerson], *extra: str) -> tuple[dict, list]:
    """The old portal's database holding `people`, imported; (the JSON report, the accounts file's entries)."""
    database = tmp_path / "db.sqlite3"
    if not database.exists():
        legacy_portal_database(database, people)
    report, accounts = tmp_path / "report.json", tmp_path / "accounts.json"
    live_portal.manage(
        "import_es4ps_containers", str(database), "--report", str(report), "--accounts-file", str(accounts), *extra
    )
    return json.loads(report.read_text()), json.loads(accounts.read_text())


def portal_row(live_portal, username: str):
    with live_portal.database() as database:
        query = "SELECT directory_state, email, imported_at, email_verified_at FROM accounts_user WHERE username = ?"
        return database.execute(query, (username,)).fetchone()


def tasks_of(live_portal, username: str) -> list[tuple[str, str]]:
    with live_portal.database() as database:
        query = (
            "SELECT operation, state FROM accounts_provisioningtask"
            " WHERE user_id = (SELECT id FROM accounts_user WHERE username = ?) ORDER BY id"
        )
        return database.execute(query, (username,)).fetchall()


def in_managed_ou(samba_dc, username: str) -> bool:
    account = find_account(samba_dc, username, ["mail"])
    return account is not None and str(account.dn).upper().endswith(f",{MANAGED_OU},{samba_dc.base_dn}".upper())


def test_the_import_reports_every_row_writes_nothing_in_a_dry_run_and_converges(live_portal, samba_dc, tmp_path):
    ana, bruno = person("ia"), person("ib")
    missing = person("ic", in_directory=False)  # a row whose account is not in the directory
    admin = person("id")  # a person whose account someone made a Domain Admin
    gone = person("il")  # a person whose account staff disabled in the directory
    skipped = {
        "staff": person("ie", staff=True),
        "unverified": person("if", verified=False),
        "inactive": person("ig", active=False),
        "outside": person("ih", email=f"{unique_username('x')}@elsewhere.example"),
        "name held": LegacyPerson(STAFF_USERNAME, f"{unique_username('y')}@{ALLOWED_DOMAIN}", "S", "T", "Pass-1"),
        "address held": person("ii", email=f"{STAFF_USERNAME}@{ALLOWED_DOMAIN}"),
        "duplicate 1": person("ij", email=f"shared{unique_username('z')}@{ALLOWED_DOMAIN}"),
    }
    skipped["duplicate 2"] = person("ik", email=skipped["duplicate 1"].email.upper())
    people = [ana, bruno, missing, admin, gone, *skipped.values()]
    add_legacy_accounts(samba_dc.samdb(), [p for p in people if p.username != STAFF_USERNAME])
    samba_dc.samdb().add_remove_group_members("Domain Admins", [admin.username])
    samba_dc.samdb().disable_account(f"(sAMAccountName={gone.username})")
    importable = {ana.username, bruno.username, missing.username, admin.username, gone.username}

    dry, _ = import_people(live_portal, tmp_path, people, "--dry-run")
    assert dry["dry_run"] is True
    assert {entry["username"] for entry in dry["imported"]} == importable
    assert [portal_row(live_portal, name) for name in importable] == [None] * 5, "the dry run wrote"

    report, accounts = import_people(live_portal, tmp_path, people)
    assert {entry["username"] for entry in report["imported"]} == importable
    reasons = {entry["username"]: entry["reason"] for entry in report["skipped"]}
    assert reasons == {
        skipped["staff"].username: "a staff row of the old portal (staff are not imported)",
        skipped["unverified"].username: "the old portal never verified the address",
        skipped["inactive"].username: "inactive in the old portal",
        skipped["outside"].username: "the address is outside the allowed domains",
        STAFF_USERNAME: "the name is held by someone else in this portal",
        skipped["address held"].username: "the address is held by someone else in this portal",
        skipped["duplicate 1"].username: "the address is held by more than one row of the old portal",
        skipped["duplicate 2"].username: "the address is held by more than one row of the old portal",
    }
    assert report["counts"]["imported"] == 5 and report["counts"]["skipped"] == 8
    state, email, imported_at, verified_at = portal_row(live_portal, ana.username)
    assert (state, email, verified_at) == ("unclaimed", ana.email, None) and imported_at is not None

    again, accounts_again = import_people(live_portal, tmp_path, people)
    assert again["imported"] == [] and again["counts"]["already imported"] == 5
    assert accounts_again == accounts and {entry["username"] for entry in accounts} == importable

    # The administrator's step: killed half-way through bruno (his mail written, not moved yet) before.
    bruno_account = find_account(samba_dc, bruno.username, ["mail"])
    samba_dc.samdb().modify_ldif(f"dn: {bruno_account.dn}\nchangetype: modify\nreplace: mail\nmail: {bruno.email}\n")
    code, moved, stderr = move_legacy_accounts(samba_dc, tmp_path / "accounts.json")
    assert code == 0, stderr
    assert sorted(moved["moved"]) == sorted([ana.username, bruno.username]) and moved["already_moved"] == []
    reasons = {entry["username"]: entry["reason"] for entry in moved["skipped"]}
    assert reasons.keys() == {missing.username, admin.username, gone.username}
    assert reasons[missing.username] == "no account of this name in the directory"
    assert reasons[gone.username] == "the account is disabled in the directory (left alone: a claim would enable it)"
    assert (
        reasons[admin.username].startswith("a privileged account (member of ")
        and "Domain Admins" in reasons[admin.username]
    )
    assert in_managed_ou(samba_dc, ana.username) and not in_managed_ou(samba_dc, admin.username)
    assert str(find_account(samba_dc, ana.username, ["mail"])["mail"][0]) == ana.email
    code, twice, _ = move_legacy_accounts(samba_dc, tmp_path / "accounts.json")
    assert code == 0 and twice["moved"] == [] and sorted(twice["already_moved"]) == sorted(moved["moved"])
    assert twice["skipped"] == moved["skipped"]
    # Moved, the old password still signs in: nobody is locked out by the migration.
    assert password_authenticates(samba_dc, ana.username, ana.password)


@pytest.mark.parametrize(("name", "export"), [("dump.sql", sqlite_dump), ("dumpdata.json", dumpdata_json)])
def test_the_import_reads_the_old_portals_sql_dump_and_dumpdata_alike(live_portal, tmp_path, name, export):
    people = [person("sa"), person("sb", verified=False)]
    database = legacy_portal_database(tmp_path / "old.sqlite3", people)
    (tmp_path / name).write_text(export(database))
    output = live_portal.manage("import_es4ps_containers", str(tmp_path / name), "--dry-run")
    assert "2 rows read" in output and "1 would be imported, 0 already imported" in output
    assert f"skipped row 2 ({people[1].username}): the old portal never verified the address" in output
    assert portal_row(live_portal, people[0].username) is None


def test_the_import_reads_an_old_portal_on_postgresql_and_never_shows_its_password(live_portal, postgres):
    people = [person("pa"), person("pb", staff=True)]
    url = postgres.create_database("es4ps_containers")
    legacy_portal_postgres(url, people)
    output = live_portal.manage("import_es4ps_containers", url, "--dry-run")
    assert "2 rows read" in output and "1 would be imported, 0 already imported" in output
    assert f"({people[1].username}): a staff row of the old portal" in output
    password = urlsplit(url).password
    wrong = url.replace(f":{password}@", ":Not-the-password-1@")
    with pytest.raises(ServiceError) as refused:
        live_portal.manage("import_es4ps_containers", wrong, "--dry-run")
    assert "the PostgreSQL database could not be read" in str(refused.value)
    assert "Not-the-password-1" not in str(refused.value) and password not in str(refused.value)


@pytest.fixture
def imported(live_portal, samba_dc, tmp_path) -> LegacyPerson:
    """A person of the old portal, imported, their account moved into the managed OU by the administrator."""
    someone = person("cl")
    add_legacy_accounts(samba_dc.samdb(), [someone])
    report, _ = import_people(live_portal, tmp_path, [someone])
    assert [entry["username"] for entry in report["imported"]] == [someone.username]
    code, moved, stderr = move_legacy_accounts(samba_dc, tmp_path / "accounts.json")
    assert code == 0 and moved["moved"] == [someone.username], stderr
    return someone


def ask_for_the_reset_mail(live_portal, email: str):
    return live_portal.client(unique_client_ip()).post("/password/reset/", {"email": email})


def test_an_imported_person_claims_their_account_and_the_old_password_ends_then(
    live_portal, mail_catcher, samba_dc, imported
):
    assert password_authenticates(samba_dc, imported.username, imported.password)
    owner = live_portal.client(unique_client_ip())
    asked = owner.post("/password/reset/", {"email": imported.email})
    assert asked.status_code == 200
    link = mail_catcher.wait_for(imported.email).link("/password/reset/confirm/")
    page = owner.get(link)
    assert page.status_code == 200 and imported.username in page.text
    token = link.split("token=", 1)[1]
    chosen = owner.post(link, {"token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert chosen.url.endswith("/status/"), chosen.text[-2000:]
    owner.wait_for_status(lambda s: s["state"] == "ready", timeout_s=120)

    assert password_authenticates(samba_dc, imported.username, NEW_PASSWORD)
    assert not password_authenticates(samba_dc, imported.username, imported.password)
    account = find_account(samba_dc, imported.username, ["adminDescription", "mail"])
    assert str(account["adminDescription"][0]).startswith("es4ps registration=")
    assert [operation for operation, _ in tasks_of(live_portal, imported.username)] == ["create_user", "enable_user"]
    assert portal_row(live_portal, imported.username)[0] == "enabled"
    # From here the portal signs them in with the new password, like anyone it registered.
    assert owner.login(imported.username, NEW_PASSWORD).url.endswith("/account/")


def test_staff_send_an_imported_person_the_mail_that_claims_the_account(live_portal, mail_catcher, imported):
    staff = live_portal.signed_in_staff()
    sent = staff_action(staff, "send_password_reset_mail", imported.username, live_portal.user_pk(imported.username))
    assert "done for 1 account" in sent
    link = mail_catcher.wait_for(imported.email).link("/password/reset/confirm/")
    page = live_portal.client(unique_client_ip()).get(link)
    assert page.status_code == 200 and imported.username in page.text


def test_staff_deleting_an_unclaimed_record_forget_it_and_leave_the_account_alone(live_portal, samba_dc, imported):
    before = str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0])
    staff = live_portal.signed_in_staff()
    assert "done for 1 account" in staff_action(
        staff, "delete", imported.username, live_portal.user_pk(imported.username)
    )
    assert portal_row(live_portal, imported.username) is None
    assert str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0]) == before
    assert password_authenticates(samba_dc, imported.username, imported.password)


def test_an_unclaimed_account_is_untouched_by_the_expiry_of_registrations(live_portal, samba_dc, imported):
    before = str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0])
    live_portal.manage("expire_registrations")
    assert portal_row(live_portal, imported.username)[0] == "unclaimed"
    assert tasks_of(live_portal, imported.username) == []
    assert str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0]) == before
    assert password_authenticates(samba_dc, imported.username, imported.password)


def test_an_outsider_who_knows_the_name_and_address_gets_nothing(
    live_portal, mail_catcher, samba_dc, imported, username
):
    before = str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0])
    outsider = live_portal.client(unique_client_ip())
    # The same answer for the imported address as for an address nobody has.
    nobody = f"{username}@{ALLOWED_DOMAIN}"
    for_imported = outsider.post("/password/reset/", {"email": imported.email})
    for_nobody = live_portal.client(unique_client_ip()).post("/password/reset/", {"email": nobody})
    assert for_imported.status_code == for_nobody.status_code == 200
    assert same_page(for_imported.text, imported.email) == same_page(for_nobody.text, nobody)
    # The mail goes to the mailbox, which the outsider cannot read; a made-up link does nothing.
    mail_catcher.wait_for(imported.email)
    forged = outsider.get("/password/reset/confirm/?token=" + "A" * 43)
    assert forged.status_code == 400
    # Registering the name and the address: no account, no task, the mail (if any) goes to the owner.
    registered = outsider.register(imported.username, imported.email)
    assert registered.status_code == 200 and registered.url.endswith("/status/")
    # A sign-in with a guessed password, and with the old one (the outsider may have it from elsewhere): no.
    assert not outsider.login(imported.username, GOOD_PASSWORD).url.endswith("/account/")
    wait_until(lambda: not registrations_waiting(live_portal), 60, "the consumer handled the registration form")
    assert tasks_of(live_portal, imported.username) == []
    assert portal_row(live_portal, imported.username)[0] == "unclaimed"
    assert str(find_account(samba_dc, imported.username, ["uSNChanged"])["uSNChanged"][0]) == before
    assert password_authenticates(samba_dc, imported.username, imported.password)


def same_page(text: str, address: str) -> str:
    """A page with the address it names and its CSRF token (new on every page) left out."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text.replace(address, "ADDRESS"))


def registrations_waiting(live_portal) -> int:
    with live_portal.database() as database:
        query = "SELECT count(*) FROM accounts_registrationrequest WHERE handled_at IS NULL"
        return database.execute(query).fetchone()[0]


def test_a_claim_before_the_administrator_moved_the_account_fails_and_succeeds_once_it_is_moved(
    live_portal, mail_catcher, samba_dc, tmp_path
):
    early = person("ea")
    add_legacy_accounts(samba_dc.samdb(), [early])
    import_people(live_portal, tmp_path, [early])
    owner = live_portal.client(unique_client_ip())

    def claim(count: int) -> None:
        assert owner.post("/password/reset/", {"email": early.email}).status_code == 200
        link = mail_catcher.wait_for(early.email, count=count).link("/password/reset/confirm/")
        token = link.split("token=", 1)[1]
        chosen = owner.post(link, {"token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert chosen.url.endswith("/status/"), chosen.text[-2000:]

    claim(1)  # the account is still in CN=Users: the worker may not take it on
    wait_until(lambda: portal_row(live_portal, early.username)[0] == "failed", 120, "the claim refused")
    assert not in_managed_ou(samba_dc, early.username)
    refused = owner.status()
    assert refused["state"] == "failed" and refused["can_withdraw"] is False
    assert refused["message"].startswith("Your account cannot be claimed yet: your IT staff have not made it ready.")
    withdrawn = owner.post("/register/withdraw/", {}, form_page="/status/")
    assert "This registration cannot be withdrawn here." in withdrawn.text
    assert portal_row(live_portal, early.username)[0] == "failed", "the imported record was withdrawn"
    assert password_authenticates(samba_dc, early.username, early.password), "the refused claim changed the account"

    code, moved, stderr = move_legacy_accounts(samba_dc, tmp_path / "accounts.json")
    assert code == 0 and moved["moved"] == [early.username], stderr
    claim(2)
    owner.wait_for_status(lambda s: s["state"] == "ready", timeout_s=120)
    assert password_authenticates(samba_dc, early.username, NEW_PASSWORD)
    assert not password_authenticates(samba_dc, early.username, early.password)
