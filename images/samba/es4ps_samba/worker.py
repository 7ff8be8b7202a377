"""The provisioning worker: a Celery app that applies signed tasks to the DC beside it (`es4ps-worker`).

One Celery task per operation of the contract (`es4ps.directory.<operation>`),
each with the same life:

1. open the envelope: signature, operation, task id, age and every field are
   checked, the sealed password is opened; a task that fails any check is
   *rejected* (result event, nothing touched, never retried);
2. look it up in the record of applied tasks (`applied`): a task id applied
   before (a redelivery, or a captured task published again) is not applied
   a second time, its recorded outcome is reported again;
3. apply it to the directory, as the worker's own account with rights on the
   managed OU only; the account must belong to the task's registration, and
   an older task never overwrites a newer one (`binding`); operations are
   idempotent, so a redelivered task is harmless;
4. retry with backoff while the account is not there yet (replication) or the
   DC is unavailable; report *failed* when retries run out or the directory
   refuses for good;
5. record the outcome and publish a result event (task id, operation,
   username, outcome, reason).

Messages are acknowledged only after step 5 (`acks_late`) and given back to
the broker when the worker dies (`reject_on_worker_lost`), so a crash never
loses a registration. The DC applies one write at a time, so the worker runs
a small pool (`ES4PS_WORKER_CONCURRENCY`, default 2 processes, each with its
own SamDB connection): while one process waits for the broker to confirm a
result event, the other's LDAP add keeps the DC busy.

Passwords exist only as local variables between unsealing and the LDAP
request; they are never logged and never part of an event or exception.

Every attempt and outcome is counted (`worker_metrics`); the main process
serves the pool's sums on `ES4PS_WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import sqlite3
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from celery import Celery, Task
from es4ps_contract import transport
from es4ps_contract.environment import Environment, SettingError, Variable
from es4ps_contract.events import REASON_UNAVAILABLE, Outcome, ResultEvent, result_event
from es4ps_contract.keys import KeyFileError, load_sealing_private_key, load_verify_key
from es4ps_contract.sealing import SealingError, unseal_password
from es4ps_contract.signing import EnvelopeError, SignedTask, envelope_username, open_task
from es4ps_contract.tasks import (
    PROVISIONING_QUEUE,
    RESULT_TASK_NAME,
    RESULTS_QUEUE,
    ApplyPolicy,
    CreateUser,
    DeleteUser,
    DisableUser,
    EnableUser,
    Operation,
    SetPassword,
    UpdateAttributes,
)
from es4ps_contract.transport import celery_settings
from es4ps_contract.validation import InvalidField
from nacl.public import PrivateKey
from nacl.signing import VerifyKey

from . import worker_metrics
from .applied import AppliedTasks
from .dc.config import DEFAULT_USERS_OU, DEFAULT_WORKER_ACCOUNT
from .directory import SUPERSEDED, Directory, DirectoryRefused, DirectoryUnavailable, NotFoundYet
from .worker_metrics import WorkerMetrics

logger = logging.getLogger("es4ps.worker")

# Backoff between retries (seconds): 1, 2, 4, ... capped at RETRY_MAX_S. The default number of
# retries waits about 10 minutes in all (for replication or a DC restart) before reporting "failed".
RETRY_BASE_S = 1
RETRY_MAX_S = 60

VARIABLES = (
    *transport.VARIABLES,
    Variable("ES4PS_SEALING_PRIVATE_KEY_FILE", "X25519 private key: opens the sealed passwords"),
    Variable("ES4PS_SIGNING_PUBLIC_KEY_FILE", "Ed25519 public key: verifies the tasks"),
    Variable("ES4PS_LDAP_URL", "the DC beside the worker", "ldap://127.0.0.1"),
    Variable("ES4PS_REALM", "the realm, e.g. `AD.ACME.EXAMPLE`"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_WORKER_ACCOUNT", "the directory account the worker binds as", DEFAULT_WORKER_ACCOUNT),
    Variable("ES4PS_WORKER_PASSWORD_FILE", "its password", secret_file=True),
    Variable("ES4PS_USERS_OU", "the OU of the accounts it manages (it never touches others)", DEFAULT_USERS_OU),
    Variable(
        "ES4PS_WORKER_CREATES_CONTAINERS",
        "`1`: it creates the OUs and groups policies name when missing; `0`: it waits for them to replicate"
        " (with several DCs only one worker creates them, so two DCs never make the same group)",
        "1",
    ),
    Variable("ES4PS_WORKER_STATE_DIR", "where the record of applied tasks lives (on the DC's volume)"),
    Variable("ES4PS_WORKER_NAME", "the name reported in result events (empty: the host name)", ""),
    Variable("ES4PS_WORKER_CONCURRENCY", "worker processes, each with one LDAP connection", "2"),
    Variable(
        "ES4PS_WORKER_MAX_RETRIES",
        "retries of a task whose account is not there yet or whose DC is unreachable, 1, 2, 4 ... 60 s apart",
        "15",
    ),
    Variable("ES4PS_WORKER_METRICS_PORT", "port of the worker's Prometheus metrics (`/metrics`); 0: off", "9932"),
    Variable(
        "ES4PS_WORKER_METRICS_ADDRESS",
        "the address the metrics port binds (the operator gives the Pod's IP; with host networking the node's)",
        "0.0.0.0",  # noqa: S104 - every address of a plain container; the operator narrows it
    ),
)

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


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs besides the broker settings (read by `from_env`)."""

    ldap_url: str
    realm: str
    netbios_name: str
    account: str
    password: str
    users_ou: str
    creates_containers: bool
    state_dir: Path
    worker_name: str
    max_retries: int
    concurrency: int
    sealing_key: PrivateKey
    verify_key: VerifyKey
    metrics_port: int
    metrics_address: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        try:
            sealing_key = load_sealing_private_key(env.text("ES4PS_SEALING_PRIVATE_KEY_FILE"))
            verify_key = load_verify_key(env.text("ES4PS_SIGNING_PUBLIC_KEY_FILE"))
        except KeyFileError as exc:
            raise SettingError(str(exc)) from None
        return cls(
            ldap_url=env.text("ES4PS_LDAP_URL"),
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            account=env.text("ES4PS_WORKER_ACCOUNT"),
            password=env.file_text("ES4PS_WORKER_PASSWORD_FILE"),
            users_ou=env.text("ES4PS_USERS_OU"),
            creates_containers=env.flag("ES4PS_WORKER_CREATES_CONTAINERS"),
            state_dir=Path(env.text("ES4PS_WORKER_STATE_DIR")),
            worker_name=env.text("ES4PS_WORKER_NAME") or socket.gethostname(),
            max_retries=env.integer("ES4PS_WORKER_MAX_RETRIES", minimum=0),
            concurrency=env.integer("ES4PS_WORKER_CONCURRENCY", minimum=1),
            sealing_key=sealing_key,
            verify_key=verify_key,
            metrics_port=env.integer("ES4PS_WORKER_METRICS_PORT", minimum=0, maximum=65535),
            metrics_address=env.text("ES4PS_WORKER_METRICS_ADDRESS"),
        )


