"""External mode end to end: the real portal of a domain whose accounts live in a directory the organisation runs.

`es4ps-portal serve` and `consume` with the variables the operator gives the
portal of such a domain (builders/portal.py, from a domain with
`spec.directory.external`: the directory's `ldaps://` URL by its DNS name, its
CA, its realm; the policies and Unix attributes of the spec), the real external
worker (`es4ps-worker`, named and keyed as the operator names it) on a broker of
the module's own, the SMTP catcher, and the outside directory
(es4ps_testkit.outside_ad: a Samba AD DC of its own domain with Microsoft AD's
default policy, its OU delegated to the worker's account). Both processes run
where the directory's name resolves, as the organisation's DNS resolves it for
their Pods. People and staff use the portal only; the tests look at the outside
directory itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import ldb
import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_operator import naming
from es4ps_operator.builders.portal import portal_environment
from es4ps_operator.config import Images, OperatorConfig
from es4ps_operator.domain import Domain
from es4ps_testkit.domains import MINIMAL_SPEC, make_domain
from es4ps_testkit.live_portal import LIVE_POLICIES, LIVE_UNIX, LivePortal, staff_action
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.outside_ad import DELEGATED_OU, OutsideAD, external_env
from es4ps_testkit.plugins.services import started
from es4ps_testkit.portal_client import PortalClient
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import ALLOWED_DOMAIN, CLIENT_RANGE, GOOD_PASSWORD, unique_client_ip, unique_username
from es4ps_testkit.samba import find_account, password_authenticates
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from samba.dcerpc import security
from samba.dsdb import UF_ACCOUNTDISABLE
from samba.ndr import ndr_unpack

pytestmark = pytest.mark.services

CHANGED_PASSWORD = "Second-Horse-43"  # noqa: S105 - test passwords
RESET_PASSWORD = "Third-Horse-44"  # noqa: S105
# The directory's own rules (Microsoft AD's Default Domain Policy), which the docs ask to repeat in the spec; its
# 7 characters as 8, the fewest the spec allows (the portal's forms ask a little more than the directory).
DIRECTORY_PASSWORD_POLICY = {"minLength": 8, "complexity": True, "historyLength": 24, "maxAgeDays": 42, "minAgeDays": 1}


@pytest.fixture(scope="module")
def external_domain(outside_ad: OutsideAD) -> Domain:
    """The ES4PSDomain of an organisation that provisions into its own directory (docs/external-directory.md)."""
    return make_domain(
        realm=outside_ad.realm,
        netbiosName=outside_ad.netbios_name,
        policies=LIVE_POLICIES,
        portal={**MINIMAL_SPEC["portal"], "admin": {"allowedSourceRanges": [CLIENT_RANGE]}},
        directory={
            "external": {
                "url": outside_ad.ldaps_url,
                "caSecretRef": {"name": "corp-ca"},
                "credentialsSecretRef": {"name": "corp-es4ps"},
                "ou": DELEGATED_OU,
            },
            "unix": LIVE_UNIX,
            "passwordPolicy": DIRECTORY_PASSWORD_POLICY,
        },
    )


@pytest.fixture(scope="module")
def external_worker(outside_ad, own_broker, own_keys, external_domain, tmp_path_factory) -> Iterator[DirectoryWorker]:
    """The domain's one worker, by the name the operator gives it (its result key's name for the portal)."""
    name = naming.external_worker_identity(external_domain).name
    # The product's default retries for a missing account (the operator sets none): after an outage the enable
    # may come back before the create that makes its account.
    env = {
        **external_env(outside_ad, own_broker, own_keys, tmp_path_factory, name=name),
        "ES4PS_WORKER_MAX_RETRIES": "15",
    }
    worker = DirectoryWorker(tmp_path_factory.mktemp("external-worker"), env, name=name, wrap=outside_ad.with_hosts)
    started(worker)
    yield worker
    worker.stop()


def operator_portal_env(
    domain: Domain, outside_ad: OutsideAD, broker: RabbitMQ, keys: ContractKeys, mail_catcher: MailCatcher
) -> dict[str, str]:
    """The portal's variables as the operator writes them for `domain`, the files its Pod mounts (Secrets under
    /etc/es4ps) given as this machine's files; what LivePortal sets itself (ports, data, staff) it sets."""
    config = OperatorConfig(images=Images(samba="samba", portal="portal", broker="broker"))
    written = {v["name"]: v["value"] for v in portal_environment(domain, config, ()) if "value" in v}
    return {
        **written,
        **broker.portal_env,
        **keys.portal_env,
        **mail_catcher.portal_env,
        "ES4PS_LDAP_CA_FILE": str(outside_ad.ca_file),
    }


