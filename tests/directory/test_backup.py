"""Backups of the directory with the real DC, `age` and a backup volume: dump, store encrypted, fetch, restore.

What the operator's backup and restore Jobs run, as plain processes: the
restored directory runs as a DC of a new name, and the accounts it holds log
in with their passwords.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_operator.builders.secrets import generate_backup_key
from es4ps_samba.backup.archive import sha256_file
from es4ps_samba.dc.store import backend_store
from es4ps_testkit import ServiceError
from es4ps_testkit.backups import backup_step as step
from es4ps_testkit.backups import write_backup_key
from es4ps_testkit.registration import unique_username
from es4ps_testkit.samba import SambaDC, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("directory_worker")]


@pytest.fixture(scope="module")
def backup_key(tmp_path_factory) -> dict[str, Path]:
    return write_backup_key(tmp_path_factory.mktemp("backup-key"))


def portal_database(path: Path) -> None:
    database = sqlite3.connect(path)
    database.execute("CREATE TABLE accounts_user (username TEXT)")
    database.execute("INSERT INTO accounts_user VALUES ('from-the-portal')")
    database.commit()
    database.close()


@pytest.fixture(scope="module")
def dumped(tmp_path_factory, samba_dc, task_client) -> dict:
    """An enabled account, then an online dump of the directory (and a portal database): once per module."""
    username = unique_username("bk")
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    work = tmp_path_factory.mktemp("dump")
    directory = samba_dc.backup_env
    step("dump-directory", {**directory, "ES4PS_BACKUP_WORK_DIR": str(work)})
    portal_database(work / "portal.db")
    return {"work": work, "directory": directory, "username": username}


@pytest.fixture
def stored(tmp_path, dumped, backup_key) -> dict:
    """That dump stored (encrypted) on a volume of this test's own."""
    work, volume = tmp_path / "work", tmp_path / "backups"
    shutil.copytree(dumped["work"], work)
    volume.mkdir()
    common = {
        **dumped["directory"],
        "ES4PS_BACKUP_WORK_DIR": str(work),
        "ES4PS_BACKUP_VOLUME_DIR": str(volume),
        "ES4PS_BACKUP_VOLUME_CLAIM": "acme-backups",
        "ES4PS_TERMINATION_LOG": str(tmp_path / "termination-log"),
        # The domain's signing key (the store step's) and the key a restore of this domain trusts (the fetch step's).
        "ES4PS_BACKUP_SIGNING_KEY_FILE": str(backup_key["signing-key"]),
        "ES4PS_BACKUP_VERIFY_KEY_FILE": str(backup_key["verify-key"]),
    }
    result = step(
        "store",
        {
            **common,
            "ES4PS_BACKUP_NAME": "acme-20261127-0200",
            "ES4PS_BACKUP_DOMAIN": "acme",
            "ES4PS_BACKUP_RECIPIENT_FILE": str(backup_key["recipient"]),
        },
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "termination-log").read_text()) == report
    return {
        "report": report,
        "common": common,
        "volume": volume,
        "username": dumped["username"],
        "work": work,
        "recipient": backup_key["recipient"],
        "identity": backup_key["identity"],
    }


def test_a_stored_backup_is_encrypted_and_says_where_it_is(stored, samba_dc):
    report = stored["report"]
    assert report["location"] == "volume:acme-backups/acme/acme-20261127-0200.tar.age"
    archive = stored["volume"] / "acme" / "acme-20261127-0200.tar.age"
    content = archive.read_bytes()
    assert report["sizeBytes"] == len(content) > 100_000
    assert content.startswith(b"age-encryption.org/v1")
    # Nothing readable leaks: not the tar headers, not the names, not the realm.
    for clear in (b"manifest.json", b"directory.tar.bz2", b"from-the-portal", samba_dc.realm.encode()):
        assert clear not in content
    assert not list(stored["volume"].rglob("*.partial"))


