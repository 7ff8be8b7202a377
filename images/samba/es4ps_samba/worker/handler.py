"""One task's life in the worker: open the envelope, look it up, apply it, retry, record, report.

1. open the envelope: signature, operation, task id, age and every field are
   checked, the sealed password is opened; a task that fails any check is
   *rejected* (result event, nothing touched, never retried);
2. look it up in the record of applied tasks (`applied`): a task id applied
   before (a redelivery, or a captured task published again) is not applied
   a second time, its recorded outcome is reported again (a report of the
   domain's computers, which changes nothing, is made afresh);
3. apply it to the directory (`directory`, `computers`), as the worker's own
   account with rights on the managed OU only; the account (or computer) must
   belong to the task's registration (or computer record), and an older task
   never overwrites a newer one (`binding`); operations are idempotent, so a
   redelivered task is harmless; a create first asks the domain's other DCs
   whether they hold its name (`peers`), so a create that reached two
   workers makes one account;
4. retry with backoff while the account is not there yet (replication), report
   *failed* when those retries run out or the directory refuses for good;
   while the directory is unavailable, retry until it answers (the task waits);
5. record the outcome and publish a result event (task id, operation,
   username, outcome, reason), signed with this DC's key: *succeeded*,
   *failed*, *rejected*, or *not applied* (a newer change of the same kind
   was applied already: never reported as done). Whatever the directory
   holds, a task ends with an outcome: an unexpected error is reported as
   failed, never left in the queue.

Passwords exist only as local variables between unsealing and the LDAP
request; they are never logged and never part of an event or exception.
"""

from __future__ import annotations

import dataclasses
import logging

from celery import Celery, Task
from es4ps_contract.events import (
    REASON_SUPERSEDED,
    REASON_WORKER_ERROR,
    Outcome,
    ResultEvent,
    result_event,
    sign_event,
)
from es4ps_contract.inventory import ComputerFacts
from es4ps_contract.sealing import SealingError, unseal_password
from es4ps_contract.signing import EnvelopeError, SignedTask, envelope_username, open_task
from es4ps_contract.tasks import (
    RESULT_TASK_NAME,
    RESULTS_QUEUE,
    ApplyPolicy,
    CreateUser,
    DeleteComputer,
    DeleteUser,
    DisableComputer,
    DisableUser,
    EnableComputer,
    EnableUser,
    MoveComputer,
    Operation,
    PrestageComputer,
    ReportComputers,
    ResetComputer,
    SetPassword,
    UpdateAttributes,
)
from es4ps_contract.validation import InvalidField

from .applied import AppliedTasks
from .binding import SUPERSEDED
from .computers import Computers
from .config import WorkerConfig
from .directory import Directory
from .errors import DirectoryRefused, DirectoryUnavailable, NotFoundYet
from .metrics import WorkerMetrics

logger = logging.getLogger("es4ps.worker")

# Backoff between retries (seconds): 1, 2, 4, ... capped at RETRY_MAX_S. The default number of
# retries waits about 10 minutes in all (for replication or a DC restart) before reporting "failed".
RETRY_BASE_S = 1
RETRY_MAX_S = 60
# How many retries a create that may have reached another worker before waits for a DC that cannot be asked
# whether it holds the name (1 + 2 + ... + 60 + 60 s: about 3 minutes, a DC Pod's restart), then goes on (`peers`).
PEER_WAIT_RETRIES = 8
# The message header a retried task carries its count of "not there yet" retries in (not counting the waits for
# an unavailable directory: an outage must not use up the retries of an account that a task ahead of it creates).
# A header, not an argument: a worker of the previous release ignores it.
MISSING_RETRIES = "es4ps-missing-retries"


