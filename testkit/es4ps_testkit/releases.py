"""Releases in a real registry, as an adopter finds them: this checkout's and the previous one, signed.

`publish(directory)` starts the local OCI registry (es4ps_localcluster.registry:
TLS, htpasswd logins, its storage in the shared cache on a fixed port) and
releases into it with `es4ps_devtools.release` (the code of `make release`)
signed with the tests' own key, kept in the cache like the records of what
was pushed, so a second run pushes, describes and signs nothing again:

- this checkout (VERSION, e.g. 0.2.0),
- the previous release: the commit the CHANGELOG names for it, checked out in
  a git worktree of this repository and released by the same code.

The previous release is published first (cached, it takes seconds) and this
checkout's in the background meanwhile: a test installs the previous one
while this one is pushed, described and signed (`Published.releases` waits
for it).

The registry has two logins: `publisher` (pushes) and `puller` (what a
cluster's imagePullSecret holds). Nothing of a release is loaded into a node:
the kubelet pulls it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from es4ps_devtools import release as releasing
from es4ps_devtools.paths import ROOT, VERSION
from es4ps_localcluster import tools
from es4ps_localcluster.paths import CACHE
from es4ps_localcluster.registry import Registry

from . import ServiceError

# Kept across runs and checkouts (the e2e runs under the real-node lock): what the registry stores, the
# records of what was pushed and signed (es4ps_devtools.pushed), the tests' release key. With the same port,
# a second run finds every release already there and pushes, describes and signs nothing again.
STATE = CACHE / "registry"
STORAGE = STATE / "releases"
PORT = 35443
PUBLISHER, PULLER = "publisher", "puller"
KEY_PASSWORD = "release-key-of-the-tests"  # noqa: S105 - the tests' own key's password, not a secret


def previous_release() -> tuple[str, str]:
    """(version, commit) of the release before VERSION, as the CHANGELOG records it."""
    found = re.findall(
        r"^## (\d+\.\d+\.\d+) \([^)]*commit ([0-9a-f]{7,40})\)", (ROOT / "CHANGELOG.md").read_text(), re.M
    )
    older = [(version, commit) for version, commit in found if version != VERSION]
    if not older:
        raise ServiceError("CHANGELOG.md names no previous release with its commit")
    return older[0]


@dataclass
class Published:
    """The registry and what is in it: each release's summary (release.json) by version, and the key."""

    registry: Registry
    prefix: str
    public_key: Path
    puller_config: Path  # a folder holding config.json with the puller's login (DOCKER_CONFIG for cosign)
    previous: str
    current: str
    _published: dict[str, dict] = field(default_factory=dict)
    _current: concurrent.futures.Future | None = None  # this checkout's release, published in the background

    @property
    def releases(self) -> dict[str, dict]:
        """Both releases' summaries by version, once this checkout's is published too."""
        if self.current not in self._published:
            self._published[self.current] = self._current.result()
        return self._published

    def summary(self, version: str) -> dict:
        """One release's summary: the previous one at once, this checkout's once it is published."""
        return self._published[version] if version in self._published else self.releases[version]

    def chart(self, version: str, name: str) -> str:
        """oci://.../charts/<name> of a release (install it with --version)."""
        return self.summary(version)["charts"][name]["oci"]

    def image(self, version: str, name: str) -> str:
        """<registry>/<name>:<version>@sha256:... of a release's image."""
        return self.summary(version)["images"][name]["pinned"]


def cosign_key(directory: Path) -> Path:
    """The cosign key pair in `directory` (private key encrypted with KEY_PASSWORD), made if it is not there."""
    key = directory / "cosign.key"
    if not (key.exists() and key.with_suffix(".pub").exists()):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (key, key.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        env = {**os.environ, "COSIGN_PASSWORD": KEY_PASSWORD}
        subprocess.run([tools.ensure("cosign"), "generate-key-pair"], cwd=directory, env=env, check=True)
    return key


@contextlib.contextmanager
def _worktree(commit: str, path: Path) -> Iterator[Path]:
    """A git worktree of this repository at `commit` (detached), removed afterwards."""
    git = ["git", "-C", str(ROOT)]
    proc = subprocess.run([*git, "worktree", "add", "--detach", str(path), commit], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServiceError(f"cannot check out the previous release {commit}: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], capture_output=True)
        subprocess.run([*git, "worktree", "prune"], capture_output=True)


@contextlib.contextmanager
def publish(directory: Path) -> Iterator[Published]:
    """The local registry with the previous release and this checkout's, signed; stopped afterwards."""
    users = {PUBLISHER: secrets.token_urlsafe(16), PULLER: secrets.token_urlsafe(16)}
    registry = Registry(directory / "registry", STORAGE, users, port=PORT)
    registry.start()
    try:
        prefix = f"{registry.address}/es4ps"
        key = cosign_key(STATE / "key")
        auth = registry.write_auth_config(PUBLISHER, directory / "publisher")
        target = releasing.Registry(prefix, auth, registry.ca_file)
        version, commit = previous_release()

        def release(source: Path, version: str) -> dict:
            output = directory / f"release-{version}"
            return releasing.release(source, target, key, output, KEY_PASSWORD, STATE / "pushed")

        with _worktree(commit, directory / "previous-source") as source:
            previous = release(source, version)
        puller = registry.write_auth_config(PULLER, directory / "puller").parent
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
            current = background.submit(release, ROOT, VERSION)
            try:
                yield Published(
                    registry, prefix, key.with_suffix(".pub"), puller, version, VERSION, {version: previous}, current
                )
            finally:
                concurrent.futures.wait([current])  # the registry stops only once nothing pushes to it
    finally:
        registry.stop()
