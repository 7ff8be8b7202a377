"""The portal's entrypoint, the same in the image and in tests.

    es4ps-portal serve      migrate, create the cache table, collect static files,
                            create or update the staff superuser, then exec gunicorn
    es4ps-portal consume    wait for the schema, then consume result events, relay the
                            outbox to the broker, make the registrations the forms left, send the
                            queued mails and, every hour, expire unverified
                            registrations, send password expiry reminders and prune
                            the audit trail
    es4ps-portal manage ... Django's management commands

Every step of `serve` is idempotent, so a restart (or a crash half-way) converges;
replicas sharing a PostgreSQL database take turns for the steps that write
the schema (an advisory lock), so starting them together is safe.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
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
    from django.db import connections

    from es4ps_portal.database.locks import SCHEMA_LOCK, advisory_lock

    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    call_command("collectstatic", interactive=False, verbosity=0)
    # A session of its own holds the lock, whatever the commands do with theirs.
    lock_session = connections.create_connection("default")
    try:
        with advisory_lock(lock_session, SCHEMA_LOCK, wait=True):
            call_command("migrate", interactive=False, verbosity=1)
            call_command("createcachetable", verbosity=0)
            ensure_superuser()
    finally:
        lock_session.close()


def metrics_directory() -> str:
    """A fresh, empty directory for the metrics of gunicorn's workers (prometheus-client's multiprocess mode).

    Every start gets its own (in /tmp, a memory volume in the Pod), so counts of
    an earlier run are never added in; gunicorn's master removes it on exit.
    """
    return tempfile.mkdtemp(prefix="es4ps-portal-metrics-")


def serve() -> None:
    prepare()
    port = setting(env.integer, "ES4PS_PORTAL_PORT", minimum=1, maximum=65535)
    workers = setting(env.integer, "ES4PS_PORTAL_WORKERS", minimum=1)
    setting(env.integer, "ES4PS_PORTAL_METRICS_PORT", minimum=0, maximum=65535)  # checked here, served by the hooks
    # Before gunicorn's first import of prometheus-client, which picks its storage by this variable.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_directory()
    argv = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:es4ps_portal.gunicorn_hooks",
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
    """Every PERIODIC_INTERVAL_S, expire unverified registrations, send password expiry reminders and prune the
    audit trail past its retention; a job that fails waits for the next round (the others still run)."""
    from django.db import connection

    from es4ps_portal.accounts.password_expiry import send_password_expiry_reminders
    from es4ps_portal.audit.models import AuditRecord
    from es4ps_portal.provisioning.expiry import expire_unverified_registrations

    rounds = [
        ("expiring unverified registrations", expire_unverified_registrations),
        ("sending password expiry reminders", send_password_expiry_reminders),
        ("pruning the audit trail", AuditRecord.objects.prune),
    ]
    while True:
        for what, run in rounds:
            try:
                run()
            except (
                Exception
            ) as exc:  # the broker, the mail server or the database may be away for a while; the next round retries
                logger.warning("%s failed (%s); next try in %d s", what, exc, PERIODIC_INTERVAL_S)
            finally:
                connection.close()  # this thread's own connection: no idle one held for an hour
        time.sleep(PERIODIC_INTERVAL_S)


def consume() -> None:
    from es4ps_portal import metrics
    from es4ps_portal.accounts import mail_outbox
    from es4ps_portal.broker import configured_app
    from es4ps_portal.provisioning import tasks  # noqa: F401 (registers the result task)
    from es4ps_portal.provisioning.outbox import relay_forever
    from es4ps_portal.web import registrations

    metrics_port = setting(env.integer, "ES4PS_CONSUMER_METRICS_PORT", minimum=0, maximum=65535)
    wait_for_schema()
    if metrics_port:
        metrics.serve(metrics_port)
    threading.Thread(target=relay_forever, name="outbox-relay", daemon=True).start()
    threading.Thread(target=mail_outbox.relay_forever, name="mail-relay", daemon=True).start()
    threading.Thread(target=registrations.process_forever, name="registrations", daemon=True).start()
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
