"""The portal as real processes (`es4ps-portal serve` and `consume`), and a look into the tasks it published.

Plain classes without pytest, so bench/portal.py starts the portal the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import time
from base64 import b32decode
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from django_otp.oath import TOTP
from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_contract.transport import celery_settings
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import free_port, start_process, stop_process_group, wait_until
from kombu import Connection

from . import ServiceError
from .domains import portal_spec_env
from .portal_client import PortalClient
from .rabbitmq import RabbitMQ
from .registration import ALLOWED_DOMAIN, ORGANIZATION_NAME, unique_client_ip

STAFF_USERNAME = "staff"
# The live portal's policies: addresses at students.<allowed domain> go to OU Students with two groups and may
# pre-stage LIVE_COMPUTERS_PER_PERSON computers of their own, and every account gets Unix attributes (other
# addresses: the managed OU, no groups, no computers, as without policies).
LIVE_COMPUTERS_PER_PERSON = 2
LIVE_POLICIES = [
    {"emailDomain": f"students.{ALLOWED_DOMAIN}", "ou": "Students", "groups": ["students", "wifi"],
     "computers": {"perPerson": LIVE_COMPUTERS_PER_PERSON}},
]  # fmt: skip
LIVE_UNIX = {
    "enabled": True,
    "loginShell": "/bin/bash",
    "homeDirectoryTemplate": "/home/{username}",
    "uidRange": {"start": 10000, "end": 999999},
}
LIVE_POLICY_ENV = {"ES4PS_POLICIES": json.dumps(LIVE_POLICIES), "ES4PS_UNIX_ATTRIBUTES": json.dumps(LIVE_UNIX)}


def read_task_queue(rabbitmq: RabbitMQ, take: Iterable[str] = (), timeout_s: float = 10) -> list[dict]:
    """Read every task waiting in the provisioning queue (with a worker's certificate), taking those in `take`.

    Returns one dict per message read: {"id", "name", "body" (the raw message text), "args"}. Waits
    up to `timeout_s` for every id in `take` to arrive. Messages not taken go back to the queue
    untouched (unacknowledged, they return when the channel closes).
    """
    wanted = set(take)
    read: list[dict] = []
    ssl_options = celery_settings(rabbitmq.worker_env)["broker_use_ssl"]
    with Connection(rabbitmq.url, login_method="EXTERNAL", ssl=ssl_options) as connection:
        channel = connection.channel()

        def drained_with_all_taken() -> bool:
            while (message := channel.basic_get(PROVISIONING_QUEUE)) is not None:
                body = message.body if isinstance(message.body, str) else message.body.decode()
                task_id = message.headers.get("id")
                task = {"id": task_id, "name": message.headers.get("task"), "body": body, "args": json.loads(body)[0]}
                read.append(task)
                if task_id in wanted:
                    channel.basic_ack(message.delivery_tag)
            return not wanted - {m["id"] for m in read}

        with contextlib.suppress(TimeoutError):
            wait_until(drained_with_all_taken, timeout_s, "the tasks to take", interval_s=0.1)
        channel.close()
    return read


class LivePortal:
    """`es4ps-portal serve` (gunicorn) and `es4ps-portal consume` with their own data directory and ports.

    Replicas sharing a database (`ES4PS_DATABASE_URL` in `env`) share their Django `secret_key` too, as the
    operator's replicas share one Secret.
    """

    def __init__(
        self,
        directory: Path,
        env: Mapping[str, str],
        workers: int = 2,
        secret_key: str | None = None,
        wrap: Callable[[list[str]], list[str]] = list,
    ) -> None:
        """`wrap` turns each process's command into the one started (e.g. OutsideAD.with_hosts: the directory's
        name resolves there)."""
        self.wrap = wrap
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.consumer_metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.staff_password = "Staff-" + secrets.token_urlsafe(12)
        secret_key_file = directory / "secret-key"
        secret_key_file.write_text(secret_key or secrets.token_urlsafe(50))
        staff_password_file = directory / "staff-password"
        staff_password_file.write_text(self.staff_password)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(directory),
            **portal_spec_env(),
            **env,
            "DJANGO_SECRET_KEY_FILE": str(secret_key_file),
            "ES4PS_PORTAL_HOST": f"127.0.0.1:{self.port}",
            "ES4PS_PORTAL_SCHEME": "http",
            "ES4PS_PORTAL_PORT": str(self.port),
            "ES4PS_PORTAL_METRICS_PORT": str(urlsplit(self.metrics_url).port),
            "ES4PS_CONSUMER_METRICS_PORT": str(urlsplit(self.consumer_metrics_url).port),
            "ES4PS_PORTAL_WORKERS": str(workers),
            "ES4PS_ORGANIZATION_NAME": ORGANIZATION_NAME,
            "ES4PS_ALLOWED_EMAIL_DOMAINS": ALLOWED_DOMAIN,
            "ES4PS_DATA_DIR": str(directory / "data"),
            "ES4PS_TRUSTED_PROXY_COUNT": "1",
            "ES4PS_SUPERUSER_USERNAME": STAFF_USERNAME,
            "ES4PS_SUPERUSER_EMAIL": f"{STAFF_USERNAME}@{ALLOWED_DOMAIN}",
            "ES4PS_SUPERUSER_PASSWORD_FILE": str(staff_password_file),
        }
        self.serve_log = directory / "serve.log"
        self.consume_log = directory / "consume.log"
        self._serve = None
        self._consume = None
        # The staff member's authenticator (enrolled at the first start), the last time step a sign-in used,
        # and the client signed in to the admin (one sign-in per portal: django-otp takes each step once).
        self.staff_totp_key: bytes | None = None
        self._last_totp_step = -1
        self._staff_client: PortalClient | None = None

    def start(self, timeout_s: float = 60, *, wait_for_broker: bool = True) -> None:
        """Start both processes; return when /readyz answers 200 and the consumer runs: consuming result events,
        unless `wait_for_broker` is false (the broker is away; the consumer's metrics answer)."""
        self.start_serve(timeout_s)
        offset = self.consume_log.stat().st_size if self.consume_log.exists() else 0
        self._consume = start_process(
            self.wrap([str(VENV_BIN / "es4ps-portal"), "consume"]), self.consume_log, self.env
        )

        def consuming() -> bool:
            with self.consume_log.open("rb") as log:
                log.seek(offset)
                return b" ready." in log.read()

        def serving_metrics() -> bool:
            return _answers(self.consumer_metrics_url)

        running = consuming if wait_for_broker else serving_metrics
        wait_until(running, timeout_s, "es4ps-portal consume", self.consume_log, self._consume, error=ServiceError)

    def start_serve(self, timeout_s: float = 60) -> None:
        """Start `serve` alone; return when /readyz answers 200 (and the staff member has an authenticator)."""
        self._serve = start_process(self.wrap([str(VENV_BIN / "es4ps-portal"), "serve"]), self.serve_log, self.env)
        wait_until(self.is_ready, timeout_s, "es4ps-portal serve", self.serve_log, self._serve, error=ServiceError)
        if self.staff_totp_key is None:
            self.staff_totp_key = totp_key(self.manage("staff_totp", STAFF_USERNAME))

    def staff_totp_code(self) -> str:
        """A code of the staff member's authenticator that no sign-in used yet (waits for the next step if needed)."""
        while (step := TOTP(self.staff_totp_key).t()) <= self._last_totp_step:
            time.sleep(0.5)
        self._last_totp_step = step
        return f"{TOTP(self.staff_totp_key).token():06d}"

    def sign_in_staff(self, client: PortalClient, password: str | None = None) -> requests.Response:
        """The admin's sign-in form sent by `client`: the staff member's name, password and a fresh TOTP code."""
        credentials = {"username": STAFF_USERNAME, "password": password or self.staff_password}
        return client.post(
            "/admin/login/?next=/admin/",
            {**credentials, "otp_token": self.staff_totp_code()},
            form_page="/admin/login/",
        )

    def signed_in_staff(self) -> PortalClient:
        """The staff member's browser session, signed in to the admin (once per portal; later calls get the same
        session: django-otp takes each TOTP time step once)."""
        if self._staff_client is None:
            client = self.client(unique_client_ip())
            signed_in = self.sign_in_staff(client)
            if not signed_in.url.endswith("/admin/"):
                raise ServiceError(f"the staff sign-in to the admin failed (HTTP {signed_in.status_code})")
            self._staff_client = client
        return self._staff_client

    def is_ready(self) -> bool:
        return _answers(f"{self.url}/readyz")

    def stop(self) -> None:
        stop_process_group(self._consume)
        stop_process_group(self._serve)
        self._serve = self._consume = None

    def manage(self, *args: str, timeout_s: float = 3600) -> str:
        """`es4ps-portal manage <args>` in the portal's environment (its settings, its database); its output."""
        result = subprocess.run(
            [str(VENV_BIN / "es4ps-portal"), "manage", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            raise ServiceError(f"es4ps-portal manage {args[0]} failed: {result.stderr[-2000:]}")
        return result.stdout

    def client(self, client_ip: str | None = None) -> PortalClient:
        return PortalClient(self.url, client_ip)

    def ready_person(self, mail_catcher, username: str, domain: str = ALLOWED_DOMAIN) -> PortalClient:
        """A person who registered as `username`@`domain`, confirmed the address from the mail
        (`mail_catcher`: es4ps_testkit.mail) and whose account is enabled; their browser session."""
        email = f"{username}@{domain}"
        person = self.client(unique_client_ip())
        person.register(username, email)
        person.confirm_link(mail_catcher.wait_for(email).link("/verify/"))
        person.wait_for_status(lambda s: s["state"] == "ready")
        return person

    def user_pk(self, username: str) -> int | None:
        """The portal's id of the person's record, or None when it has none."""
        with self.database() as database:
            row = database.execute("SELECT id FROM accounts_user WHERE username = ?", (username,)).fetchone()
        return row[0] if row else None

    def database(self) -> sqlite3.Connection:
        """A read-only connection to the portal's SQLite database, to check what it kept."""
        assert "ES4PS_DATABASE_URL" not in self.env, "this portal keeps its data in PostgreSQL"
        path = self.directory / "data" / "portal.sqlite3"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def logs(self) -> str:
        """Both logs, for assertions that nothing secret was written."""
        return "\n".join(p.read_text(errors="replace") for p in (self.serve_log, self.consume_log) if p.exists())


def staff_action(staff: PortalClient, action: str, username: str, pk: int) -> str:
    """Choose an action for one account in the admin's user list, as a browser does; the page's messages."""
    page = staff.post(
        "/admin/accounts/user/",
        {"action": action, "_selected_action": str(pk), "index": "0"},
        form_page=f"/admin/accounts/user/?q={username}",
    )
    if page.status_code != 200:
        raise AssertionError(f"the admin answered {page.status_code} to {action}")
    return " ".join(re.findall(r'<li class="(?:success|warning)">(.*?)</li>', page.text))


def totp_key(enrolment: str) -> bytes | None:
    """The key in the otpauth:// address `es4ps-portal manage staff_totp` printed (None: enrolled before)."""
    match = re.search(r"otpauth://\S+", enrolment)
    if match is None:
        return None
    secret = parse_qs(urlsplit(match.group(0)).query)["secret"][0]
    return b32decode(secret + "=" * (-len(secret) % 8))


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False