class ProvisioningWorker:
    """Opens, applies and reports tasks; the Celery tasks delegate to `handle`."""

    def __init__(
        self, app: Celery, config: WorkerConfig, directory: Directory, applied: AppliedTasks, metrics: WorkerMetrics
    ) -> None:
        self.app = app
        self.config = config
        self.directory = directory
        self.applied = applied
        self.metrics = metrics

    def handle(self, celery_task: Task, operation: Operation, envelope: object) -> None:
        with self.metrics.duration.labels(operation.value).time():
            self._handle(celery_task, operation, envelope)

    def _handle(self, celery_task: Task, operation: Operation, envelope: object) -> None:
        task_id = str(celery_task.request.id)
        try:
            signed = open_task(self.config.verify_key, envelope, operation=operation, task_id=task_id)
            password = self._password(signed.task)
        except (EnvelopeError, InvalidField, SealingError) as exc:
            # Only the claimed username, for the portal to match the event; the task is not applied.
            event = self._event(task_id, operation, envelope_username(envelope), Outcome.REJECTED, str(exc))
            self.metrics.tasks.labels(operation.value, Outcome.REJECTED.value).inc()
            self._report(event)
            return
        task = signed.task
        earlier = self.applied.get(task_id)
        if earlier is not None:
            logger.info("task %s (%s %s): applied before, not again", task_id, operation.value, task.username)
            event = self._event(task_id, operation, task.username, earlier.outcome, earlier.reason, earlier.finished_at)
            self.metrics.tasks.labels(operation.value, "repeated").inc()
            self._report(event)
            return
        try:
            done = self._apply(signed, password)
        except (NotFoundYet, DirectoryUnavailable) as exc:
            error = "not_found_yet" if isinstance(exc, NotFoundYet) else "unavailable"
            self.metrics.directory_errors.labels(operation.value, error).inc()
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
                self.metrics.retries.labels(operation.value).inc()
                raise celery_task.retry(countdown=countdown, max_retries=self.config.max_retries) from None
            reason = exc.reason if isinstance(exc, NotFoundYet) else REASON_UNAVAILABLE
            self._finish(signed, Outcome.FAILED, reason)
            return
        except DirectoryRefused as exc:
            self.metrics.directory_errors.labels(operation.value, "refused").inc()
            self._finish(signed, Outcome.FAILED, exc.reason)
            return
        logger.info("task %s (%s %s): %s", task_id, operation.value, task.username, done)
        # Nothing to say for the person, unless a newer change made this one moot.
        self._finish(signed, Outcome.SUCCEEDED, done if done == SUPERSEDED else "")

    def _password(self, task: object) -> str | None:
        sealed = getattr(task, "sealed_password", None)
        if sealed is None:
            return None
        return unseal_password(self.config.sealing_key, sealed, task.username)

    def _apply(self, signed: SignedTask, password: str | None) -> str:
        directory = self.directory
        match signed.task:
            case CreateUser():
                return directory.create_user(signed, password)
            case EnableUser():
                return directory.enable_user(signed)
            case DisableUser():
                return directory.disable_user(signed)
            case SetPassword():
                return directory.set_password(signed, password)
            case UpdateAttributes():
                return directory.update_attributes(signed)
            case DeleteUser():
                return directory.delete_user(signed)
            case ApplyPolicy():
                return directory.apply_policy(signed)
        raise AssertionError(f"no handler for {type(signed.task).__name__}")

    def _finish(self, signed: SignedTask, outcome: Outcome, reason: str = "") -> None:
        """Record the final outcome of an applied task, count it and report it."""
        operation = signed.task.operation
        event = self._event(signed.task_id, operation, signed.task.username, outcome, reason)
        self.applied.record(signed.task_id, outcome, event.reason, event.finished_at)
        self.metrics.tasks.labels(operation.value, outcome.value).inc()
        self.metrics.publish_to_apply.labels(operation.value).observe(max(event.finished_at - signed.issued_at, 0))
        self._report(event)

    def _event(
        self,
        task_id: str,
        operation: Operation,
        username: str,
        outcome: Outcome,
        reason: str = "",
        finished_at: float | None = None,
    ) -> ResultEvent:
        event = result_event(task_id, operation.value, username, outcome, reason, self.config.worker_name)
        if finished_at is not None:  # reported again: the portal sees the same event, not a newer one
            event = dataclasses.replace(event, finished_at=finished_at)
        return event

    def _report(self, event: ResultEvent) -> None:
        """Send the result event; last, so that whoever sees an outcome finds it counted and recorded."""
        if event.outcome is not Outcome.SUCCEEDED:
            logger.warning(
                "task %s (%s %s): %s: %s",
                event.task_id,
                event.operation,
                event.username,
                event.outcome.value,
                event.reason,
            )
        self.app.send_task(RESULT_TASK_NAME, args=[event.to_message()], queue=RESULTS_QUEUE)