def test_a_backup_restores_as_a_new_dc_whose_accounts_log_in(
    tmp_path, tmp_path_factory, stored, samba_dc, test_ca, backup_key
):
    fetched = tmp_path / "fetched"
    step(
        "fetch",
        {
            **stored["common"],
            "ES4PS_BACKUP_WORK_DIR": str(fetched),
            "ES4PS_BACKUP_LOCATION": stored["report"]["location"],
            "ES4PS_BACKUP_SHA256": stored["report"]["sha256"],
            "ES4PS_BACKUP_IDENTITY_FILE": str(backup_key["identity"]),
            "ES4PS_BACKUP_NAME": "acme-20261127-0200",
        },
    )
    copy = sqlite3.connect(fetched / "portal.db")
    assert copy.execute("SELECT username FROM accounts_user").fetchall() == [("from-the-portal",)]
    copy.close()

    # A short path: samba's sockets live under the DC's directory and Unix socket paths are short.
    restored = SambaDC(tmp_path_factory.mktemp("restored"), test_ca, hostname="dc0-r1a2")
    restored.admin_password = "Restored-Adm1n-pass!"
    restored.admin_password_file.parent.mkdir(parents=True, exist_ok=True)
    restored.admin_password_file.write_text(restored.admin_password)
    restore_env = {
        **stored["common"],
        "ES4PS_BACKUP_WORK_DIR": str(fetched),
        "ES4PS_DC_HOSTNAME": "dc0-r1a2",
        "ES4PS_DATA_DIR": str(restored.data_dir),
        "ES4PS_ADMIN_PASSWORD_FILE": str(restored.admin_password_file),
    }
    step("restore-directory", restore_env)
    assert json.loads(step("restore-directory", restore_env).stdout.splitlines()[-1]) == {"restored": "already"}
    try:
        restored.start(timeout_s=180)
    except ServiceError as exc:
        restored.close()
        pytest.fail(str(exc), pytrace=False)
    try:
        username = stored["username"]
        assert backend_store(restored.sam_ldb) == "mdb"  # backups are taken in LMDB, as new DCs store
        assert password_authenticates(restored, username, PASSWORD)
        assert not password_authenticates(restored, username, PASSWORD + "x")
        # The restored directory's Administrator has the new domain's password (further DCs join with it).
        assert restored.samdb().search(restored.base_dn, expression="(sAMAccountName=Administrator)")
        names = {
            str(m["cn"][0])
            for m in restored.samdb().search(
                f"CN=Sites,CN=Configuration,{restored.base_dn}", expression="(objectClass=server)", attrs=["cn"]
            )
        }
        assert names == {"DC0-R1A2"}  # the backed-up DC is gone from the restored topology
    finally:
        restored.close()


def test_the_wrong_key_or_a_changed_archive_is_refused(tmp_path, stored):
    other_key = generate_backup_key()
    (tmp_path / "other").write_text(other_key["identity"])
    fetch = {
        **stored["common"],
        "ES4PS_BACKUP_WORK_DIR": str(tmp_path / "f1"),
        "ES4PS_BACKUP_LOCATION": stored["report"]["location"],
        "ES4PS_BACKUP_IDENTITY_FILE": str(tmp_path / "other"),
    }
    refused = step("fetch", fetch, check=False)
    assert refused.returncode == 1 and "age could not decrypt" in refused.stderr

    archive = stored["volume"] / "acme" / "acme-20261127-0200.tar.age"
    archive.write_bytes(archive.read_bytes()[:-10] + b"0123456789")
    changed = step("fetch", {**fetch, "ES4PS_BACKUP_SHA256": stored["report"]["sha256"]}, check=False)
    assert changed.returncode == 1 and "SHA-256 differs" in changed.stderr


def test_store_deletes_only_the_archives_retention_lets_go(tmp_path, stored, backup_key):
    volume = stored["volume"]
    (volume / "acme" / "acme-old.tar.age").write_bytes(b"old")
    (volume / "acme" / "acme-kept.tar.age").write_bytes(b"kept")
    step(
        "store",
        {
            **stored["common"],
            "ES4PS_BACKUP_NAME": "acme-20261128-0200",
            "ES4PS_BACKUP_DOMAIN": "acme",
            "ES4PS_BACKUP_RECIPIENT_FILE": str(backup_key["recipient"]),
            "ES4PS_BACKUP_DELETE": "volume:acme-backups/acme/acme-old.tar.age",
        },
    )
    assert sorted(p.name for p in (volume / "acme").iterdir()) == [
        "acme-20261127-0200.tar.age",
        "acme-20261128-0200.tar.age",
        "acme-kept.tar.age",
    ]


