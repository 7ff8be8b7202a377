"""A real S3-compatible server for tests: SeaweedFS (`weed server -s3`, built from localcluster/tools/seaweedfs).

Backups are stored in it exactly as in an organisation's object store: over the S3
API, with an access key that has rights on one bucket only.

    def test_x(s3_server):
        s3_server.endpoint, s3_server.bucket                 # where to store
        s3_server.backup_env(tmp_path)                       # ES4PS_BACKUP_S3_* for es4ps-backup
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from es4ps_localcluster import tools
from es4ps_localcluster.paths import BIN
from es4ps_localcluster.processes import free_ports, start_process, stop_process_group, wait_until

from . import ServiceError

WEED = BIN / "weed"


class SeaweedS3:
    """One SeaweedFS process (master, volume, filer and S3 gateway) with one bucket and one identity."""

    def __init__(self, directory: Path, bucket: str = "es4ps-backups") -> None:
        self.directory = directory
        self.bucket = bucket
        self.access_key_id = "es4ps-" + secrets.token_hex(4)
        self.secret_access_key = secrets.token_urlsafe(24)
        self._admin = ("admin-" + secrets.token_hex(4), secrets.token_urlsafe(24))
        self.log = directory / "weed.log"
        self._process = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90) -> None:
        try:
            tools.ensure("seaweedfs", WEED.name)  # built by the first test that needs it, then cached
        except tools.ToolError as exc:
            raise ServiceError(str(exc)) from None
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        # The backup identity may do anything in its bucket and nothing elsewhere (as a backup user
        # should); the fixture's own admin identity makes the bucket.
        identities = {
            "identities": [
                {
                    "name": "es4ps-backup",
                    "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
                    "actions": [f"{action}:{self.bucket}" for action in ("Read", "Write", "List", "Tagging")],
                },
                {
                    "name": "test-admin",
                    "credentials": [{"accessKey": self._admin[0], "secretKey": self._admin[1]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
            ]
        }
        config = self.directory / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        ports = free_ports(10)
        self.port = ports[0]
        command = [
            str(WEED),
            "server",
            "-ip=127.0.0.1",
            "-master.telemetry=false",
            f"-dir={self.directory / 'data'}",
            f"-master.port={ports[1]}",
            f"-master.port.grpc={ports[2]}",
            f"-volume.port={ports[3]}",
            f"-volume.port.grpc={ports[4]}",
            "-volume.max=4",
            "-master.volumeSizeLimitMB=64",
            "-filer",
            f"-filer.port={ports[5]}",
            f"-filer.port.grpc={ports[6]}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports[7]}",
            f"-s3.port.iceberg={ports[8]}",
            f"-s3.port.lance={ports[9]}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            f"-s3.config={config}",
        ]
        self._process = start_process(command, self.log)
        try:
            wait_until(self._bucket_ready, timeout_s, "SeaweedFS S3", self.log, self._process, error=ServiceError)
        except ServiceError:
            self.stop()
            raise

    def client(self, access_key_id: str | None = None, secret_access_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _bucket_ready(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.client(*self._admin)
            if self.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=self.bucket)
            client.list_objects_v2(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True

    def keys(self, prefix: str = "") -> list[str]:
        """The object keys in the bucket (under `prefix`)."""
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def backup_env(self, directory: Path, prefix: str = "acme", secret_access_key: str | None = None) -> dict[str, str]:
        """The variables es4ps-backup reads for this bucket (the keys in files, as the Job mounts them)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_id, secret = directory / "access-key-id", directory / "secret-access-key"
        key_id.write_text(self.access_key_id)
        secret.write_text(secret_access_key or self.secret_access_key)
        return {
            "ES4PS_BACKUP_S3_ENDPOINT": self.endpoint,
            "ES4PS_BACKUP_S3_BUCKET": self.bucket,
            "ES4PS_BACKUP_S3_PREFIX": prefix,
            "ES4PS_BACKUP_S3_REGION": "us-east-1",
            "ES4PS_BACKUP_S3_ACCESS_KEY_ID_FILE": str(key_id),
            "ES4PS_BACKUP_S3_SECRET_ACCESS_KEY_FILE": str(secret),
        }

    def stop(self) -> None:
        stop_process_group(self._process)
        self._process = None
