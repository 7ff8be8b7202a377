"""A real OCI registry: the distribution registry (localcluster/tools/registry) with TLS and htpasswd logins.

    registry = Registry(state_dir, storage_dir, users={"publisher": "...", "puller": "..."})
    registry.start()             built on first use (tools.ensure), its own CA and certificate, ready when
                                 /v2/ asks for a login
    registry.address             "<host address>:<port>": the real node's containerd pulls from it
    registry.ca_file             the CA its certificate comes from (helm --ca-file, skopeo, cosign, containerd)
    trust_on_node(hosts_dir, registry.address, registry.ca_file)   containerd's hosts config for it
    registry.stop()

Why TLS and not plain HTTP: containerd pulls over HTTPS unless a host is
declared insecure, Helm and cosign need extra flags for plain HTTP, and an
adopter's registry speaks TLS; the local CA is given to each client instead
(containerd through its hosts directory, `config_path`, which it reads at each
pull). Logins are htpasswd (bcrypt) users: the registry refuses anonymous
pulls, so a Pod only gets an image with an imagePullSecret.

The storage folder is the caller's: a cached one keeps pushed blobs across
runs (a second push of the same image uploads nothing).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import bcrypt
import yaml

from . import tools
from .components.node import host_ip
from .pki import CertificateAuthority
from .processes import free_port, start_process, stop_process_group, wait_until

CA_DAYS = 3650
LEAF_DAYS = 365


class RegistryError(RuntimeError):
    """The registry did not start; the message carries the end of its log."""


class Registry:
    """One registry process serving `storage_dir` over HTTPS to the `users` given (name -> password)."""

    def __init__(self, state_dir: Path, storage_dir: Path, users: Mapping[str, str], port: int = 0) -> None:
        self.state = state_dir
        self.storage = storage_dir
        self.users = dict(users)
        self.host = host_ip()
        self.port = port
        self.ca_file = state_dir / "ca.crt"
        self.log = state_dir / "registry.log"
        self._process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """host:port, as image references and `oci://` URLs name the registry."""
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        """Build the registry if needed, write its certificate, logins and configuration, start it, wait."""
        try:
            binary = tools.ensure("registry")
        except tools.ToolError as exc:
            raise RegistryError(str(exc)) from None
        self.state.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        ca = CertificateAuthority.ensure(self.ca_file, self.state / "ca.key", "local-registry-ca", CA_DAYS)
        names = (self.host, "127.0.0.1", "localhost")
        ca.issue(self.state / "tls.crt", self.state / "tls.key", "registry", server_names=names, valid_days=LEAF_DAYS)
        htpasswd = self.state / "htpasswd"
        htpasswd.write_text(
            "".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt()).decode()}\n" for u, p in self.users.items())
        )
        htpasswd.chmod(0o600)
        config = self.state / "config.yml"
        config.write_text(yaml.safe_dump(self._configuration(htpasswd)))
        self._process = start_process([binary, "serve", str(config)], self.log)
        wait_until(
            lambda: self._status("/v2/") == 401,
            timeout_s,
            f"the registry at {self.address}",
            self.log,
            self._process,
            error=RegistryError,
        )

    def stop(self) -> None:
        stop_process_group(self._process)
        self._process = None

    def _configuration(self, htpasswd: Path) -> dict:
        return {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
            "http": {
                "addr": self.address,
                "tls": {"certificate": str(self.state / "tls.crt"), "key": str(self.state / "tls.key")},
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "auth": {"htpasswd": {"realm": "local-registry", "path": str(htpasswd)}},
        }

    def context(self) -> ssl.SSLContext:
        """A TLS client context trusting the registry's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _status(self, path: str, headers: Mapping[str, str] | None = None) -> int | None:
        request = urllib.request.Request(f"https://{self.address}{path}", headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, context=self.context(), timeout=5) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def auth_config(self, user: str) -> dict:
        """The `.dockerconfigjson` of a login as `user` (an imagePullSecret's, or a client's config.json)."""
        token = base64.b64encode(f"{user}:{self.users[user]}".encode()).decode()
        return {"auths": {self.address: {"username": user, "password": self.users[user], "auth": token}}}

    def write_auth_config(self, user: str, directory: Path) -> Path:
        """`directory`/config.json holding the login of `user` (DOCKER_CONFIG for skopeo, cosign, syft)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps(self.auth_config(user)))
        path.chmod(0o600)
        return path


def trust_on_node(hosts_dir: Path, address: str, ca_file: Path) -> None:
    """containerd's hosts configuration for a registry at `address` whose certificate comes from `ca_file`.

    containerd reads `<hosts_dir>/<address>/hosts.toml` at each pull (its CRI
    registry `config_path`), so no restart is needed.
    """
    folder = hosts_dir / address
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.crt").write_bytes(ca_file.read_bytes())
    (folder / "hosts.toml").write_text(
        f'server = "https://{address}"\n\n'
        f'[host."https://{address}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f'  ca = "{folder / "ca.crt"}"\n'
    )
