"""The command line of the backup steps (`es4ps-backup <step>`) and the variables the operator sets for them."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from es4ps_contract.environment import Environment, SettingError, Variable

from . import __doc__ as package_doc
from .destinations import BackupError
from .steps import STEPS

VARIABLES = (
    Variable("ES4PS_REALM", "the realm", ""),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "the domain Administrator's password", "", secret_file=True),
    Variable("ES4PS_BACKUP_WORK_DIR", "where the steps of one Job hand files to each other", "/var/lib/es4ps-job"),
    Variable("ES4PS_BACKUP_SERVER", "dump-directory: the DC to copy the directory from", ""),
    Variable(
        "ES4PS_BACKUP_NAME",
        "store: the backup's name (the archive is named after it); fetch: the backup the archive must hold",
        "",
    ),
    Variable("ES4PS_BACKUP_DOMAIN", "store: the domain's name (archives are kept per domain)", ""),
    Variable("ES4PS_BACKUP_RECIPIENT_FILE", "store: the age recipient (public key) to encrypt to", ""),
    Variable(
        "ES4PS_BACKUP_SIGNING_KEY_FILE", "store: the Ed25519 key the manifest is signed with", "", secret_file=True
    ),
    Variable("ES4PS_BACKUP_DELETE", "store: comma-separated archives to delete once this one is stored", ""),
    Variable("ES4PS_BACKUP_LOCATION", "fetch: the archive (volume:<claim>/<path> or s3://<bucket>/<key>)", ""),
    Variable("ES4PS_BACKUP_SHA256", "fetch: the archive's SHA-256 (empty: not checked)", ""),
    Variable("ES4PS_BACKUP_IDENTITY_FILE", "fetch: the age identity (private key) to decrypt with", ""),
    Variable(
        "ES4PS_BACKUP_VERIFY_KEY_FILE",
        "fetch: the Ed25519 public key the archive's signature must verify with (the restoring domain's choice)",
        "",
    ),
    Variable(
        "ES4PS_BACKUP_ACCEPT_UNSIGNED",
        "fetch: `true` restores an archive without a signature (made before 0.2.0); otherwise it is refused",
        "false",
    ),
    Variable("ES4PS_BACKUP_VOLUME_DIR", "destination `volume`: where the backups volume is mounted", ""),
    Variable("ES4PS_BACKUP_VOLUME_CLAIM", "destination `volume`: the claim's name, for locations", "backups"),
    Variable("ES4PS_BACKUP_S3_ENDPOINT", "destination `s3`: the service's URL", ""),
    Variable("ES4PS_BACKUP_S3_BUCKET", "destination `s3`: the bucket", ""),
    Variable("ES4PS_BACKUP_S3_PREFIX", "destination `s3`: a key prefix", ""),
    Variable("ES4PS_BACKUP_S3_REGION", "destination `s3`: the region requests are signed for (the CRD's default)"),
    Variable("ES4PS_BACKUP_S3_ACCESS_KEY_ID_FILE", "destination `s3`: the access key id", "", secret_file=True),
    Variable("ES4PS_BACKUP_S3_SECRET_ACCESS_KEY_FILE", "destination `s3`: the secret key", "", secret_file=True),
    Variable("ES4PS_DC_HOSTNAME", "restore-directory: the restored DC's name", ""),
    Variable("ES4PS_DATA_DIR", "restore-directory: the DC's volume to restore into", ""),
    Variable("ES4PS_TERMINATION_LOG", "where a step writes its result for the operator", "/dev/termination-log"),
)


def _report(env: Environment, result: Mapping[str, Any]) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    # Outside a Pod there may be no termination log: stdout has the result too.
    with contextlib.suppress(OSError):
        Path(env.text("ES4PS_TERMINATION_LOG")).write_text(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es4ps-backup", description=package_doc.splitlines()[0])
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
