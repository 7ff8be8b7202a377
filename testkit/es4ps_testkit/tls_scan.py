"""A TLS port as an auditor sees it: sslyze (a third-party scanner) scans it, and the findings are named.

A finding is what an audit would refuse: a protocol below TLS 1.2 accepted,
a cipher suite that is not ECDHE or DHE with an AEAD cipher (CBC with SHA-1,
RC4, 3DES, NULL and anonymous suites are all such), compression, no secure
renegotiation (RFC 5746), or renegotiation a client may start. A port the
scanner cannot reach, or a scan command that fails, raises: no finding never
means "could not look".

`tls11_client_handshake` is the other half: a client that speaks only TLS 1.1
(the system OpenSSL, its security level lowered so that it may), to show that
a server refuses it.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ServiceError

# Suites an audit accepts under TLS 1.2 (TLS 1.3's are all AEAD): authenticated encryption...
AEAD_CIPHERS = ("_GCM_", "_CHACHA20_POLY1305", "_CCM")
# ...after a forward-secret key exchange.
FORWARD_SECRET_EXCHANGES = ("TLS_ECDHE_", "TLS_DHE_")
LEGACY_PROTOCOLS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")
COMMANDS = (
    *(f"{protocol}_cipher_suites" for protocol in LEGACY_PROTOCOLS),
    "tls_1_2_cipher_suites",
    "tls_1_3_cipher_suites",
    "tls_compression",
    "session_renegotiation",
)


@dataclass(frozen=True)
class Port:
    """A TLS port to scan: where it is, the name it answers to, how TLS starts, and a client certificate."""

    label: str  # what the port is, in the findings ("broker amqps")
    host: str  # the address to connect to
    port: int
    server_name: str = ""  # SNI and the name the certificate is for; none when empty
    starttls: str = ""  # "ldap": StartTLS on a plain LDAP port
    client_cert: Path | None = None  # for a server that requires one (mutual TLS)
    client_key: Path | None = None


def scan(ports: list[Port]) -> dict[str, list[str]]:
    """Scan every port (at once, as sslyze does); {label: findings}, an empty list where nothing is found.

    A StartTLS port is scanned through a relay that speaks StartTLS to it for each of the scanner's
    connections: sslyze's own LDAP StartTLS expects some servers' answers byte for byte, not Samba's.
    """
    from sslyze import Scanner

    with ExitStack() as relays:
        requests = {}
        for port in ports:
            host, number = relays.enter_context(starttls_relay(port)) if port.starttls else (port.host, port.port)
            request = _request(port, host, number)
            requests[request.uuid] = (port, request)
        scanner = Scanner()
        scanner.queue_scans([request for _port, request in requests.values()])
        return {
            requests[result.uuid][0].label: judge(_outcomes(requests[result.uuid][0], result))
            for result in scanner.get_results()
        }


def _request(port: Port, host: str, number: int) -> Any:
    from sslyze import (
        ClientAuthenticationCredentials,
        ScanCommand,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    credentials = None
    if port.client_cert:
        credentials = ClientAuthenticationCredentials(certificate_chain_path=port.client_cert, key_path=port.client_key)
    name = port.server_name or host
    return ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=name, port=number, ip_address=host),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=name, tls_client_auth_credentials=credentials
        ),
        scan_commands={ScanCommand(command) for command in COMMANDS},
    )


def _outcomes(port: Port, result: Any) -> dict[str, Any]:
    """{scan command: its result}; raises when the scanner could not connect or a command failed."""
    from sslyze import ScanCommandAttemptStatusEnum, ServerScanStatusEnum

    where = f"{port.label} ({port.host}:{port.port})"
    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        raise ServiceError(f"sslyze could not reach {where}: {_trace(result.connectivity_error_trace)}")
    outcomes = {}
    for command in COMMANDS:
        attempt = getattr(result.scan_result, command)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
            raise ServiceError(
                f"sslyze's {command} failed on {where}: {attempt.error_reason} {_trace(attempt.error_trace)}"
            )
        outcomes[command] = attempt.result
    if not (
        outcomes["tls_1_2_cipher_suites"].accepted_cipher_suites
        or outcomes["tls_1_3_cipher_suites"].accepted_cipher_suites
    ):
        raise ServiceError(f"{where} accepted no TLS 1.2 or 1.3 suite: the scan saw no working TLS at all")
    return outcomes


def _trace(trace: Any) -> str:
    return "".join(trace.format())[-600:] if trace else ""


def judge(outcomes: dict[str, Any]) -> list[str]:
    """The findings in one port's scan results."""
    found = []
    for protocol in LEGACY_PROTOCOLS:
        accepted = outcomes[f"{protocol}_cipher_suites"].accepted_cipher_suites
        if accepted:
            found.append(f"{protocol} accepted ({_names(accepted)})")
    for protocol in ("tls_1_2", "tls_1_3"):
        weak = [
            suite
            for suite in outcomes[f"{protocol}_cipher_suites"].accepted_cipher_suites
            if not modern_suite(suite.cipher_suite.name, suite.cipher_suite.is_anonymous)
        ]
        if weak:
            found.append(f"{protocol}: suites that are not ECDHE/DHE with AEAD ({_names(weak)})")
    if outcomes["tls_compression"].supports_compression:
        found.append("TLS compression supported")
    renegotiation = outcomes["session_renegotiation"]
    if not renegotiation.supports_secure_renegotiation:
        found.append("no secure renegotiation (RFC 5746)")
    if renegotiation.is_vulnerable_to_client_renegotiation_dos:
        found.append(f"client-initiated renegotiation accepted ({renegotiation.client_renegotiations_success_count}x)")
    return found


