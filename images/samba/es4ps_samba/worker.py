"""The provisioning worker: a Celery app that applies signed tasks to the DC beside it (`es4ps-worker`).

One Celery task per operation of the contract (`es4ps.directory.<operation>`),
each with the same life:

1. open the envelope: signature, operation, task id, age and every field are
   checked, the sealed password is opened; a task that fails any check is
   *rejected* (result event, nothing touched, never retried);
2. apply it to the directory; operations are idempotent, so a redelivered
   task (after a crash, a lost ack or a broker restart) is harmless;
3. retry with backoff while the account is not there yet (replication) or the
   DC is unavailable; report *failed* when retries run out or the directory
   refuses for good;
4. publish a result event (task id, operation, username, outcome, reason).

Messages are acknowledged only after step 4 (`acks_late`) and given back to
the broker when the worker dies (`reject_on_worker_lost`), so a crash never
loses a registration. The DC applies one write at a time, so the worker runs
a small pool (`ES4PS_WORKER_CONCURRENCY`, default 2 processes, each with its
own SamDB connection): while one process waits for the broker to confirm a
result event, the other's LDAP add keeps the DC busy.

Passwords exist only as local variables between unsealing and the LDAP
request; they are never logged and never part of an event or exception.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from celery import Celery, Task
from es4ps_contract.events import Outcome, result_event
from es4ps_contract.keys import KeyFileError, load_sealing_private_key, load_verify_key
from es4ps_contract.sealing import SealingError, unseal_password
from es4ps_contract.signing import EnvelopeError, envelope_username, open_task
from es4ps_contract.tasks import (
    PROVISIONING_QUEUE,
    RESULT_TASK_NAME,
    RESULTS_QUEUE,
    CreateUser,
    DeleteUser,
    DisableUser,
    EnableUser,
    Operation,
    SetPassword,
    UpdateAttributes,
)
from es4ps_contract.transport import TransportConfigError, celery_settings
from es4ps_contract.validation import InvalidField
from nacl.public import PrivateKey
from nacl.signing import VerifyKey

from .directory import DEFAULT_USERS_OU, Directory, DirectoryRefused, DirectoryUnavailable, NotFoundYet

logger = logging.getLogger("es4ps.worker")

# Backoff between retries (seconds): 1, 2, 4, ... capped at RETRY_MAX_S. The default number of
# retries waits about 10 minutes in all (for replication or a DC restart) before reporting "failed".
RETRY_BASE_S = 1
RETRY_MAX_S = 60
DEFAULT_MAX_RETRIES = 15
# Two processes keep the DC busy while each waits for the broker in turn (bench/provisioning.py).
DEFAULT_CONCURRENCY = 2

WORKER_CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # A few tasks in hand hide the broker round trip between tasks (with 1, Celery's solo pool also
    # stalls for seconds between tasks: measured 3-14 tasks/s instead of ~40). Nothing is lost by it:
    # unacknowledged tasks go back to the queue if the worker dies, and with several DCs' workers on
    # one queue each holds at most this many waiting tasks (a fraction of a second of work).
    "worker_prefetch_multiplier": 4,
    # A result event is only sent once the broker confirmed it (else the publish raises and we retry).
    "broker_transport_options": {"confirm_publish": True},
    "worker_hijack_root_logger": True,
    "worker_redirect_stdouts": False,
}


class WorkerConfigError(ValueError):
    """A worker setting is missing or malformed."""


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs besides the broker settings (read by `from_env`)."""

    ldap_url: str
    realm: str
    netbios_name: str
    admin_password: str
    users_ou: str
    worker_name: str
    max_retries: int
    concurrency: int
    sealing_key: PrivateKey
    verify_key: VerifyKey

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise WorkerConfigError(f"{name} is not set")
            return value

        password_file = required("ES4PS_ADMIN_PASSWORD_FILE")
        try:
            admin_password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise WorkerConfigError(f"cannot read ES4PS_ADMIN_PASSWORD_FILE: {exc.strerror}") from None
        realm = required("ES4PS_REALM").upper()
        max_retries = _whole_number(environ, "ES4PS_WORKER_MAX_RETRIES", DEFAULT_MAX_RETRIES, minimum=0)
        concurrency = _whole_number(environ, "ES4PS_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1)
        try:
            sealing_key = load_sealing_private_key(required("ES4PS_SEALING_PRIVATE_KEY_FILE"))
            verify_key = load_verify_key(required("ES4PS_SIGNING_PUBLIC_KEY_FILE"))
        except KeyFileError as exc:
            raise WorkerConfigError(str(exc)) from None
        return cls(
            ldap_url=environ.get("ES4PS_LDAP_URL", "").strip() or "ldap://127.0.0.1",
            realm=realm,
            netbios_name=environ.get("ES4PS_NETBIOS_NAME", "").strip().upper() or realm.split(".")[0],
            admin_password=admin_password,
            users_ou=environ.get("ES4PS_USERS_OU", "").strip() or DEFAULT_USERS_OU,
            worker_name=environ.get("ES4PS_WORKER_NAME", "").strip() or socket.gethostname(),
            max_retries=max_retries,
            concurrency=concurrency,
            sealing_key=sealing_key,
            verify_key=verify_key,
        )


def _whole_number(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = environ.get(name, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        raise WorkerConfigError(f"{name} must be a whole number") from None
    if value < minimum:
        raise WorkerConfigError(f"{name} must be at least {minimum}")
    return value


class ProvisioningWorker:
    """Opens, applies and reports tasks; the Celery tasks delegate to `handle`."""

    def __init__(self, app: Celery, config: WorkerConfig, directory: Directory) -> None:
        self.app = app
        self.config = config
        self.directory = directory

    def handle(self, celery_task: Task, operation: Operation, envelope: object) -> None:
        task_id = str(celery_task.request.id)
        try:
            task = open_task(self.config.verify_key, envelope, operation=operation, task_id=task_id)
            password = self._password(task)
        except (EnvelopeError, InvalidField, SealingError) as exc:
            # Only the claimed username, for the portal to match the event; the task is not applied.
            self._report(task_id, operation, envelope_username(envelope), Outcome.REJECTED, str(exc))
            return
        try:
            done = self._apply(task, password)
        except (NotFoundYet, DirectoryUnavailable) as exc:
            retries = celery_task.request.retries
            if retries < self.config.max_retries:
                countdown = min(RETRY_BASE_S * 2**retries, RETRY_MAX_S)
                logger.info(
                    "task %s (%s %s): %s; retry %d in %d s",
                    task_id,
                    operation.value,
                    task.username,
                    exc,
                    retries + 1,
                    countdown,
                )
                raise celery_task.retry(countdown=countdown, max_retries=self.config.max_retries) from None
            reason = "the account was not found" if isinstance(exc, NotFoundYet) else "the directory is unavailable"
            self._report(task_id, operation, task.username, Outcome.FAILED, reason + " (retries exhausted)")
            return
        except DirectoryRefused as exc:
            self._report(task_id, operation, task.username, Outcome.FAILED, exc.reason)
            return
        logger.info("task %s (%s %s): %s", task_id, operation.value, task.username, done)
        self._report(task_id, operation, task.username, Outcome.SUCCEEDED)

    def _password(self, task: object) -> str | None:
        sealed = getattr(task, "sealed_password", None)
        if sealed is None:
            return None
        return unseal_password(self.config.sealing_key, sealed, task.username)

    def _apply(self, task: object, password: str | None) -> str:
        directory = self.directory
        match task:
            case CreateUser():
                return directory.create_user(task, password)
            case EnableUser():
                return directory.enable_user(task.username)
            case DisableUser():
                return directory.disable_user(task.username)
            case SetPassword():
                return directory.set_password(task.username, password)
            case UpdateAttributes():
                return directory.update_attributes(task)
            case DeleteUser():
                return directory.delete_user(task.username)
        raise AssertionError(f"no handler for {type(task).__name__}")

    def _report(self, task_id: str, operation: Operation, username: str, outcome: Outcome, reason: str = "") -> None:
        event = result_event(task_id, operation.value, username, outcome, reason, self.config.worker_name)
        if outcome is not Outcome.SUCCEEDED:
            logger.warning("task %s (%s %s): %s: %s", task_id, operation.value, username, outcome.value, reason)
        self.app.send_task(RESULT_TASK_NAME, args=[event.to_message()], queue=RESULTS_QUEUE)


def create_app(config: WorkerConfig, environ: Mapping[str, str]) -> Celery:
    """The worker's Celery app (broker settings from `environ`) with one task per operation."""
    app = Celery("es4ps_worker", set_as_current=False)
    app.conf.update(celery_settings(environ))
    app.conf.update(WORKER_CELERY_SETTINGS)
    directory = Directory(config.ldap_url, config.realm, config.netbios_name, config.admin_password, config.users_ou)
    worker = ProvisioningWorker(app, config, directory)
    for operation in Operation:
        _register_task(app, worker, operation)
    return app


def _register_task(app: Celery, worker: ProvisioningWorker, operation: Operation) -> None:
    @app.task(name=operation.task_name, bind=True, max_retries=worker.config.max_retries, ignore_result=True)
    def run(self: Task, envelope: object) -> None:
        worker.handle(self, operation, envelope)


def main(argv: list[str] | None = None) -> int:
    """Run the worker on the provisioning queue until it is stopped."""
    try:
        config = WorkerConfig.from_env(os.environ)
        app = create_app(config, os.environ)
    except (WorkerConfigError, TransportConfigError) as exc:
        print(f"es4ps-worker: {exc}", file=sys.stderr)
        return 2
    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={config.concurrency}",
            f"--queues={PROVISIONING_QUEUE}",
            f"--hostname=es4ps-worker@{config.worker_name}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *(argv if argv is not None else sys.argv[1:]),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