def test_a_backup_goes_to_s3_and_comes_back(tmp_path, stored, s3_server, backup_key):
    """The same archive through a real S3 API: stored under the prefix, fetched, deleted by retention."""
    s3 = s3_server.backup_env(tmp_path / "s3-keys")
    common = {k: v for k, v in stored["common"].items() if not k.startswith("ES4PS_BACKUP_VOLUME")}
    store = {
        **common,
        **s3,
        "ES4PS_BACKUP_NAME": "acme-20261127-0300",
        "ES4PS_BACKUP_DOMAIN": "acme",
        "ES4PS_BACKUP_RECIPIENT_FILE": str(backup_key["recipient"]),
    }
    report = json.loads(step("store", store).stdout.strip().splitlines()[-1])
    assert report["location"] == f"s3://{s3_server.bucket}/acme/acme/acme-20261127-0300.tar.age"
    assert s3_server.keys("acme/") == ["acme/acme/acme-20261127-0300.tar.age"]
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key="acme/acme/acme-20261127-0300.tar.age")
    assert body["Body"].read(21) == b"age-encryption.org/v1"

    fetched = tmp_path / "fetched"
    fetch = {
        **common,
        **s3,
        "ES4PS_BACKUP_WORK_DIR": str(fetched),
        "ES4PS_BACKUP_LOCATION": report["location"],
        "ES4PS_BACKUP_SHA256": report["sha256"],
        "ES4PS_BACKUP_IDENTITY_FILE": str(backup_key["identity"]),
    }
    assert json.loads(step("fetch", fetch).stdout.splitlines()[-1])["backup"] == "acme-20261127-0300"
    assert (fetched / "directory.tar.bz2").stat().st_size > 100_000

    step("store", {**store, "ES4PS_BACKUP_NAME": "acme-20261128-0300", "ES4PS_BACKUP_DELETE": report["location"]})
    assert s3_server.keys("acme/") == ["acme/acme/acme-20261128-0300.tar.age"]


def test_s3_credentials_that_do_not_work_fail_the_backup_with_the_reason(tmp_path, stored, s3_server, backup_key):
    s3 = s3_server.backup_env(tmp_path / "s3-keys", secret_access_key="not-the-secret")
    common = {k: v for k, v in stored["common"].items() if not k.startswith("ES4PS_BACKUP_VOLUME")}
    failed = step(
        "store",
        {
            **common,
            **s3,
            "ES4PS_BACKUP_NAME": "acme-20261127-0400",
            "ES4PS_BACKUP_DOMAIN": "acme",
            "ES4PS_BACKUP_RECIPIENT_FILE": str(backup_key["recipient"]),
        },
        check=False,
    )
    assert failed.returncode == 1
    assert "SignatureDoesNotMatch" in failed.stderr or "InvalidAccessKeyId" in failed.stderr, failed.stderr
    assert "not-the-secret" not in failed.stderr + failed.stdout
    termination = json.loads((tmp_path / "termination-log").read_text())
    assert "not-the-secret" not in json.dumps(termination)
    assert s3_server.keys("acme/") == [] or all("0400" not in key for key in s3_server.keys("acme/"))


# --- where an archive came from: signed by the domain's key, checked with the key the restore trusts -------------


def fetch_env(stored: dict, work: Path, **changes: str) -> dict[str, str]:
    """What a restore of the domain's backup acme-20261127-0200 fetches with (the domain's own trusted key);
    the SHA-256 left out: whoever may write the ES4PSBackup's status sets it to whatever they like."""
    return {
        **stored["common"],
        "ES4PS_BACKUP_WORK_DIR": str(work),
        "ES4PS_BACKUP_LOCATION": stored["report"]["location"],
        "ES4PS_BACKUP_IDENTITY_FILE": str(stored["identity"]),
        "ES4PS_BACKUP_NAME": "acme-20261127-0200",
        **changes,
    }


def refused(result, reason: str) -> None:
    assert result.returncode == 1, result.stdout
    assert reason in result.stderr, result.stderr


