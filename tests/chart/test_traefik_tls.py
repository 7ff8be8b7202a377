"""The chart's TLSOption on a real Traefik as a scanner sees it: no finding, where Traefik's default has some.

Traefik (the binary `make setup` builds, the local cluster's ingress
controller) serves one TLS entry point on a loopback port with a test
certificate. Its file provider gets the TLSOption's spec, as the chart
renders it, as the default TLS option (the same fields the kubernetesCRD
provider reads from the object; tests/e2e/test_edges_on_kubernetes.py scans
the portal behind the CRD itself on the real node). sslyze scans it; then the
same Traefik without the option, which offers CBC suites with SHA-1 under
TLS 1.2: what the portal's ingress had before the chart shipped the option.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from es4ps_localcluster.paths import BIN, ROOT
from es4ps_localcluster.processes import free_port, start_process, stop_process_group, wait_until
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.tls_scan import Port, scan

HOST = "portal.es4ps.test"


def chart_tls_option() -> dict:
    """The spec of the TLSOption the chart renders with `traefikTLSOption.enabled=true`."""
    rendered = subprocess.run(
        [str(BIN / "helm"), "template", "es4ps", str(ROOT / "charts" / "es4ps"),
         "--set", "traefikTLSOption.enabled=true", "--show-only", "templates/traefik-tlsoption.yaml"],
        capture_output=True, text=True, check=True, env={"HELM_CACHE_HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return yaml.safe_load(rendered.stdout)["spec"]


def serves(port: int, ca: ThrowawayCA) -> bool:
    """True when a TLS client that trusts only `ca` completes a handshake for HOST on `port`."""
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=2), server_hostname=HOST):
            return True
    except (OSError, ssl.SSLError):
        return False


@contextmanager
def traefik(directory: Path, ca: ThrowawayCA, default_option: dict | None) -> Iterator[Port]:
    """Traefik with one TLS entry point on 127.0.0.1 and `default_option` as its default TLS option (if any)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue("traefik", HOST, server_names=(HOST,))
    tls: dict = {"certificates": [{"certFile": str(cert.cert_file), "keyFile": str(cert.key_file)}]}
    tls["stores"] = {"default": {"defaultCertificate": tls["certificates"][0]}}
    if default_option is not None:
        tls["options"] = {"default": default_option}
    dynamic = directory / "dynamic.yaml"
    dynamic.write_text(yaml.safe_dump({"tls": tls}))
    port = free_port()
    log = directory / "traefik.log"
    process = start_process(
        [
            str(BIN / "traefik"),
            f"--entryPoints.websecure.address=127.0.0.1:{port}",
            "--entryPoints.websecure.http.tls=true",
            f"--providers.file.filename={dynamic}",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=INFO",
        ],
        log,
    )
    try:
        # Until the file provider's configuration is in, Traefik serves a certificate of its own making.
        wait_until(lambda: serves(port, ca), 60, "Traefik serving the test's certificate", log, process)
        yield Port("portal behind Traefik", "127.0.0.1", port, HOST)
    finally:
        stop_process_group(process)


def test_traefik_with_the_charts_tls_option_has_no_finding(tmp_path, test_ca):
    with traefik(tmp_path / "with-option", test_ca, chart_tls_option()) as port:
        assert scan([port]) == {port.label: []}


def test_traefik_without_it_offers_cbc_suites_with_sha1(tmp_path, test_ca):
    with traefik(tmp_path / "default", test_ca, None) as port:
        (findings,) = scan([port]).values()
    assert any("tls_1_2:" in finding and "_CBC_SHA" in finding for finding in findings), findings
