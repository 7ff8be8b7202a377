"""A certificate authority made for one test session, issuing certificates the way cert-manager's Secrets hold them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from es4ps_localcluster.pki import CertificateAuthority


@dataclass(frozen=True)
class CertFiles:
    """One issued certificate as a cert-manager Secret holds it: ca.crt, tls.crt, tls.key in one directory."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"


class ThrowawayCA:
    """A new CA in `directory` (ECDSA P-256, valid one day); `ca_file` is its certificate."""

    VALID_DAYS = 1

    def __init__(self, directory: Path, name: str = "ES4PS test CA") -> None:
        self.directory = directory
        self.ca_file = directory / "ca.crt"
        self._ca = CertificateAuthority.create(self.ca_file, directory / "ca.key", name, self.VALID_DAYS)

    def issue(
        self, name: str, common_name: str, *, server_names: tuple[str, ...] = (), client: bool = False
    ) -> CertFiles:
        """Issue a certificate into `<ca dir>/<name>/`: a server one for `server_names` (DNS names or IPs),
        a client one when `client` (the broker maps its common name to a user), or both."""
        files = CertFiles(self.directory / name)
        files.directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.ca_file, files.ca_file)
        self._ca.issue(
            files.cert_file,
            files.key_file,
            common_name,
            server_names=server_names,
            client=client,
            valid_days=self.VALID_DAYS,
        )
        return files