def test_an_archive_another_key_signed_is_refused_with_the_reason(tmp_path, stored):
    """Someone with the destination's write access and the public recipient stores an archive of their own under
    the backup's name, signed with their own key: the restore refuses it before restoring anything."""
    mallory = write_backup_key(tmp_path / "mallory")
    work = tmp_path / "mallory-work"
    shutil.copytree(stored["work"], work)
    step(
        "store",
        {
            **stored["common"],
            "ES4PS_BACKUP_WORK_DIR": str(work),
            "ES4PS_BACKUP_NAME": "acme-20261127-0200",
            "ES4PS_BACKUP_DOMAIN": "acme",
            "ES4PS_BACKUP_RECIPIENT_FILE": str(stored["recipient"]),  # the domain's own (public) recipient
            "ES4PS_BACKUP_SIGNING_KEY_FILE": str(mallory["signing-key"]),
        },
    )
    fetched = tmp_path / "fetched"
    result = step("fetch", fetch_env(stored, fetched), check=False)
    refused(result, f"{stored['report']['location']} is not signed by the trusted key ")
    refused(result, "another key signed it, or it was altered): refused")


def test_a_tampered_archive_is_refused_with_the_reason(tmp_path, stored):
    archive = stored["volume"] / "acme" / "acme-20261127-0200.tar.age"
    content = bytearray(archive.read_bytes())
    content[len(content) // 2] ^= 0x01  # one bit inside the encrypted payload
    archive.write_bytes(bytes(content))
    refused(step("fetch", fetch_env(stored, tmp_path / "f1"), check=False), "age could not decrypt")
    recorded = {"ES4PS_BACKUP_SHA256": stored["report"]["sha256"]}
    refused(step("fetch", fetch_env(stored, tmp_path / "f2", **recorded), check=False), "SHA-256 differs")


def test_a_genuine_archive_of_another_backup_in_its_place_is_refused(tmp_path, stored):
    location = stored["report"]["location"]
    older = step(
        "store",
        {
            **stored["common"],
            "ES4PS_BACKUP_WORK_DIR": str(stored["work"]),
            "ES4PS_BACKUP_NAME": "acme-20261101-0200",
            "ES4PS_BACKUP_DOMAIN": "acme",
            "ES4PS_BACKUP_RECIPIENT_FILE": str(stored["recipient"]),
        },
    )
    older_archive = stored["volume"] / "acme" / "acme-20261101-0200.tar.age"
    shutil.copy(older_archive, stored["volume"] / "acme" / "acme-20261127-0200.tar.age")
    assert json.loads(older.stdout.splitlines()[-1])["location"] != location
    result = step("fetch", fetch_env(stored, tmp_path / "fetched"), check=False)
    refused(result, f"{location} holds the backup 'acme-20261101-0200', not 'acme-20261127-0200': refused")


def test_an_unsigned_archive_of_the_previous_release_is_refused_unless_the_domain_accepts_it(tmp_path, stored):
    """What releases before 0.2.0 stored: the manifest and the files, encrypted, no signature."""
    work = tmp_path / "old"
    work.mkdir()
    for name in ("directory.tar.bz2", "portal.db"):
        shutil.copy(stored["work"] / name, work / name)
    manifest = {"format": 1, "backup": "acme-20261127-0200", "domain": "acme", "realm": "ES4PS.TEST", "files": {}}
    for name in ("directory.tar.bz2", "portal.db"):
        manifest["files"][name] = {"size": (work / name).stat().st_size, "sha256": sha256_file(work / name)}
    (work / "manifest.json").write_text(json.dumps(manifest))
    packed = tmp_path / "old.tar"
    with tarfile.open(packed, "w") as archive:
        for name in ("manifest.json", "directory.tar.bz2", "portal.db"):
            archive.add(work / name, arcname=name)
    archive_path = stored["volume"] / "acme" / "acme-20261127-0200.tar.age"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["age", "--recipients-file", str(stored["recipient"]), "--output", str(archive_path), str(packed)], check=True
    )  # fmt: skip

    result = step("fetch", fetch_env(stored, tmp_path / "f1"), check=False)
    refused(result, "carries no signature (made before 0.2.0, or not by ES4PS): refused. To restore a backup whose")
    refused(result, "set spec.directory.bootstrap.recovery.acceptUnsigned: true")
    accepted = step("fetch", fetch_env(stored, tmp_path / "f2", ES4PS_BACKUP_ACCEPT_UNSIGNED="true"))
    assert json.loads(accepted.stdout.splitlines()[-1])["backup"] == "acme-20261127-0200"
    assert "carries no signature; accepted as told" in accepted.stderr
    assert sha256_file(tmp_path / "f2" / "directory.tar.bz2") == manifest["files"]["directory.tar.bz2"]["sha256"]
