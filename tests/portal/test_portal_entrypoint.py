"""`es4ps-portal`, the image's command: clear errors, and `serve` converges when run again."""

from __future__ import annotations

import subprocess

import pytest
from es4ps_localcluster.paths import VENV_BIN
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.registration import unique_client_ip

PORTAL = str(VENV_BIN / "es4ps-portal")


def test_without_a_command_it_prints_its_usage():
    result = subprocess.run([PORTAL], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "usage: es4ps-portal serve | consume | manage" in result.stderr


@pytest.mark.parametrize(
    ("command", "change", "message"),
    [
        (
            "serve",
            {"ES4PS_REALM": None},
            "ES4PS_REALM is not set (the realm: logins bind as `<username>@<realm>`) (see docs/interfaces.md)",
        ),
        ("serve", {"ES4PS_ALLOWED_EMAIL_DOMAINS": "acme..example"}, "'acme..example' is not a valid domain name"),
        ("serve", {"ES4PS_PORTAL_WORKERS": "0"}, "ES4PS_PORTAL_WORKERS must be at least 1 (see docs/interfaces.md)"),
        (
            "serve",
            {"ES4PS_UNVERIFIED_RETENTION_HOURS": "12"},
            "ES4PS_UNVERIFIED_RETENTION_HOURS must be 0 (keep) or at least ES4PS_TOKEN_TTL_HOURS: "
            "a registration must outlive its verification mail",
        ),
        (
            "consume",
            {"ES4PS_BROKER_URL": None},
            "ES4PS_BROKER_URL is not set (`amqps://<host>:5671/<vhost>`, no credentials: the certificate logs in)",
        ),
    ],
)
def test_a_missing_or_wrong_setting_is_named(tmp_path, command, change, message):
    portal = LivePortal(tmp_path, {"ES4PS_REALM": "ES4PS.TEST", "ES4PS_BROKER_URL": "amqps://127.0.0.1:1/es4ps"})
    env = {k: v for k, v in {**portal.env, **change}.items() if v is not None}
    if command == "consume":  # it waits for the schema first
        (tmp_path / "data").mkdir()
        subprocess.run([PORTAL, "manage", "migrate"], env=env, capture_output=True, timeout=120, check=True)
    result = subprocess.run([PORTAL, command], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(message)


@pytest.fixture
def broker_only_env(rabbitmq, contract_keys, mail_catcher) -> dict[str, str]:
    """What `serve` and `consume` need to become ready (no DC: nobody signs in here)."""
    return {**rabbitmq.portal_env, **contract_keys.portal_env, **mail_catcher.portal_env, "ES4PS_REALM": "ES4PS.TEST"}


def test_serve_runs_again_on_its_data_and_brings_the_superuser_in_line(tmp_path, broker_only_env):
    portal = LivePortal(tmp_path, broker_only_env)
    first_password = portal.staff_password
    try:
        portal.start()
    finally:
        portal.stop()
    # A restart (or a second replica of the same spec) with a rotated staff password.
    portal.staff_password = "Rotated-" + first_password
    (tmp_path / "staff-password").write_text(portal.staff_password)
    try:
        portal.start()
        staff = portal.client(unique_client_ip())
        refused = staff.post("/admin/login/", {"username": "staff", "password": first_password, "otp_token": "0"})
        assert "/admin/login/" in refused.url
        accepted = portal.sign_in_staff(staff)
        assert accepted.url.endswith("/admin/")
    finally:
        portal.stop()
    assert "Applying accounts.0001_initial" in portal.serve_log.read_text()
    assert portal.serve_log.read_text().count("Applying accounts.0001_initial") == 1
    assert portal.staff_password not in portal.logs()


def test_consume_waits_for_the_schema_that_serve_applies(tmp_path, broker_only_env):
    portal = LivePortal(tmp_path, broker_only_env)
    consumer = subprocess.Popen(
        [PORTAL, "consume"], env=portal.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        first_line = consumer.stdout.readline()
        assert "waiting for the database schema" in first_line
        assert consumer.poll() is None
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        consumer.stdout.close()
    # Started in the usual order, both come up (LivePortal waits for the consumer's "ready.").
    try:
        portal.start()
    finally:
        portal.stop()


def test_naming_a_registered_person_as_staff_fails_the_start(tmp_path, broker_only_env):
    """Staff and end users stay apart: a person's account is never promoted to staff."""
    portal = LivePortal(tmp_path, broker_only_env)
    env = {**portal.env, "ES4PS_SUPERUSER_USERNAME": "ada"}
    (tmp_path / "data").mkdir(exist_ok=True)
    subprocess.run([PORTAL, "manage", "migrate"], env=env, capture_output=True, timeout=120, check=True)
    person = (
        "from es4ps_portal.accounts.models import User; "
        "User.objects.create(username='ada', email='ada@acme.example', directory_state='enabled')"
    )
    subprocess.run([PORTAL, "manage", "shell", "-c", person], env=env, capture_output=True, timeout=120, check=True)

    result = subprocess.run([PORTAL, "serve"], env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert "ES4PS_SUPERUSER_USERNAME 'ada' is a person's registered account, not staff" in result.stderr
    check = "from es4ps_portal.accounts.models import User; print(User.objects.get(username='ada').is_staff)"
    shown = subprocess.run([PORTAL, "manage", "shell", "-c", check], env=env, capture_output=True, text=True)
    assert shown.stdout.strip().splitlines()[-1] == "False"
