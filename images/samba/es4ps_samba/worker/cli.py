"""The provisioning worker's process (`es4ps-worker`): a Celery app applying signed tasks to the DC beside it.

One Celery task per operation of the contract (`es4ps.directory.<operation>`),
each handled the same way (`handler`).

Messages are acknowledged only after the result event is out (`acks_late`)
and given back to the broker when the worker dies (`reject_on_worker_lost`),
so a crash never loses a registration. The DC applies one write at a time, so
the worker runs a small pool (`ES4PS_WORKER_CONCURRENCY`, default 3
processes, each with its own SamDB connection): while one process records a
finished task (an fsync) and waits for the broker to confirm its result
event, the others' LDAP requests keep the DC busy. With two, the DC waited
whenever one task's own work outlasted the other's add (a slow fsync or
confirm on a busy node).

Every attempt and outcome is counted (`metrics`); the main process serves the
pool's sums on `ES4PS_WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Mapping

from celery import Celery, Task
from es4ps_contract.environment import SettingError
from es4ps_contract.tasks import PROVISIONING_QUEUE, Operation
from es4ps_contract.transport import celery_settings

from . import metrics
from .applied import AppliedTasks
from .binding import binding_key
from .config import WorkerConfig
from .directory import Directory
from .handler import ProvisioningWorker
from .metrics import WorkerMetrics
from .startcheck import check_directory

# The exit code of a worker that refuses to run with what it was given (startcheck.check_directory).
REFUSED_EXIT = 3

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


def open_directory(config: WorkerConfig) -> Directory:
    """The worker's directory (it connects on first use)."""
    return Directory(
        config.ldap_url,
        config.realm,
        config.netbios_name,
        config.account,
        config.password,
        binding_key(bytes(config.sealing_key)),
        config.users_ou,
        config.creates_containers,
        config.ldap_ca_file,
    )


def create_app(config: WorkerConfig, environ: Mapping[str, str]) -> Celery:
    """The worker's Celery app (broker settings from `environ`) with one task per operation."""
    app = Celery("es4ps_worker", set_as_current=False)
    app.conf.update(celery_settings(environ))
    app.conf.update(WORKER_CELERY_SETTINGS)
    directory = open_directory(config)
    applied = AppliedTasks(config.state_dir)
    worker_metrics = WorkerMetrics()
    directory.on_unauthentic = lambda _username: worker_metrics.unauthentic_bindings.inc()
    if directory.peers is not None:
        directory.peers.on_unasked = lambda dc: worker_metrics.creates_without_dc.labels(dc).inc()
    worker = ProvisioningWorker(app, config, directory, applied, worker_metrics)
    for operation in Operation:
        _register_task(app, worker, operation)
    return app


def _register_task(app: Celery, worker: ProvisioningWorker, operation: Operation) -> None:
    # No limit of the task's own: the handler keeps one for the errors that give up (a missing account).
    @app.task(name=operation.task_name, bind=True, max_retries=None, ignore_result=True)
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
    metrics_directory = metrics.use_multiprocess_directory()
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
    # Its own connection, closed before the pool forks.
    refused = check_directory(config, open_directory(config))
    if refused:
        print(f"es4ps-worker: refused ({refused})", file=sys.stderr, flush=True)
        return REFUSED_EXIT
    if config.metrics_port:
        metrics.serve(config.metrics_port, config.metrics_address)
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