@pytest.fixture(scope="module")
def external_portal(
    tmp_path_factory, external_domain, outside_ad, own_broker, own_keys, mail_catcher, external_worker
) -> Iterator[LivePortal]:
    env = operator_portal_env(external_domain, outside_ad, own_broker, own_keys, mail_catcher)
    portal = LivePortal(tmp_path_factory.mktemp("external-portal"), env, wrap=outside_ad.with_hosts)
    mounted = {name: value for name, value in portal.env.items() if value.startswith("/etc/es4ps/")}
    if mounted:
        pytest.fail(f"no file of this machine stands for the operator's {mounted}", pytrace=False)
    yield started(portal)
    portal.stop()


def task_states(status: dict) -> dict[str, str]:
    """Operation -> state of the newest task of each operation."""
    return {task["operation"]: task["state"] for task in status["tasks"]}


def disabled(outside_ad: OutsideAD, username: str) -> bool:
    account = find_account(outside_ad, username, attrs=["userAccountControl"])
    return bool(int(account["userAccountControl"][0]) & UF_ACCOUNTDISABLE)


def in_managed_ou(outside_ad: OutsideAD, relative: str = "") -> str:
    """A DN below the delegated OU, lower case (`relative`: e.g. "cn=x,ou=students")."""
    return ",".join(filter(None, [relative, DELEGATED_OU, outside_ad.base_dn])).lower()


def test_a_registration_lands_in_the_outside_directory_with_its_policy_and_signs_in(
    external_portal, mail_catcher, outside_ad, username
):
    email = f"{username}@students.{ALLOWED_DOMAIN}"
    person = external_portal.client(unique_client_ip())
    person.register(username, email)
    assert person.status()["tasks"] == []
    assert find_account(outside_ad, username) is None  # nothing before the address is proven

    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    ready = person.wait_for_status(lambda s: s["state"] == "ready")
    assert ready["message"] == f"Your account is ready. Sign in as {username}@{outside_ad.realm}."
    assert task_states(ready) == {"create_user": "done", "enable_user": "done"}

    # The policy of students.acme.example: OU Students and two groups, all below the delegated OU.
    attrs = ["objectSid", "memberOf", "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory", "userAccountControl"]
    account = find_account(outside_ad, username, attrs=attrs)
    assert str(account.dn).lower() == in_managed_ou(outside_ad, f"cn={username},ou=students")
    assert sorted(str(group).lower() for group in account["memberOf"]) == [
        in_managed_ou(outside_ad, "cn=students"),
        in_managed_ou(outside_ad, "cn=wifi"),
    ]
    rid = int(str(ndr_unpack(security.dom_sid, account["objectSid"][0])).rsplit("-", 1)[1])
    assert int(account["uidNumber"][0]) == LIVE_UNIX["uidRange"]["start"] + rid
    assert (str(account["loginShell"][0]), str(account["unixHomeDirectory"][0])) == ("/bin/bash", f"/home/{username}")
    assert not disabled(outside_ad, username)
    assert password_authenticates(outside_ad, username, GOOD_PASSWORD)

    # The portal's sign-in asks the outside directory.
    assert "The username or password is not right." in person.login(username, "Wrong-Horse-42").text
    signed_in = person.login(username, GOOD_PASSWORD)
    assert signed_in.url.endswith("/account/")
    assert f"{username}@{outside_ad.realm}" in signed_in.text


def test_a_password_change_and_a_reset_by_mail_reach_the_outside_directory(
    external_portal, mail_catcher, outside_ad, username
):
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = external_portal.ready_person(mail_catcher, username)
    # No policy for acme.example: the delegated OU itself, no groups.
    account = find_account(outside_ad, username, attrs=["memberOf"])
    assert str(account.dn).lower() == in_managed_ou(outside_ad, f"cn={username}")
    assert "memberOf" not in account
    person.login(username, GOOD_PASSWORD)

    # The portal checks the current password against the outside directory before it sends a change.
    wrong_current = person.post(
        "/account/password/",
        {"current_password": "Not-My-Pass-1", "new_password1": CHANGED_PASSWORD, "new_password2": CHANGED_PASSWORD},
    )
    assert "This is not your current password." in wrong_current.text
    changed = person.post(
        "/account/password/",
        {"current_password": GOOD_PASSWORD, "new_password1": CHANGED_PASSWORD, "new_password2": CHANGED_PASSWORD},
    )
    assert changed.url.endswith("/status/")
    person.wait_for_status(lambda s: task_states(s).get("set_password") == "done")
    assert password_authenticates(outside_ad, username, CHANGED_PASSWORD)
    # The old password is not checked here: Samba applies its `old password allowed period` (60 minutes, the
    # organisation's setting) to simple binds, so the directory, and the portal asking it, still take it
    # (docs/external-directory.md).
    notice = mail_catcher.wait_for(email, count=2)
    assert f'the password of the account "{username}" in {outside_ad.realm} was changed on' in notice.text
    again = external_portal.client(unique_client_ip()).login(username, CHANGED_PASSWORD)
    assert again.url.endswith("/account/")

    # Forgotten: a reset by mail, minutes after the change (the directory's minimum age does not apply to it).
    stranger = external_portal.client(unique_client_ip())
    stranger.post("/password/reset/", {"email": email})
    link = mail_catcher.wait_for(email, count=3).link("/password/reset/confirm/")
    assert stranger.reset_password(link, RESET_PASSWORD).url.endswith("/status/")
    stranger.wait_for_status(lambda s: task_states(s).get("set_password") == "done")
    assert password_authenticates(outside_ad, username, RESET_PASSWORD)
    assert not password_authenticates(outside_ad, username, "Wrong-" + RESET_PASSWORD)
    assert external_portal.client(unique_client_ip()).login(username, RESET_PASSWORD).url.endswith("/account/")
    assert RESET_PASSWORD not in external_portal.logs() and CHANGED_PASSWORD not in external_portal.logs()


