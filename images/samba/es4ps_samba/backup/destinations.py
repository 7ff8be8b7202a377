"""Where a domain's archives go: a mounted volume or an S3-compatible bucket, named by `location` strings.

    volume:<claim>/<path>      a volume mounted at ES4PS_BACKUP_VOLUME_DIR
    s3://<bucket>/<key>        a bucket at ES4PS_BACKUP_S3_ENDPOINT

Archives are written and read as streams of chunks: never held whole.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from es4ps_contract.environment import Environment, SettingError

CHUNK = 8 * 1024 * 1024


class BackupError(RuntimeError):
    """A step cannot be done; the message says why, for people (never a secret)."""


class Destination:
    """Where a domain's archives are kept: `location` strings name them across steps and in ES4PSBackups."""

    def write(self, relative: str, chunks: Iterator[bytes]) -> str:
        raise NotImplementedError

    def read(self, location: str) -> Iterator[bytes]:
        raise NotImplementedError

    def delete(self, location: str) -> None:
        raise NotImplementedError


@dataclass
class VolumeDestination(Destination):
    """A mounted volume; locations read `volume:<claim>/<path>`."""

    root: Path
    claim: str

    def _path(self, location: str) -> Path:
        prefix = f"volume:{self.claim}/"
        if not location.startswith(prefix):
            raise BackupError(f"{location} is not on the volume {self.claim}")
        path = (self.root / location[len(prefix) :]).resolve()
        if self.root.resolve() not in path.parents:
            raise BackupError(f"{location} points outside the volume")
        return path

    def write(self, relative: str, chunks: Iterator[bytes]) -> str:
        location = f"volume:{self.claim}/{relative}"
        target = self._path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)  # never half an archive under the final name
        return location

    def read(self, location: str) -> Iterator[bytes]:
        with self._path(location).open("rb") as source:
            yield from iter(lambda: source.read(CHUNK), b"")

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)


@dataclass
class S3Destination(Destination):
    """An S3-compatible bucket; locations read `s3://<bucket>/<key>`."""

    endpoint: str
    bucket: str
    prefix: str
    region: str
    access_key_id: str
    secret_access_key: str

    def _client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
        )

    def _key(self, location: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not location.startswith(prefix):
            raise BackupError(f"{location} is not in the bucket {self.bucket}")
        return location[len(prefix) :]

    def write(self, relative: str, chunks: Iterator[bytes]) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = "/".join(filter(None, [self.prefix.strip("/"), relative]))
        try:
            # A multipart upload as the chunks come: the archive is never held whole.
            self._client().upload_fileobj(_ChunkReader(chunks), self.bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise BackupError(f"storing to {self.endpoint}, bucket {self.bucket} failed: {_s3_reason(exc)}") from None
        return f"s3://{self.bucket}/{key}"

    def read(self, location: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client().get_object(Bucket=self.bucket, Key=self._key(location))["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise BackupError(f"reading {location} from {self.endpoint} failed: {_s3_reason(exc)}") from None
        yield from iter(lambda: body.read(CHUNK), b"")

    def delete(self, location: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client().delete_object(Bucket=self.bucket, Key=self._key(location))
        except (BotoCoreError, ClientError) as exc:
            raise BackupError(f"deleting {location} failed: {_s3_reason(exc)}") from None


def _s3_reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', str(exc))}"[:300]


class _ChunkReader(io.RawIOBase):
    """A file object reading from an iterator of bytes (what boto3's upload takes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
        return size


def destination_from(env: Environment) -> Destination:
    volume = env.text("ES4PS_BACKUP_VOLUME_DIR")
    if volume:
        return VolumeDestination(Path(volume), env.text("ES4PS_BACKUP_VOLUME_CLAIM"))
    endpoint = env.text("ES4PS_BACKUP_S3_ENDPOINT")
    if not endpoint:
        raise SettingError("set ES4PS_BACKUP_VOLUME_DIR or ES4PS_BACKUP_S3_ENDPOINT: where the backups are")
    return S3Destination(
        endpoint=endpoint,
        bucket=env.text("ES4PS_BACKUP_S3_BUCKET"),
        prefix=env.text("ES4PS_BACKUP_S3_PREFIX"),
        region=env.text("ES4PS_BACKUP_S3_REGION"),
        access_key_id=env.file_text("ES4PS_BACKUP_S3_ACCESS_KEY_ID_FILE"),
        secret_access_key=env.file_text("ES4PS_BACKUP_S3_SECRET_ACCESS_KEY_FILE"),
    )
