"""The steps of the operator's backup and restore Jobs as plain processes (`es4ps-backup <step>`), and a backup
key as the files the Jobs mount: shared by tests/directory/test_backup.py and bench/directory_day2.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from es4ps_localcluster.paths import VENV_BIN
from es4ps_operator.builders.secrets import generate_backup_key, generate_backup_signing_key

from . import ServiceError


def backup_step(name: str, env: Mapping[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run `es4ps-backup <name>` with `env` on top of this process's environment.

    `check`: raise ServiceError (with the end of its stderr) when the step fails;
    otherwise the caller reads the outcome.
    """
    result = subprocess.run(
        [str(VENV_BIN / "es4ps-backup"), name],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check and result.returncode != 0:
        raise ServiceError(f"es4ps-backup {name}: {result.stderr[-2000:]}")
    return result


def write_backup_key(directory: Path) -> dict[str, Path]:
    """A domain's fresh backup keys as the files the Jobs mount: the age pair ("recipient", "identity") and the
    signing pair ("signing-key", "verify-key")."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in {**generate_backup_key(), **generate_backup_signing_key()}.items():
        files[name] = directory / f"{name}.txt"
        descriptor = os.open(files[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(text + "\n")
    return files
