"""The portal's entrypoint, the same in the image and in tests.

    es4ps-portal serve      migrate, create the cache table, collect static files,
                            create or update the staff superuser, then exec gunicorn
    es4ps-portal consume    wait for the schema, then consume result events (and, every hour,
                            expire unverified registrations and send password expiry reminders)
    es4ps-portal manage ... Django's management commands

Every step of `serve` is idempotent, so a restart (or a crash half-way) converges.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command, execute_from_command_line
from es4ps_contract.environment import SettingError
from es4ps_contract.tasks import RESULTS_QUEUE

from es4ps_portal.environment import env, setting

logger = logging.getLogger("es4ps_portal.cli")
PERIODIC_INTERVAL_S = 3600
USAGE = "usage: es4ps-portal serve | consume | manage <django command> [args]"


def ensure_superuser() -> None:
    """Create the staff superuser named in the environment, or bring it in line (password, flags).

    Staff and end users stay apart: a name that belongs to a person who
    registered is never turned into staff (that would hand their account, and
    the admin, to whoever holds the staff password); the start fails instead.
    """
    username = settings.SUPERUSER_USERNAME
    if not username:
        return
    from es4ps_portal.accounts.models import User

    password = setting(env.file_text, "ES4PS_SUPERUSER_PASSWORD_FILE")
    if not password:
        raise ImproperlyConfigured("ES4PS_SUPERUSER_PASSWORD_FILE must name the staff user's password file")
    user, created = User.objects.get_or_create(username=username, defaults={"is_staff": True})
    if not user.is_staff or user.directory_state:
        raise ImproperlyConfigured(
            f"ES4PS_SUPERUSER_USERNAME {username!r} is a person's registered account, not staff: "
            "choose another staff user name"
        )
    user.email = setting(env.text, "ES4PS_SUPERUSER_EMAIL") or user.email
    user.is_staff = user.is_superuser = user.is_active = True
    if created or not user.check_password(password):
        user.set_password(password)
    user.save()
    logger.info("staff superuser %s %s", username, "created" if created else "checked")


def prepare() -> None:
    """Bring the database and static files up to date (what `serve` does before gunicorn)."""
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=1)
    call_command("createcachetable", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    ensure_superuser()


def serve() -> None:
    prepare()
    port = setting(env.integer, "ES4PS_PORTAL_PORT", minimum=1, maximum=65535)
    workers = setting(env.integer, "ES4PS_PORTAL_WORKERS", minimum=1)
    argv = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"0.0.0.0:{port}",
        "--workers", str(workers),
        "--timeout", "60",
        "--graceful-timeout", "20",
        # No control socket: nothing uses it, and it would write under $HOME.
        "--no-control-socket",
        # %(U)s is the path without the query string, which carries the mailed tokens.
        "--access-logfile", "-",
        "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
        "es4ps_portal.wsgi:application",
    ]  # fmt: skip
    logger.info("starting gunicorn on port %d with %d workers", port, workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - gunicorn replaces this process, so signals reach it


def wait_for_schema() -> None:
    """Block until `serve` has applied every migration (the consumer writes to those tables)."""
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    while True:
        try:
            executor = MigrationExecutor(connection)
            if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
                return
        except DatabaseError as exc:  # not there yet: serve creates the SQLite file, PostgreSQL may be starting
            logger.debug("database not reachable yet: %s", exc)
        logger.info("waiting for the database schema (es4ps-portal serve applies it)")
        connection.close()
        time.sleep(2)


def run_periodic_jobs() -> None:
    """Every PERIODIC_INTERVAL_S, expire unverified registrations and send password expiry reminders; a job that
    fails waits for the next round (the others still run)."""
    from django.db import connection

    from es4ps_portal.accounts.password_expiry import send_password_expiry_reminders
    from es4ps_portal.provisioning.expiry import expire_unverified_registrations

    while True:
        for job in (expire_unverified_registrations, send_password_expiry_reminders):
            try:
                job()
            except Exception as exc:  # the broker, the mail server or the database may be away for a while
                logger.warning("%s failed (%s); next try in %d s", job.__name__, exc, PERIODIC_INTERVAL_S)
        connection.close()  # this thread's own connection: no idle one held for an hour
        time.sleep(PERIODIC_INTERVAL_S)


def consume() -> None:
    from es4ps_portal.broker import configured_app
    from es4ps_portal.provisioning import tasks  # noqa: F401 (registers the result task)

    wait_for_schema()
    threading.Thread(target=run_periodic_jobs, name="periodic-jobs", daemon=True).start()
    configured_app().worker_main(
        [
            "worker",
            "--queues", RESULTS_QUEUE,
            # One event at a time, in order; recording takes milliseconds.
            "--pool", "solo",
            "--loglevel", "INFO",
            # Least privilege on the broker: no broadcast exchanges for gossip, mingle or heartbeats.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"portal-results@{socket.gethostname()}",
        ]
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run `serve`, `consume` or a Django management command."""
    args = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "es4ps_portal.settings")
    if not args or args[0] not in ("serve", "consume", "manage"):
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] == "manage":
        execute_from_command_line(["es4ps-portal manage", *args[1:]])
        return 0
    try:
        django.setup()
        serve() if args[0] == "serve" else consume()
    except (ImproperlyConfigured, SettingError) as exc:
        # A setting is missing or wrong: one clear line, not a traceback.
        print(f"es4ps-portal: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
