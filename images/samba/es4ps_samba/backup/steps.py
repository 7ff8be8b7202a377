"""The steps of the operator's backup and restore Jobs (see the package's docstring for what each does)."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from es4ps_contract.environment import Environment, SettingError

from ..dc.config import MARKER_NAME
from ..dc.domain import admin_arguments, samba_tool
from ..samdb import open_samdb_at
from .archive import (
    ARCHIVE_FORMAT,
    ARCHIVE_SUFFIX,
    DIRECTORY_FILE,
    MANIFEST_FILE,
    PORTAL_FILE,
    pack,
    run_age,
    sha256_file,
    unpack_flat,
)
from .destinations import CHUNK, BackupError, destination_from
from .origin import SIGNATURE_FILE, signed_manifest, trusted_manifest


def _admin_arguments(env: Environment) -> list[str]:
    realm = env.text("ES4PS_REALM").upper()
    netbios = env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0]
    return admin_arguments(netbios, env.file_text("ES4PS_ADMIN_PASSWORD_FILE"))


def dump_directory(env: Environment) -> Path:
    """An online backup of the DC ES4PS_BACKUP_SERVER (what a join replicates: every object, passwords too)."""
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


def store(env: Environment) -> dict[str, Any]:
    """Pack, encrypt, store; then delete what retention lets go. Returns the result the operator records."""
    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    name, domain = env.text("ES4PS_BACKUP_NAME"), env.text("ES4PS_BACKUP_DOMAIN")
    if not name or not domain:
        raise SettingError("ES4PS_BACKUP_NAME and ES4PS_BACKUP_DOMAIN name the backup")
    recipient_file = env.text("ES4PS_BACKUP_RECIPIENT_FILE")
    signing_key_file = env.text("ES4PS_BACKUP_SIGNING_KEY_FILE")
    if not recipient_file or not signing_key_file:
        raise SettingError(
            "ES4PS_BACKUP_RECIPIENT_FILE and ES4PS_BACKUP_SIGNING_KEY_FILE name the keys to encrypt and sign with"
        )
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
        "files": {path.name: {"size": path.stat().st_size, "sha256": sha256_file(path)} for path in files},
    }
    signed_manifest(manifest, work, signing_key_file)

    read_end, write_end = os.pipe()
    names = [MANIFEST_FILE, SIGNATURE_FILE, *(p.name for p in files)]
    packer = threading.Thread(target=pack, args=(work, names, write_end))
    packer.start()
    with os.fdopen(read_end, "rb") as packed:
        age, feeder = run_age(["--recipients-file", recipient_file], packed)
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


def fetch(env: Environment) -> dict[str, Any]:
    """Read the archive, check it, decrypt it, unpack its files into the work directory and check that the trusted
    key signed them (es4ps_samba.backup.origin), before any step restores anything."""
    work = Path(env.text("ES4PS_BACKUP_WORK_DIR"))
    location = env.text("ES4PS_BACKUP_LOCATION")
    identity, verify_key = env.text("ES4PS_BACKUP_IDENTITY_FILE"), env.text("ES4PS_BACKUP_VERIFY_KEY_FILE")
    if not location or not identity or not verify_key:
        raise SettingError(
            "ES4PS_BACKUP_LOCATION, ES4PS_BACKUP_IDENTITY_FILE and ES4PS_BACKUP_VERIFY_KEY_FILE name the archive,"
            " the key to decrypt it and the key it must be signed with"
        )
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
        age, feeder = run_age(["--decrypt", "--identity", identity], source)
        try:
            with tarfile.open(fileobj=age.stdout, mode="r|") as archive:
                unpack_flat(archive, work)
        except tarfile.TarError:
            if age.wait() == 0:
                raise
        # age's verdict first: with the wrong key its output is empty, which is no tar error to report.
        feeder.join()
        if age.wait() != 0:
            raise BackupError(f"age could not decrypt: {age.stderr.read().decode(errors='replace').strip()[:300]}")
    encrypted.unlink()
    expected_backup, accept_unsigned = env.text("ES4PS_BACKUP_NAME"), env.flag("ES4PS_BACKUP_ACCEPT_UNSIGNED")
    manifest = trusted_manifest(work, location, verify_key, expected_backup, accept_unsigned=accept_unsigned)
    for file, expected_file in manifest["files"].items():
        if sha256_file(work / file) != expected_file["sha256"]:
            raise BackupError(f"{file} of {location} is damaged (its SHA-256 differs from the manifest's)")
    return {"location": location, "backup": manifest["backup"], "domain": manifest["domain"]}


def restore_directory(env: Environment) -> dict[str, Any]:
    """samba-tool domain backup restore into the DC's volume, once, under a new name; the Administrator's
    password becomes the domain's (what further DCs join with)."""
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
    samdb = open_samdb_at(data_dir)
    samdb.setpassword("(&(objectClass=user)(sAMAccountName=Administrator))", password)


STEPS = {
    "dump-directory": lambda env: {"file": str(dump_directory(env))},
    "store": store,
    "fetch": fetch,
    "restore-directory": restore_directory,
}