class ProvisioningWorker:
    """Opens, applies and reports tasks; the Celery tasks delegate to `handle`."""

    def __init__(
        self, app: Celery, config: WorkerConfig, directory: Directory, applied: AppliedTasks, metrics: WorkerMetrics
    ) -> None:
        self.app = app
        self.config = config
        self.directory = directory
        self.computers = Computers(directory)
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
        earlier = None if isinstance(task, ReportComputers) else self.applied.get(task_id)
        if earlier is not None:
            logger.info("task %s (%s %s): applied before, not again", task_id, operation.value, task.username)
            event = self._event(task_id, operation, task.username, earlier.outcome, earlier.reason, earlier.finished_at)
            self.metrics.tasks.labels(operation.value, "repeated").inc()
            self._report(event)
            return
        try:
            done = self._apply(signed, password, _must_ask_every_dc(celery_task))
        except (NotFoundYet, DirectoryUnavailable) as exc:
            missing = isinstance(exc, NotFoundYet)
            self.metrics.directory_errors.labels(operation.value, "not_found_yet" if missing else "unavailable").inc()
            retries, missing_retries = celery_task.request.retries, _missing_retries(celery_task.request)
            # A directory that is away (restarting, or an outside one down for hours) delays a task, never
            # fails it: it waits in the broker, tried again every minute at most, until the directory
            # answers or its envelope expires. An account that is not there is given up after max_retries
            # retries that found it missing (the waits before do not count: after an outage the enable may
            # come back before the create that makes its account).
            if not missing or missing_retries < self.config.max_retries:
                countdown = min(RETRY_BASE_S * 2 ** (missing_retries if missing else retries), RETRY_MAX_S)
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
                # No limit of Celery's (it counts every retry): the one above is the handler's own.
                headers = {**(celery_task.request.headers or {}), MISSING_RETRIES: missing_retries + missing}
                raise celery_task.retry(countdown=countdown, max_retries=None, headers=headers) from None
            self._finish(signed, Outcome.FAILED, exc.reason)
            return
        except DirectoryRefused as exc:
            self.metrics.directory_errors.labels(operation.value, "refused").inc()
            self._finish(signed, Outcome.FAILED, exc.reason)
            return
        except Exception:  # whatever the directory held, a task ends with an outcome, never stuck in the queue
            logger.exception("task %s (%s %s): the worker failed to apply it", task_id, operation.value, task.username)
            self.metrics.directory_errors.labels(operation.value, "internal").inc()
            self._finish(signed, Outcome.FAILED, REASON_WORKER_ERROR)
            return
        logger.info("task %s (%s %s): %s", task_id, operation.value, task.username, _said(done))
        if done == SUPERSEDED:
            # Never reported as done: a newer change of the same kind was applied, this one was not.
            self._finish(signed, Outcome.NOT_APPLIED, REASON_SUPERSEDED)
        elif isinstance(done, tuple):  # the domain's computers
            self._finish(signed, Outcome.SUCCEEDED, computers=done)
        else:
            self._finish(signed, Outcome.SUCCEEDED)

    def _password(self, task: object) -> str | None:
        sealed = getattr(task, "sealed_password", None)
        if sealed is None:
            return None
        return unseal_password(self.config.sealing_key, sealed, task.username)

    def _apply(self, signed: SignedTask, password: str | None, must_answer: bool) -> str | tuple[ComputerFacts, ...]:
        directory, computers = self.directory, self.computers
        match signed.task:
            case CreateUser():
                return directory.create_user(signed, password, must_answer)
            case EnableUser():
                return directory.enable_user(signed)
            case DisableUser():
                return directory.disable_user(signed)
            case SetPassword():
                return directory.set_password(signed, password)
            case UpdateAttributes():
                return directory.update_attributes(signed)
            case DeleteUser() | DeleteComputer():
                return directory.delete(signed)
            case ApplyPolicy():
                return directory.apply_policy(signed)
            case PrestageComputer():
                return computers.prestage(signed, password, must_answer)
            case EnableComputer():
                return directory.set_disabled(signed, False)
            case DisableComputer():
                return computers.disable(signed)
            case ResetComputer():
                return computers.reset(signed, password)
            case MoveComputer():
                return computers.move(signed)
            case ReportComputers():
                return computers.report()
        raise AssertionError(f"no handler for {type(signed.task).__name__}")

    def _finish(
        self, signed: SignedTask, outcome: Outcome, reason: str = "", computers: tuple[ComputerFacts, ...] = ()
    ) -> None:
        """Record the final outcome of an applied task, count it and report it (with the computers it reports)."""
        operation = signed.task.operation
        event = self._event(signed.task_id, operation, signed.task.username, outcome, reason)
        event = dataclasses.replace(event, computers=computers)
        if not isinstance(signed.task, ReportComputers):
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
        message = sign_event(self.config.result_key, event)
        self.app.send_task(RESULT_TASK_NAME, args=[message], queue=RESULTS_QUEUE)


def _missing_retries(request) -> int:
    """How often the task found its account missing before: its MISSING_RETRIES header (unsigned, like every
    header: anything but a count is taken as none, never as more retries)."""
    count = request.get(MISSING_RETRIES)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _must_ask_every_dc(celery_task: Task) -> bool:
    """Whether a create must wait for a DC that cannot be asked: its delivery may have reached another worker
    before (redelivered by the broker, or a retry), and it has not waited PEER_WAIT_RETRIES retries yet."""
    request = celery_task.request
    again = bool((request.delivery_info or {}).get("redelivered")) or request.retries > 0
    return again and request.retries < PEER_WAIT_RETRIES


def _said(done: str | tuple) -> str:
    """What the log says an applied task did."""
    return f"reported {len(done)} computers" if isinstance(done, tuple) else done