def wait_for_task(staff: PortalClient, username: str, shown: str) -> None:
    """Until the admin's user list shows the account's last task as `shown` (e.g. "disable the account: done")."""
    wait_until(
        lambda: shown in staff.get("/admin/accounts/user/", params={"q": username}).text, 60, f"{shown!r} in the admin"
    )


def test_staff_disable_and_delete_reach_the_outside_directory(external_portal, mail_catcher, outside_ad, username):
    person = external_portal.ready_person(mail_catcher, username)
    staff = external_portal.signed_in_staff()
    pk = external_portal.user_pk(username)
    assert password_authenticates(outside_ad, username, GOOD_PASSWORD)

    assert "done for 1 account" in staff_action(staff, "disable", username, pk)
    wait_for_task(staff, username, "disable the account: done")
    assert disabled(outside_ad, username)
    assert not password_authenticates(outside_ad, username, GOOD_PASSWORD)
    assert person.status()["state"] == "disabled"

    staff_action(staff, "delete", username, pk)
    wait_until(lambda: external_portal.user_pk(username) is None, 60, "the portal to forget the deleted account")
    assert find_account(outside_ad, username) is None


def test_a_registration_cannot_take_an_account_outside_the_ou(external_portal, mail_catcher, outside_ad, username):
    """An attacker registers the name of an account the directory's staff made outside the delegated OU (as a
    takeover would): the worker's account may not touch it, and the portal says the name is taken."""
    own_password = "Staff-Passw0rd!1"  # noqa: S105 - a test password
    outside_ad.add_user(username, own_password)
    before = find_account(outside_ad, username, attrs=["userAccountControl", "pwdLastSet", "adminDescription"])

    person = external_portal.client(unique_client_ip())
    email = f"{username}@{ALLOWED_DOMAIN}"
    person.register(username, email)
    person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
    refused = person.wait_for_status(lambda s: s["state"] not in ("in_progress", "waiting_for_verification"))
    assert refused["state"] == "name_taken", refused

    after = find_account(outside_ad, username, attrs=["userAccountControl", "pwdLastSet", "adminDescription"])
    assert str(after.dn).lower() == f"cn={username},cn=users,{outside_ad.base_dn}".lower()
    assert {k: list(after[k]) for k in after if k != "dn"} == {k: list(before[k]) for k in before if k != "dn"}
    assert password_authenticates(outside_ad, username, own_password)
    assert not password_authenticates(outside_ad, username, GOOD_PASSWORD)
    assert (
        outside_ad.samdb()
        .search(outside_ad.base_dn, scope=ldb.SCOPE_SUBTREE, expression=f"(sAMAccountName={username})")
        .count
        == 1
    )


def test_a_registration_waits_while_the_outside_directory_is_away(
    external_portal, external_worker, mail_catcher, outside_ad, username
):
    registered_before = unique_username("ext")
    external_portal.ready_person(mail_catcher, registered_before)
    email = f"{username}@{ALLOWED_DOMAIN}"
    person = external_portal.client(unique_client_ip())
    person.register(username, email)
    outside_ad.stop()
    try:
        # A sign-in meanwhile is told the directory is away, not that the password is wrong.
        away = external_portal.client(unique_client_ip()).login(registered_before, GOOD_PASSWORD)
        assert "The directory cannot be reached right now." in away.text
        person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
        # Past the worker's retry limit (1) the create still waits for the directory: retried, never failed.
        external_worker.wait_for_log(f"(create_user {username}): the directory is unavailable", timeout_s=60)
        external_worker.wait_for_log(
            f"(create_user {username}): the directory is unavailable (LDAP error 1); retry 3", timeout_s=60
        )
        waiting = person.status()
        assert (waiting["state"], task_states(waiting)) == (
            "in_progress",
            {"create_user": "queued", "enable_user": "queued"},
        )
    finally:
        outside_ad.start()

    ready = person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=180)
    assert (ready["state"], task_states(ready)) == ("ready", {"create_user": "done", "enable_user": "done"}), ready
    assert password_authenticates(outside_ad, username, GOOD_PASSWORD)
    assert external_portal.client(unique_client_ip()).login(username, GOOD_PASSWORD).url.endswith("/account/")
