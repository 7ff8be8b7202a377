"""The LDAPS certificate: copied from the mounted Secret into private/tls with the modes Samba insists on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .config import DCConfig


def _tls_sources(config: DCConfig) -> list[tuple[str, Path, int]]:
    """(mounted file, installed file, mode) of the LDAPS certificate, key and CA."""
    cert, key, ca = config.installed_tls_files
    return [(config.tls_cert_file, cert, 0o644), (config.tls_ca_file, ca, 0o644), (config.tls_key_file, key, 0o600)]


def mounted_tls_digest(config: DCConfig) -> str | None:
    """A digest of the mounted certificate files as they are now; None while one cannot be read."""
    digest = hashlib.sha256()
    try:
        for source, _name, _mode in _tls_sources(config):
            digest.update(Path(source).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def install_tls_files(config: DCConfig) -> str:
    """Copy the mounted certificate into private/tls with the modes Samba insists on; return their digest.

    Samba refuses a key file that is not mode 0600 and owned by its user
    (CVE-2013-4476); a Secret volume does not always give that, so the files
    are copied (on every start, and by `serve` when they are renewed).
    """
    if not config.tls_cert_file:
        return ""
    digest = hashlib.sha256()
    for source, target, mode in _tls_sources(config):
        target.parent.mkdir(parents=True, exist_ok=True)
        content = Path(source).read_bytes()
        digest.update(content)
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(temporary, mode)
        temporary.replace(target)
    return digest.hexdigest()
