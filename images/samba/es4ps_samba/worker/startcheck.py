"""The check the worker makes before it takes a task: the directory answers, is the one meant, and the account fits.

A directory that does not answer (down, starting, unreachable) is waited for:
tasks wait in the broker. Anything an administrator has to fix is answered
instead, as a sentence starting with a reason word; the worker prints it as
its last line (`es4ps-worker: refused (<Reason>: ...)`) and exits, and the
operator names the reason in the domain's DirectoryReady condition
(es4ps_operator.external.worker_refusal):

- `InvalidCA`: the CA file (caSecretRef) holds no certificate;
- `UntrustedCertificate`: the directory's certificate does not verify against
  that CA, or does not name the URL's host (checked here with the standard
  library's TLS before Samba's client connects, whose own refusal says only
  that the connection failed);
- `CredentialsRefused`: the directory refused the account's bind;
- `OUNotFound`: the managed OU is not in the directory (external mode: the
  administrators make it; beside our DC it is waited for, the DC makes it);
- `NotDelegated`: the OU lacks what `es4ps-samba-dc delegate` makes in it;
- `TooManyRights`: the account can do more than the worker's job (`privilege`).

Nothing is written to the directory by any of these checks.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

from .config import WorkerConfig
from .directory import Directory
from .errors import ContainerMissing, CredentialsRefused, DirectoryUnavailable
from .privilege import TooManyRights

LDAPS_PORT = 636
# How long the TLS check waits for the directory's handshake before it counts as not answering.
HANDSHAKE_TIMEOUT_S = 10


class Refused(Exception):
    """The worker must not start as configured; `reason` names why for the operator, the message says what."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_certificate(url: str, ca_file: str, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> None:
    """Raise Refused when the certificate of the directory at `url` does not verify against `ca_file` (or
    does not name the URL's host); DirectoryUnavailable when it does not answer."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "", parsed.port or LDAPS_PORT
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as exc:
        raise Refused("InvalidCA", f"the CA file {ca_file} holds no usable CA certificate ({exc})") from None
    # Never stricter than Samba's client, which connects next (OpenSSL's strict X.509 profile is opt-in).
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as connection,
            context.wrap_socket(connection, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        raise Refused(
            "UntrustedCertificate",
            f"the certificate of the directory at {url} does not verify against the CA of {ca_file}"
            f" ({exc.verify_message})",
        ) from None
    except OSError as exc:  # refused, unreachable, a handshake cut short: not (yet) a directory that answers
        raise DirectoryUnavailable(f"{host}:{port} does not answer over TLS: {exc}") from None


def _missing(config: WorkerConfig, exc: ContainerMissing) -> Refused:
    if exc.managed_ou:
        return Refused(
            "OUNotFound", f"the OU {exc.dn} (spec.directory.external.ou) is not in the directory at {config.ldap_url}"
        )
    return Refused(
        "NotDelegated",
        f"{exc.dn} is missing: the OU was not delegated to {config.account} (run es4ps-samba-dc delegate on it)",
    )


def _check_once(config: WorkerConfig, directory: Directory) -> None:
    """One round of the checks; raises Refused, or DirectoryUnavailable for what is waited for."""
    if config.external:
        check_certificate(config.ldap_url, config.ldap_ca_file)
    try:
        directory.check_rights()
    except TooManyRights as exc:
        raise Refused(
            "TooManyRights", f"the account {config.account} has more rights than the worker needs: {exc}"
        ) from None
    except CredentialsRefused:
        raise Refused(
            "CredentialsRefused", f"the directory at {config.ldap_url} refused the account {config.account}"
        ) from None
    except ContainerMissing as exc:
        if config.external:
            raise _missing(config, exc) from None
        raise


def check_directory(config: WorkerConfig, directory: Directory, retry_s: float = 5) -> str | None:
    """Wait until the directory answers; then None when the worker may work with it, else why not (a reason
    word, a colon, a sentence without secrets: the module docstring)."""
    waiting = False
    while True:
        try:
            _check_once(config, directory)
            return None
        except Refused as exc:
            return f"{exc.reason}: {exc}"
        except DirectoryUnavailable as exc:
            if not waiting:
                print(f"es4ps-worker: waiting for the directory at {config.ldap_url}: {exc}", file=sys.stderr)
                waiting = True
            time.sleep(retry_s)
        finally:
            directory.close()
