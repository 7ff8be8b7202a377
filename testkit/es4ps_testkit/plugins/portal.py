"""Fixtures of the portal tests, and Django configured for them.

The portal runs two ways in the tests:

- in the test process, through pytest-django's test client and test database,
  for forms, views, tokens and rate limits (with the real broker and SMTP
  server where a test needs them): `portal_static_files`, `smtp`, `broker`;
- as the real processes the image runs (`es4ps-portal serve` and `consume`,
  es4ps_testkit.live_portal), beside the real worker, Samba DC, RabbitMQ and
  SMTP server, for the whole flow and the browser tests: `live_portal`.

Django is configured when pytest configures itself (pytest-django's documented
way for settings made in a `pytest_configure` hook), with its real settings
module and variables given only for that moment: nothing leaks into the
environment of other tests' subprocesses. Its data folder is removed when
pytest ends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..domains import portal_spec_env
from ..in_process import consumer_round
from ..live_portal import LIVE_POLICY_ENV, LivePortal, read_task_queue
from ..mail import MailCatcher
from ..rabbitmq import RabbitMQ
from ..registration import ALLOWED_DOMAIN, CLIENT_RANGE, ORGANIZATION_NAME
from ..worker import ContractKeys
from .services import started

# The in-process portal's data folder (secret key, SQLite, static files), made at configure time.
_IN_PROCESS_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Set Django up with the portal's settings before any test module imports it (pytest-django's own
    pytest_configure runs after this one and takes it from there)."""
    import django

    directory = Path(tempfile.mkdtemp(prefix="es4ps-portal-tests-"))
    config.stash[_IN_PROCESS_DIR] = directory
    secret_key = directory / "secret-key"
    secret_key.write_text(secrets.token_urlsafe(50))
    variables = {
        "DJANGO_SETTINGS_MODULE": "es4ps_portal.settings",
        "DJANGO_SECRET_KEY_FILE": str(secret_key),
        "ES4PS_PORTAL_HOST": "testserver",
        "ES4PS_ORGANIZATION_NAME": ORGANIZATION_NAME,
        "ES4PS_REALM": "ES4PS.TEST",
        "ES4PS_ALLOWED_EMAIL_DOMAINS": f"{ALLOWED_DOMAIN},bücher.example",
        "ES4PS_DATA_DIR": str(directory / "data"),
        **portal_spec_env(),
        "ES4PS_TRUSTED_PROXY_COUNT": "1",
    }
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        django.setup()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_IN_PROCESS_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def portal_static_files() -> None:
    """The manifest of static files the templates refer to (as `serve` collects them), for in-process rendering."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


class RelayedMail:
    """The SMTP server as in-process tests see it: the consumer's rounds run first (the registrations made, the
    queued mails sent: threads of `consume` in the live portal), then the mails are looked for."""

    def __init__(self, catcher: MailCatcher) -> None:
        self.catcher = catcher

    def __getattr__(self, name: str):
        return getattr(self.catcher, name)

    @staticmethod
    def relay() -> None:
        consumer_round()

    def mails_to(self, recipient: str):
        self.relay()
        return self.catcher.mails_to(recipient)

    def wait_for(self, recipient: str, count: int = 1, timeout_s: float = 15):
        self.relay()
        return self.catcher.wait_for(recipient, count, timeout_s)


@pytest.fixture
def smtp(settings, mail_catcher: MailCatcher) -> RelayedMail:
    """In-process mails go to the real SMTP server (pytest-django would catch them in memory), through the queue."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = mail_catcher.host
    settings.EMAIL_PORT = mail_catcher.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    return RelayedMail(mail_catcher)


@pytest.fixture
def broker(settings, rabbitmq: RabbitMQ, contract_keys: ContractKeys) -> Iterator[RabbitMQ]:
    """In-process tasks are signed and sealed with the session's keys; the outbox relay (run by the test:
    `es4ps_portal.provisioning.outbox.relay_round`) publishes to the real RabbitMQ as the portal's certificate.

    The tasks a test published are taken off the queue afterwards, so no worker
    later acts on (and reports) tasks of a database that is gone.
    """
    from es4ps_portal.provisioning.models import ProvisioningTask

    settings.BROKER_ENVIRON = rabbitmq.portal_env
    settings.SEALING_PUBLIC_KEY_FILE = contract_keys.portal_env["ES4PS_SEALING_PUBLIC_KEY_FILE"]
    settings.SIGNING_PRIVATE_KEY_FILE = contract_keys.portal_env["ES4PS_SIGNING_PRIVATE_KEY_FILE"]
    yield rabbitmq
    published = ProvisioningTask.objects.filter(published_at__isnull=False).values_list("task_id", flat=True)
    if published:
        read_task_queue(rabbitmq, take=[str(task_id) for task_id in published], timeout_s=2)


@pytest.fixture(scope="session")
def live_portal(
    tmp_path_factory: pytest.TempPathFactory,
    portal_env: dict[str, str],
    mail_catcher: MailCatcher,
    directory_worker,
) -> Iterator[LivePortal]:
    """`es4ps-portal serve` and `consume` as processes, with the real worker, DC, broker and SMTP server."""
    # The admin only for the tests' own client addresses (spec.portal.admin.allowedSourceRanges).
    env = {**portal_env, **mail_catcher.portal_env, **LIVE_POLICY_ENV, "ES4PS_ADMIN_SOURCE_RANGES": CLIENT_RANGE}
    portal = started(LivePortal(tmp_path_factory.mktemp("portal"), env))
    yield portal
    portal.stop()