def _names(accepted: list[Any]) -> str:
    return ", ".join(suite.cipher_suite.name for suite in accepted)


def modern_suite(name: str, anonymous: bool = False) -> bool:
    """An IANA cipher suite name an audit accepts: TLS 1.3's, or ECDHE/DHE with an AEAD cipher, authenticated."""
    if anonymous or "_anon_" in name:
        return False
    if name.startswith("TLS_") and "_WITH_" not in name:
        return True  # TLS 1.3's: TLS_AES_128_GCM_SHA256 and its kin, all AEAD
    return name.startswith(FORWARD_SECRET_EXCHANGES) and any(cipher in name for cipher in AEAD_CIPHERS)


def tls11_client_handshake(port: Port, timeout_s: float = 10) -> str:
    """Offer only TLS 1.1 to `port`: the protocol of a completed handshake, or "refused: <why>"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    # OpenSSL 3 speaks TLS 1.1 only at security level 0; a TLS 1.1 client's suites are CBC with SHA-1.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if port.client_cert:
        context.load_cert_chain(port.client_cert, port.client_key)
    with socket.create_connection((port.host, port.port), timeout=timeout_s) as raw:
        if port.starttls:
            ldap_starttls(raw)
        try:
            with context.wrap_socket(raw, server_hostname=port.server_name or None) as tls:
                return tls.version() or "?"
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as error:
            return f"refused: {error}"


# LDAPv3 ExtendedRequest StartTLS (OID 1.3.6.1.4.1.1466.20037), message id 1 (RFC 4511, 4.14).
STARTTLS_REQUEST = bytes.fromhex("301d02010177188016312e332e362e312e342e312e313436362e3230303337")
# The start of its ExtendedResponse: message id 1, [APPLICATION 24], resultCode success (0).
_STARTTLS_SUCCESS = (bytes.fromhex("020101"), bytes.fromhex("0a0100"))


def ldap_starttls(raw: socket.socket) -> None:
    """Ask an LDAP server for StartTLS on `raw`; raises unless it agrees. TLS starts next on the socket."""
    raw.sendall(STARTTLS_REQUEST)
    answer = raw.recv(4096)
    message_id, success = _STARTTLS_SUCCESS
    if not (answer[:1] == b"\x30" and message_id in answer[:8] and b"\x78" in answer[:10] and success in answer[:16]):
        raise ServiceError(f"the LDAP server refused StartTLS: {answer[:64].hex()}")


@contextmanager
def starttls_relay(port: Port) -> Iterator[tuple[str, int]]:
    """A loopback port where each connection reaches `port` with StartTLS done: TLS starts at once there."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    stop = threading.Event()

    def relay(client: socket.socket) -> None:
        with client, socket.create_connection((port.host, port.port), timeout=10) as upstream:
            ldap_starttls(upstream)
            upstream.settimeout(None)
            client.settimeout(None)
            forward = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            forward.start()
            _pipe(upstream, client)
            forward.join(timeout=10)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes until `source` ends, then end `target`'s sending side."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)
