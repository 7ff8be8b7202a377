"""The directory side's other half: the contract's key pairs as files (`ContractKeys`) and the real worker process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import free_port, start_process, stop_process_group, wait_until

from . import ServiceError


def _write_key(path: Path, text: str) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
    return path


class ContractKeys:
    """A fresh sealing and signing key pair per session, and a result key pair per worker name, as the
    operator's Secrets would hold them (the portal side reads every worker's public half from one directory)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.result_keys_dir = directory / "result-keys"
        self.result_keys_dir.mkdir(exist_ok=True)
        sealing_private, sealing_public = generate_sealing_keypair()
        signing_private, signing_public = generate_signing_keypair()
        self.files = {}
        for name, text in (
            ("sealing-private.key", sealing_private),
            ("sealing-public.key", sealing_public),
            ("signing-private.key", signing_private),
            ("signing-public.key", signing_public),
        ):
            self.files[name] = _write_key(directory / name, text)

    @property
    def portal_env(self) -> dict[str, str]:
        return {
            "ES4PS_SEALING_PUBLIC_KEY_FILE": str(self.files["sealing-public.key"]),
            "ES4PS_SIGNING_PRIVATE_KEY_FILE": str(self.files["signing-private.key"]),
            "ES4PS_RESULT_KEYS_DIR": str(self.result_keys_dir),
        }

    def result_env(self, worker_name: str) -> dict[str, str]:
        """The result signing key of the worker named `worker_name` (made on first use, its public half where
        the portal side reads it), as the operator gives each DC's worker; give the worker that name."""
        private = self.directory / f"result-{worker_name}.key"
        if not private.exists():
            private_text, public_text = generate_signing_keypair()
            _write_key(self.result_keys_dir / f"{worker_name}.key", public_text)
            _write_key(private, private_text)
        return {"ES4PS_RESULT_SIGNING_KEY_FILE": str(private)}

    @property
    def worker_env(self) -> dict[str, str]:
        return {
            "ES4PS_SEALING_PRIVATE_KEY_FILE": str(self.files["sealing-private.key"]),
            "ES4PS_SIGNING_PUBLIC_KEY_FILE": str(self.files["signing-public.key"]),
        }


class DirectoryWorker:
    """The real worker process (`es4ps-worker`, the image's command) with the given environment."""

    READY_LINE = "ready."
    DEFAULT_NAME = "test-worker"

    def __init__(
        self,
        directory: Path,
        env: Mapping[str, str],
        name: str = DEFAULT_NAME,
        wrap: Callable[[list[str]], list[str]] = list,
    ) -> None:
        """`env` holds the result signing key of a worker of this `name` (ContractKeys.result_env); `wrap`
        turns the worker's command into the one started (e.g. OutsideAD.with_hosts)."""
        self.wrap = wrap
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.env = {
            **os.environ,
            # Few retries (1+2+4+8 s): a test waiting for "failed" should not wait ten minutes.
            "ES4PS_WORKER_MAX_RETRIES": "4",
            **env,
            "ES4PS_WORKER_NAME": name,
            "ES4PS_WORKER_METRICS_PORT": str(metrics_port),
            "ES4PS_WORKER_METRICS_ADDRESS": "127.0.0.1",
        }
        self.log = directory / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        """Start the worker and wait until Celery reports it is consuming."""
        offset = self.log.stat().st_size if self.log.exists() else 0

        def consuming() -> bool:
            with self.log.open("rb") as log:
                log.seek(offset)
                return self.READY_LINE.encode() in log.read()

        self.process = start_process(self.wrap([str(VENV_BIN / "es4ps-worker")]), self.log, self.env)
        try:
            wait_until(consuming, timeout_s, "es4ps-worker", self.log, self.process, error=ServiceError)
        except ServiceError:
            self.stop()
            raise

    def run_to_exit(self, timeout_s: float = 120) -> int:
        """Run the worker expecting it to stop by itself (a refusal to start); its exit code (the reason: `log`)."""
        process = start_process(self.wrap([str(VENV_BIN / "es4ps-worker")]), self.log, self.env)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            stop_process_group(process, timeout_s=20)
            raise ServiceError(f"es4ps-worker still runs after {timeout_s} s: {self.log}") from None

    def wait_for_log(self, text: str, timeout_s: float = 30) -> None:
        """Wait until the worker's log contains `text`."""
        wait_until(
            lambda: text in self.log.read_text(errors="replace"), timeout_s, f"worker log line {text!r}", self.log
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (pool children too), as a crashed pod would end."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        stop_process_group(self.process, timeout_s=20)
        self.process = None
