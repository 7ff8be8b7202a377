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
from pathlib import Path

import pytest
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_operator.builders.secrets import generate_backup_key
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
    return {"report": report, "common": common, "volume": volume, "username": dumped["username"]}


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
