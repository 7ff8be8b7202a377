"""What a release is made of and where it goes: the target registry, each pushed artifact, the release's error."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


class ReleaseError(RuntimeError):
    """A step of the release failed; the message says which and carries the tool's complaint."""


@dataclass(frozen=True)
class Registry:
    """Where a release goes and how to log in: `address/path` (no scheme), a config.json, a CA or None."""

    prefix: str
    auth_file: Path
    ca_file: Path | None = None

    @property
    def host(self) -> str:
        return self.prefix.split("/", 1)[0]

    def env(self, directory: Path) -> dict[str, str]:
        """The environment of cosign and helm: the login (DOCKER_CONFIG) and, for a private CA, SSL_CERT_FILE."""
        config = directory / "docker-config"
        config.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.auth_file, config / "config.json")
        env = {**os.environ, "DOCKER_CONFIG": str(config)}
        if self.ca_file:
            env["SSL_CERT_FILE"] = str(self.ca_file)
        return env


@dataclass
class Artifact:
    """One pushed image or chart: its reference by tag, its digest, and sizes in bytes."""

    name: str
    reference: str
    digest: str
    size: int
    sbom: str = ""
    sbom_size: int = 0

    @property
    def pinned(self) -> str:
        """`<reference>@<digest>`: the tag says the version, the digest is what is pulled."""
        return f"{self.reference}@{self.digest}"

    @property
    def repository(self) -> str:
        return self.reference.rsplit(":", 1)[0]

    @property
    def tag_and_digest(self) -> str:
        """`<version>@<digest>`: what a chart's `image.tag` takes to pin the image."""
        return f"{self.reference.rsplit(':', 1)[1]}@{self.digest}"
