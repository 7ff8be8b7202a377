"""Backups and restores of a domain, the steps of the operator's Jobs: `es4ps-backup <step>`.

    dump-directory     samba-tool domain backup online of a running DC -> <work>/directory.tar.bz2
    store              <work>/{directory.tar.bz2, portal.db} + a manifest -> one tar, encrypted to the
                       domain's age recipient while it streams -> the destination (a volume or S3);
                       then deletes the archives retention lets go; says where, how big and its SHA-256
    fetch              the archive -> checked -> decrypted with the identity -> unpacked into <work>
    restore-directory  <work>/directory.tar.bz2 -> a new DC's volume (samba-tool domain backup restore,
                       under a name the backup does not know), its Administrator password set to the
                       domain's; done once (a volume that holds a domain is left alone)

(the portal's database is dumped and restored by the portal image:
`es4ps-portal manage dump_database | restore_database`).

The archive never exists in clear outside the Pod: `age` encrypts it on its
way out (X25519 recipient from the domain's backup key Secret; the backup
Job gets only that public half), and decrypts it on its way in. By hand:

    age -d -i identity.txt acme-20261127-0200.tar.age | tar -x

The store step writes its result as one JSON line, on stdout and into the
Pod's termination message, where the operator reads it:

    {"location": "volume:acme-backups/acme/acme-20261127-0200.tar.age", "sizeBytes": 123, "sha256": "..."}
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from es4ps_contract.environment import Environment, SettingError, Variable

from .dc.config import MARKER_NAME

DIRECTORY_FILE = "directory.tar.bz2"
PORTAL_FILE = "portal.db"
MANIFEST_FILE = "manifest.json"
ARCHIVE_SUFFIX = ".tar.age"
ARCHIVE_FORMAT = 1
CHUNK = 8 * 1024 * 1024

VARIABLES = (
    Variable("ES4PS_REALM", "the realm", ""),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the domain Administrator's password", "", secret_file=True),
    Variable("ES4PS_BACKUP_WORK_DIR", "where the steps of one Job hand files to each other", "/var/lib/es4ps-job"),
    Variable("ES4PS_BACKUP_SERVER", "dump-directory: the DC to copy the directory from", ""),
    Variable("ES4PS_BACKUP_NAME", "store: the backup's name (the archive is named after it)", ""),
    Variable("ES4PS_BACKUP_DOMAIN", "store: the domain's name (archives are kept per domain)", ""),
    Variable("ES4PS_BACKUP_RECIPIENT_FILE", "store: the age recipient (public key) to encrypt to", ""),
    Variable("ES4PS_BACKUP_DELETE", "store: comma-separated archives to delete once this one is stored", ""),
    Variable("ES4PS_BACKUP_LOCATION", "fetch: the archive (volume:<claim>/<path> or s3://<bucket>/<key>)", ""),
    Variable("ES4PS_BACKUP_SHA256", "fetch: the archive's SHA-256 (empty: not checked)", ""),
    Variable("ES4PS_BACKUP_IDENTITY_FILE", "fetch: the age identity (private key) to decrypt with", ""),
    Variable("ES4PS_BACKUP_VOLUME_DIR", "destination `volume`: where the backups volume is mounted", ""),
    Variable("ES4PS_BACKUP_VOLUME_CLAIM", "destination `volume`: the claim's name, for locations", "backups"),
    Variable("ES4PS_BACKUP_S3_ENDPOINT", "destination `s3`: the service's URL", ""),
    Variable("ES4PS_BACKUP_S3_BUCKET", "destination `s3`: the bucket", ""),
    Variable("ES4PS_BACKUP_S3_PREFIX", "destination `s3`: a key prefix", ""),
    Variable("ES4PS_BACKUP_S3_REGION", "destination `s3`: the region requests are signed for", "us-east-1"),
    Variable("ES4PS_BACKUP_S3_ACCESS_KEY_ID_FILE", "destination `s3`: the access key id", "", secret_file=True),
    Variable("ES4PS_BACKUP_S3_SECRET_ACCESS_KEY_FILE", "destination `s3`: the secret key", "", secret_file=True),
    Variable("ES4PS_DC_HOSTNAME", "restore-directory: the restored DC's name", ""),
    Variable("ES4PS_DATA_DIR", "restore-directory: the DC's volume to restore into", ""),
    Variable("ES4PS_TERMINATION_LOG", "where a step writes its result for the operator", "/dev/termination-log"),
)


class BackupError(RuntimeError):
    """A step cannot be done; the message says why, for people (never a secret)."""


# --- where archives go ---------------------------------------------------------------------------------


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


# --- the steps -------------------------------------------------------------------------------------------


def _admin_arguments(env: Environment) -> list[str]:
    realm = env.text("ES4PS_REALM").upper()
    netbios = env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0]
    from .dc.domain import admin_arguments

    return admin_arguments(netbios, env.file_text("ES4PS_ADMIN_PASSWORD_FILE"))


def dump_directory(env: Environment) -> Path:
    """An online backup of the DC ES4PS_BACKUP_SERVER (what a join replicates: every object, passwords too)."""
    from .dc.domain import samba_tool

    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    staging = work / "directory-backup"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    server = env.text("ES4PS_BACKUP_SERVER")
    if not server:
        raise SettingError("ES4PS_BACKUP_SERVER names the DC to copy")
    try:
        # In LMDB, as new DCs keep their directory (es4ps_samba.dc.store): a restored DC runs on it too.
        samba_tool(
            "domain",
            "backup",
            "online",
            f"--server={server}",
            f"--targetdir={staging}",
            "--backend-store=mdb",
            *_admin_arguments(env),
        )
    except SystemExit as exc:
        raise BackupError(f"samba-tool domain backup online from {server} failed: {exc}") from None
    [archive] = staging.glob("samba-backup-*.tar.bz2")
    target = work / DIRECTORY_FILE
    archive.replace(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _age(arguments: list[str], source: IO[bytes]) -> tuple[subprocess.Popen, threading.Thread]:
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


def store(env: Environment) -> dict[str, Any]:
    """Pack, encrypt, store; then delete what retention lets go. Returns the result the operator records."""
    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    name, domain = env.text("ES4PS_BACKUP_NAME"), env.text("ES4PS_BACKUP_DOMAIN")
    if not name or not domain:
        raise SettingError("ES4PS_BACKUP_NAME and ES4PS_BACKUP_DOMAIN name the backup")
    recipient_file = env.text("ES4PS_BACKUP_RECIPIENT_FILE")
    if not recipient_file:
        raise SettingError("ES4PS_BACKUP_RECIPIENT_FILE names the age recipient to encrypt to")
    files = [work / DIRECTORY_FILE, work / PORTAL_FILE]
    missing = [path.name for path in files if not path.exists()]
    if missing:
        raise BackupError(f"nothing to store: {', '.join(missing)} missing (an earlier step failed)")
    manifest = {
        "format": ARCHIVE_FORMAT,
        "backup": name,
        "domain": domain,
        "realm": env.text("ES4PS_REALM").upper(),
        "createdAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": {path.name: {"size": path.stat().st_size, "sha256": _sha256_file(path)} for path in files},
    }
    (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")

    read_end, write_end = os.pipe()
    packer = threading.Thread(target=_pack, args=(work, [MANIFEST_FILE, *(p.name for p in files)], write_end))
    packer.start()
    with os.fdopen(read_end, "rb") as packed:
        age, feeder = _age(["--recipients-file", recipient_file], packed)
        digest, size = hashlib.sha256(), 0

        def encrypted() -> Iterator[bytes]:
            nonlocal size
            for chunk in iter(lambda: age.stdout.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        location = destination_from(env).write(f"{domain}/{name}{ARCHIVE_SUFFIX}", encrypted())
        feeder.join()
        packer.join()
        if age.wait() != 0:
            raise BackupError(f"age could not encrypt: {age.stderr.read().decode(errors='replace').strip()[:300]}")
    destination = destination_from(env)
    for old in filter(None, env.text("ES4PS_BACKUP_DELETE").split(",")):
        destination.delete(old.strip())
    return {"location": location, "sizeBytes": size, "sha256": digest.hexdigest()}


def _pack(work: Path, names: list[str], descriptor: int) -> None:
    with os.fdopen(descriptor, "wb") as out, tarfile.open(fileobj=out, mode="w|") as archive:
        for name in names:
            archive.add(work / name, arcname=name)


def _unpack_flat(archive: tarfile.TarFile, work: Path) -> None:
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


def fetch(env: Environment) -> dict[str, Any]:
    """Read the archive, check it, decrypt it and unpack its files into the work directory."""
    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    location = env.text("ES4PS_BACKUP_LOCATION")
    identity = env.text("ES4PS_BACKUP_IDENTITY_FILE")
    if not location or not identity:
        raise SettingError("ES4PS_BACKUP_LOCATION and ES4PS_BACKUP_IDENTITY_FILE name the archive and its key")
    work.mkdir(parents=True, exist_ok=True)
    encrypted = work / "archive.tar.age"
    digest = hashlib.sha256()
    with encrypted.open("wb") as out:
        for chunk in destination_from(env).read(location):
            digest.update(chunk)
            out.write(chunk)
    expected = env.text("ES4PS_BACKUP_SHA256")
    if expected and digest.hexdigest() != expected:
        raise BackupError(f"{location} is not the archive the backup recorded (its SHA-256 differs)")
    with encrypted.open("rb") as source:
        age, feeder = _age(["--decrypt", "--identity", identity], source)
        try:
            with tarfile.open(fileobj=age.stdout, mode="r|") as archive:
                _unpack_flat(archive, work)
        except tarfile.TarError:
            if age.wait() == 0:
                raise
        # age's verdict first: with the wrong key its output is empty, which is no tar error to report.
        feeder.join()
        if age.wait() != 0:
            raise BackupError(f"age could not decrypt: {age.stderr.read().decode(errors='replace').strip()[:300]}")
    encrypted.unlink()
    manifest = json.loads((work / MANIFEST_FILE).read_text())
    for file, expected_file in manifest["files"].items():
        if _sha256_file(work / file) != expected_file["sha256"]:
            raise BackupError(f"{file} of {location} is damaged (its SHA-256 differs from the manifest's)")
    return {"location": location, "backup": manifest["backup"], "domain": manifest["domain"]}


def restore_directory(env: Environment) -> dict[str, Any]:
    """samba-tool domain backup restore into the DC's volume, once, under a new name; the Administrator's
    password becomes the domain's (what further DCs join with)."""
    from .dc.domain import samba_tool

    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    data_dir = Path(env.text("ES4PS_DATA_DIR"))
    hostname = env.text("ES4PS_DC_HOSTNAME").lower()
    if not hostname or not env.text("ES4PS_DATA_DIR"):
        raise SettingError("ES4PS_DC_HOSTNAME and ES4PS_DATA_DIR name the restored DC and its volume")
    if (data_dir / MARKER_NAME).exists():
        return {"restored": "already"}  # a volume that holds a domain is never restored over
    for name in ("etc", "private", "state", "cache", "bind-dns", "sysvol"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    # Our own smb.conf for the restored DC: NT ACLs of the restored sysvol go to user.* xattrs, as the DC
    # container keeps them (no SYS_ADMIN); the entrypoint brings the rest of it in line at the DC's start.
    realm = env.text("ES4PS_REALM").upper()
    smb_conf = work / "restore-smb.conf"
    smb_conf.write_text(
        "[global]\n"
        f"\tnetbios name = {hostname.upper()}\n"
        f"\tworkgroup = {env.text('ES4PS_NETBIOS_NAME').upper() or realm.split('.')[0]}\n"
        f"\trealm = {realm}\n"
        "\tserver role = active directory domain controller\n"
        "\tacl_xattr:security_acl_name = user.NTACL\n"
    )
    # The volume's root is not empty (lost+found, the entrypoint's files); samba-tool allows restoring into a
    # prepared directory only under this variable, set for this call alone.
    os.environ["SAMBA_SELFTEST"] = "1"
    try:
        samba_tool(
            "domain",
            "backup",
            "restore",
            f"--backup-file={work / DIRECTORY_FILE}",
            f"--targetdir={data_dir}",
            f"--newservername={hostname}",
            f"--configfile={smb_conf}",
        )
    except SystemExit as exc:
        raise BackupError(f"samba-tool domain backup restore failed: {exc}") from None
    finally:
        os.environ.pop("SAMBA_SELFTEST", None)
    _set_administrator_password(data_dir, env.file_text("ES4PS_ADMIN_PASSWORD_FILE"))
    (data_dir / MARKER_NAME).write_text(f"restore {env.text('ES4PS_REALM').upper()} {hostname}\n")
    return {"restored": hostname}


def _set_administrator_password(data_dir: Path, password: str) -> None:
    from .dc.access import open_samdb_at

    samdb = open_samdb_at(data_dir)
    samdb.setpassword("(&(objectClass=user)(sAMAccountName=Administrator))", password)


STEPS = {
    "dump-directory": lambda env: {"file": str(dump_directory(env))},
    "store": store,
    "fetch": fetch,
    "restore-directory": restore_directory,
}


def _report(env: Environment, result: Mapping[str, Any]) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    # Outside a Pod there may be no termination log: stdout has the result too.
    with contextlib.suppress(OSError):
        Path(env.text("ES4PS_TERMINATION_LOG")).write_text(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es4ps-backup", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    args = parser.parse_args(argv)
    env = Environment(VARIABLES, os.environ)
    try:
        result = STEPS[args.step](env)
    except SettingError as exc:
        print(f"es4ps-backup: {exc}", file=sys.stderr)
        return 2
    except (BackupError, OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        print(f"es4ps-backup {args.step}: {exc}", file=sys.stderr)
        return 1
    _report(env, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