def create_app(config: WorkerConfig, environ: Mapping[str, str]) -> Celery:
    """The worker's Celery app (broker settings from `environ`) with one task per operation."""
    app = Celery("es4ps_worker", set_as_current=False)
    app.conf.update(celery_settings(environ))
    app.conf.update(WORKER_CELERY_SETTINGS)
    directory = Directory(
        config.ldap_url,
        config.realm,
        config.netbios_name,
        config.account,
        config.password,
        config.users_ou,
        config.creates_containers,
    )
    applied = AppliedTasks(config.state_dir)
    worker = ProvisioningWorker(app, config, directory, applied, WorkerMetrics())
    for operation in Operation:
        _register_task(app, worker, operation)
    return app


def _register_task(app: Celery, worker: ProvisioningWorker, operation: Operation) -> None:
    @app.task(name=operation.task_name, bind=True, max_retries=worker.config.max_retries, ignore_result=True)
    def run(self: Task, envelope: object) -> None:
        worker.handle(self, operation, envelope)


def wait_for_state_dir(config: WorkerConfig, timeout_s: float = 600) -> bool:
    """Wait until the record of applied tasks can be written: the DC's entrypoint makes the directory ours."""
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            AppliedTasks(config.state_dir).check_writable()
            return True
        except (OSError, sqlite3.Error) as exc:
            problem = f"ES4PS_WORKER_STATE_DIR {config.state_dir}: {exc}"
            if time.monotonic() > deadline:
                print(f"es4ps-worker: cannot use {problem}", file=sys.stderr)
                return False
            if not waiting:
                print(f"es4ps-worker: waiting for the DC to prepare {problem}", file=sys.stderr, flush=True)
                waiting = True
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    """Run the worker on the provisioning queue until it is stopped."""
    try:
        config = WorkerConfig.from_env(os.environ)
    except SettingError as exc:
        print(f"es4ps-worker: {exc}", file=sys.stderr)
        return 2
    metrics_directory = worker_metrics.use_multiprocess_directory()
    try:
        return _run(config, argv)
    finally:
        shutil.rmtree(metrics_directory, ignore_errors=True)


def _run(config: WorkerConfig, argv: list[str] | None) -> int:
    try:
        app = create_app(config, os.environ)
    except SettingError as exc:
        print(f"es4ps-worker: {exc}", file=sys.stderr)
        return 2
    if not wait_for_state_dir(config):
        return 1
    if config.metrics_port:
        worker_metrics.serve(config.metrics_port, config.metrics_address)
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
