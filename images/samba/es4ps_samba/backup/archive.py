"""The archive's format: a tar of plain files (the directory's backup, the portal's database, a manifest
with their sizes and SHA-256), encrypted by `age` while it streams, and the checks when it is read back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import IO

from .destinations import CHUNK, BackupError

DIRECTORY_FILE = "directory.tar.bz2"
PORTAL_FILE = "portal.db"
MANIFEST_FILE = "manifest.json"
ARCHIVE_SUFFIX = ".tar.age"
ARCHIVE_FORMAT = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def run_age(arguments: list[str], source: IO[bytes]) -> tuple[subprocess.Popen, threading.Thread]:
    """`age` reading from `source` in a thread of its own; its output is process.stdout."""
    process = subprocess.Popen(
        ["age", *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )  # noqa: S603, S607

    def feed() -> None:
        try:
            shutil.copyfileobj(source, process.stdin, CHUNK)
        except BrokenPipeError:
            pass
        finally:
            process.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return process, feeder


def pack(work: Path, names: list[str], descriptor: int) -> None:
    with os.fdopen(descriptor, "wb") as out, tarfile.open(fileobj=out, mode="w|") as archive:
        for name in names:
            archive.add(work / name, arcname=name)


def unpack_flat(archive: tarfile.TarFile, work: Path) -> None:
    """Unpack an archive of plain files without folders (what `store` writes), refusing anything else.

    Debian 12's Python 3.11.2 has no extraction filters, and an archive is only trusted once its
    manifest checks out, so names are checked here: no paths, links or devices land anywhere.
    """
    for member in archive:
        if not member.isfile() or Path(member.name).name != member.name or member.name in ("", ".", ".."):
            raise BackupError(f"the archive holds {member.name!r}, which is not one of its plain files")
        source = archive.extractfile(member)
        assert source is not None  # a regular file always has content
        with (work / member.name).open("wb") as out:
            shutil.copyfileobj(source, out)
