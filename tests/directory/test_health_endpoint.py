"""The DC's health endpoint answers the monitoring certificate only, and passes the worker's metrics on.

A DC on the host network serves on its node's address: whoever reaches the
node reaches the endpoint. These tests ask as such a stranger would (no
certificate, plain HTTP, a certificate of another CA, another certificate of
the domain's CA) and as Prometheus and the operator do (the monitoring
certificate), against a DC started by the real entrypoint; and they read the
worker's metrics through the endpoint from a worker listening on loopback.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from es4ps_localcluster.processes import free_port
from es4ps_operator.health import monitoring_client_context, read_reports
from es4ps_samba.dc.config import DCConfig
from es4ps_samba.dc.endpoint import HealthEndpoint
from es4ps_samba.dc.tls import install_tls_files
from es4ps_testkit.ca import CertFiles, ThrowawayCA
from es4ps_testkit.tls_scan import Port, scan

pytestmark = pytest.mark.services

HEALTH_PORT = 9931


def get(host: str, port: int, path: str, ca: Path | None, client: CertFiles | None = None) -> tuple[int, bytes]:
    """GET over HTTPS (plain HTTP when `ca` is None) with `client`'s certificate: (status, body)."""
    if ca is None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
    else:
        context = ssl.create_default_context(cafile=str(ca))
        context.check_hostname = False  # the DC's certificate names the DC, these tests dial its address
        if client is not None:
            context.load_cert_chain(client.cert_file, client.key_file)
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def monitoring(test_ca: ThrowawayCA) -> CertFiles:
    """The monitoring client certificate, as the Secret <domain>-monitoring-tls holds it."""
    return test_ca.issue("monitoring", "monitoring", client=True)


def test_the_monitoring_certificate_reads_replication_and_metrics(samba_dc, test_ca, monitoring):
    status, body = get(samba_dc.address, HEALTH_PORT, "/replication", test_ca.ca_file, monitoring)
    assert status == 200 and {"healthy", "checkedAt", "failing"} <= json.loads(body).keys()
    status, body = get(samba_dc.address, HEALTH_PORT, "/metrics", test_ca.ca_file, monitoring)
    assert status == 200 and b"es4ps_dc_replication_links" in body


def test_the_operator_reads_replication_with_the_monitoring_secret_and_not_without(samba_dc, test_ca, monitoring):
    """As the operator does for ReplicationHealthy: the Secret's three files, the DC's certificate checked."""
    secret = {name: (monitoring.directory / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")}
    url = f"https://{samba_dc.address}:{HEALTH_PORT}/replication"
    reports = asyncio.run(read_reports({"dc1": url}, monitoring_client_context(secret)))
    assert reports["dc1"] is not None and "healthy" in reports["dc1"]
    without = ssl.create_default_context(cafile=str(test_ca.ca_file))
    assert asyncio.run(read_reports({"dc1": url}, without)) == {"dc1": None}


def test_a_stranger_reads_nothing(samba_dc, test_ca, tmp_path):
    """Plain HTTP, TLS without a certificate, another CA's certificate: no answer; the domain's worker: 403."""
    stranger = ThrowawayCA(tmp_path / "stranger", name="Someone else's CA").issue("m", "monitoring", client=True)
    attempts = {
        "plain HTTP": lambda: get(samba_dc.address, HEALTH_PORT, "/replication", None),
        "TLS without a certificate": lambda: get(samba_dc.address, HEALTH_PORT, "/replication", test_ca.ca_file),
        "another CA's monitoring certificate": lambda: get(
            samba_dc.address, HEALTH_PORT, "/replication", test_ca.ca_file, stranger
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            status, body = attempt()
            pytest.fail(f"{what}: {status} {body[:200]!r}")
    worker = test_ca.issue("broker-worker", "worker", client=True)
    assert get(samba_dc.address, HEALTH_PORT, "/replication", test_ca.ca_file, worker)[0] == 403


def test_the_endpoint_passes_its_tls_scan(samba_dc, monitoring):
    port = Port(
        "dc health",
        samba_dc.address,
        HEALTH_PORT,
        f"{samba_dc.hostname}.{samba_dc.dns_domain}",
        client_cert=monitoring.cert_file,
        client_key=monitoring.key_file,
    )
    assert scan([port]) == {"dc health": []}


@pytest.fixture
def worker_metrics() -> Iterator[str]:
    """A worker's metrics endpoint on loopback (what es4ps-worker serves), counting its scrapes."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'es4ps_worker_tasks_total{operation="create_user",outcome="succeeded"} 3.0\n'
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_the_workers_metrics_come_through_the_endpoint_and_502_while_it_is_down(
    samba_dc, test_ca, monitoring, worker_metrics, tmp_path
):
    config = DCConfig.from_env(samba_dc.dc_env | {"ES4PS_DATA_DIR": str(tmp_path)})
    config = replace(config, health_port=free_port(), worker_metrics_url=worker_metrics)
    install_tls_files(config)
    endpoint = HealthEndpoint(config, replication=lambda: b"{}", metrics=lambda: b"")
    endpoint.start()
    try:
        status, body = get(samba_dc.address, config.health_port, "/worker-metrics", test_ca.ca_file, monitoring)
        assert status == 200 and b"es4ps_worker_tasks_total" in body
        endpoint.config = replace(config, worker_metrics_url=f"http://127.0.0.1:{free_port()}/metrics")
        assert get(samba_dc.address, config.health_port, "/worker-metrics", test_ca.ca_file, monitoring)[0] == 502
    finally:
        endpoint.stop()
