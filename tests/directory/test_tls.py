"""Every TLS port of a DC and of the broker, as an auditor's scanner sees it: TLS 1.2+ with modern suites only.

The DC and the broker run the configuration the operator writes (the DC's
entrypoint sets Samba's `tls priority`; the broker's rabbitmq.conf and its
nodes' distribution options come from es4ps_operator.builders.broker). sslyze
scans each port: no protocol below TLS 1.2, no suite other than ECDHE with an
AEAD cipher, no compression, no insecure renegotiation. A client that speaks
only TLS 1.1 is refused, and the same client is shown to complete a handshake
with a server that still allows TLS 1.1, so the refusal is the server's; the
same scan of a weak server names each of its findings.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.tls_scan import Port, judge, modern_suite, scan, tls11_client_handshake

pytestmark = pytest.mark.services


def dc_ports(samba_dc) -> list[Port]:
    """The DC's TLS ports: LDAPS and the global catalog's, and StartTLS on both plain ports."""
    name = f"{samba_dc.hostname}.{samba_dc.dns_domain}"
    return [
        Port("dc ldaps", samba_dc.address, 636, name),
        Port("dc global catalog ssl", samba_dc.address, 3269, name),
        Port("dc ldap starttls", samba_dc.address, 389, name, starttls="ldap"),
        Port("dc global catalog starttls", samba_dc.address, 3268, name, starttls="ldap"),
    ]


def broker_port(broker: RabbitMQ) -> Port:
    """AMQPS, scanned with the worker's client certificate (the broker asks every client for one)."""
    worker = broker.client_certs["worker"]
    return Port(
        "broker amqps", broker.host, broker.port, "localhost", client_cert=worker.cert_file, client_key=worker.key_file
    )


@pytest.fixture(scope="module")
def clustered_broker(tmp_path_factory, test_ca) -> Iterator[RabbitMQ]:
    """A broker node whose Erlang distribution speaks TLS, as a clustered broker's nodes do with each other."""
    broker = RabbitMQ(tmp_path_factory.mktemp("rabbitmq-dist-tls"), test_ca, queue_type="quorum", inter_node_tls=True)
    broker.start()
    broker.ctl("status")  # its own CLI still reaches it over the distribution's TLS
    yield broker
    broker.stop()


def test_every_tls_port_of_a_dc_and_the_broker_has_no_finding(samba_dc, rabbitmq, clustered_broker):
    node = clustered_broker.server_cert
    distribution = Port(
        "broker inter-node (Erlang distribution)",
        clustered_broker.host,
        clustered_broker.dist_port,
        "localhost",
        client_cert=node.cert_file,
        client_key=node.key_file,
    )
    findings = scan([*dc_ports(samba_dc), broker_port(rabbitmq), distribution])
    assert len(findings) == 6
    assert findings == {label: [] for label in findings}


def test_a_tls11_client_is_refused_by_ldaps_and_the_broker(samba_dc, rabbitmq):
    outcomes = {port.label: tls11_client_handshake(port) for port in [*dc_ports(samba_dc), broker_port(rabbitmq)]}
    through = {label: outcome for label, outcome in outcomes.items() if not outcome.startswith("refused")}
    assert not through, f"a TLS 1.1 client got through: {through}"


@pytest.fixture
def tls11_server(test_ca) -> Iterator[Port]:
    """A server that still allows TLS 1.1 (the system OpenSSL at security level 0), on a free loopback port."""
    cert = test_ca.issue("tls11-server", "localhost", server_names=("localhost", "127.0.0.1"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert.cert_file, cert.key_file)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Port("a server allowing TLS 1.1", "127.0.0.1", listener.getsockname()[1])
    listener.close()
    thread.join(timeout=5)


def test_the_tls11_client_does_complete_a_handshake_where_tls11_is_allowed(tls11_server):
    assert tls11_client_handshake(tls11_server) == "TLSv1.1"


@pytest.fixture
def weak_server(test_ca) -> Iterator[Port]:
    """A server as audits find them: TLS 1.0 up, every suite the system OpenSSL has (CBC with SHA-1, NULL,
    anonymous); it serves each of the scanner's connections."""
    cert = test_ca.issue("weak-server", "localhost", server_names=("localhost", "127.0.0.1"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:eNULL:@SECLEVEL=0")
    context.load_cert_chain(cert.cert_file, cert.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        connection.settimeout(10)
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                while tls.recv(4096):
                    pass
        except (ssl.SSLError, OSError):
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield Port("a weak server", "127.0.0.1", listener.getsockname()[1], "localhost")
    stop.set()
    acceptor.join(timeout=5)
    listener.close()


def test_the_scan_finds_what_an_audit_refuses_on_a_weak_server(weak_server):
    """The same scan and judgement as above, on a server that has each finding this OpenSSL can still make."""
    findings = {finding.split(" ", 1)[0]: finding for finding in scan([weak_server])[weak_server.label]}
    assert {"tls_1_0", "tls_1_1", "tls_1_2:"} <= findings.keys(), findings
    for suite in ("ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE_ECDSA_WITH_NULL_SHA", "ECDH_anon_WITH_AES_128_CBC_SHA"):
        assert f"TLS_{suite}" in findings["tls_1_2:"], findings["tls_1_2:"]


def test_the_judgement_names_rc4_3des_compression_and_insecure_renegotiation():
    """What this machine's OpenSSL no longer serves (RC4, 3DES, compression, renegotiation without RFC 5746 or
    started by the client), judged from results shaped as sslyze gives them."""

    def suites(*names: str) -> SimpleNamespace:
        accepted = [SimpleNamespace(cipher_suite=SimpleNamespace(name=n, is_anonymous=False)) for n in names]
        return SimpleNamespace(accepted_cipher_suites=accepted)

    outcomes = {f"{protocol}_cipher_suites": suites() for protocol in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")}
    outcomes |= {
        "tls_1_2_cipher_suites": suites("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        "tls_1_3_cipher_suites": suites("TLS_AES_128_GCM_SHA256"),
        "tls_compression": SimpleNamespace(supports_compression=True),
        "session_renegotiation": SimpleNamespace(
            supports_secure_renegotiation=False,
            is_vulnerable_to_client_renegotiation_dos=True,
            client_renegotiations_success_count=3,
        ),
    }
    assert judge(outcomes) == [
        "tls_1_2: suites that are not ECDHE/DHE with AEAD"
        " (TLS_ECDHE_RSA_WITH_RC4_128_SHA, TLS_RSA_WITH_3DES_EDE_CBC_SHA)",
        "TLS compression supported",
        "no secure renegotiation (RFC 5746)",
        "client-initiated renegotiation accepted (3x)",
    ]


@pytest.mark.parametrize(
    ("name", "modern"),
    [
        ("TLS_AES_128_GCM_SHA256", True),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", True),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", True),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", False),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", False),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", False),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", False),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", False),
        ("TLS_ECDHE_ECDSA_WITH_NULL_SHA", False),
        ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", False),
    ],
)
def test_the_scan_judges_cipher_suites_by_their_iana_names(name, modern):
    assert modern_suite(name) is modern
