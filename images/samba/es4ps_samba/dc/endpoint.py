"""The DC's health endpoint on the network: who may ask, over what, and the worker's metrics behind it.

A DC on the host network serves on its node's address, which whoever reaches
the node reaches too. So with a certificate (`ES4PS_TLS_CERT_FILE`) the
endpoint speaks HTTPS on the DC's address with the DC's own certificate
(TLS 1.2+ with ECDHE and AEAD suites, as LDAPS) and answers only a client
certificate of the domain's CA whose common name is `ES4PS_HEALTH_CLIENT`
(the operator and Prometheus hold it: the Secret `<domain>-monitoring-tls`).
Anyone else gets no TLS session, or 403. Without a certificate (a DC run by
hand) it serves plain HTTP on 127.0.0.1 only. The kubelet's probes run
`es4ps-samba-dc ready` and `live` inside the container and need none of it.

The worker serves its metrics on 127.0.0.1 only (`ES4PS_WORKER_METRICS_URL`);
this endpoint passes them on, so a DC Pod has one door with one lock:

    GET /replication      this DC's replication report (JSON)
    GET /metrics          its numbers (Prometheus text)
    GET /worker-metrics   the worker's /metrics; 502 while the worker does not answer
"""

from __future__ import annotations

import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from .config import DCConfig

# A client that connects and says nothing holds only its own thread, and not for long.
CLIENT_TIMEOUT_S = 10
# TLS 1.2's suites (TLS 1.3's are all AEAD), as es4ps_samba.dc.smbconf.TLS_PRIORITY allows them to LDAPS.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(config: DCConfig) -> ssl.SSLContext:
    """TLS 1.2+ with modern suites, the DC's certificate, a client certificate of the domain's CA required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = ssl.CERT_REQUIRED
    cert, key, ca = config.installed_tls_files
    context.load_verify_locations(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def common_name(peer_certificate: dict[str, Any] | None) -> str:
    """The subject's common name of a certificate as `SSLSocket.getpeercert()` gives it ("" without one)."""
    for relative_name in (peer_certificate or {}).get("subject", ()):
        for key, value in relative_name:
            if key == "commonName":
                return value
    return ""


class HealthEndpoint:
    """The HTTP(S) server of the health endpoint, in daemon threads of the entrypoint."""

    def __init__(self, config: DCConfig, replication: Callable[[], bytes], metrics: Callable[[], bytes]) -> None:
        """`replication` and `metrics`: the bodies of /replication (JSON) and /metrics, as they are now."""
        self.config = config
        self.replication = replication
        self.metrics = metrics
        self.context = server_context(config) if config.tls_cert_file else None
        self._server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        return self.config.probe_address if self.context else "127.0.0.1"

    def reload_certificate(self) -> None:
        """Serve the certificate installed now (renewed): new sessions get it, open ones keep theirs."""
        if self.context is not None:
            cert, key, _ca = self.config.installed_tls_files
            self.context.load_cert_chain(str(cert), str(key))

    def answer(self, path: str, client: str | None) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path` by the client named `client` (None: plain HTTP)."""
        if client is not None and client != self.config.health_client:
            return 403, "text/plain", b"this endpoint answers the monitoring certificate only\n"
        if path == "/replication":
            return 200, "application/json", self.replication()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics()
        if path == "/worker-metrics" and self.config.worker_metrics_url:
            try:
                with urllib.request.urlopen(self.config.worker_metrics_url, timeout=5) as response:  # noqa: S310
                    return 200, response.headers.get("Content-Type", CONTENT_TYPE_LATEST), response.read()
            except (urllib.error.URLError, OSError) as error:
                return 502, "text/plain", f"the worker's metrics do not answer: {error}\n".encode()
        return 404, "text/plain", b"not found\n"

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            timeout = CLIENT_TIMEOUT_S

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                client = None
                if isinstance(self.connection, ssl.SSLSocket):
                    client = common_name(self.connection.getpeercert())
                status, kind, body = endpoint.answer(self.path, client)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # asked every minute: no log line each time
                pass

        server = ThreadingHTTPServer((self.address, self.config.health_port), Handler)
        if self.context is not None:
            # The handshake happens in each client's own thread, on its first read: a client that never
            # completes one does not hold up the others.
            server.socket = self.context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.handle_error = lambda request, client_address: None  # failed handshakes are the stranger's
        self._server = server
        threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
