"""Reading a Prometheus endpoint as Prometheus would: prometheus-client's own parser of the text format.

before = scrape(url)
...
after = scrape(url)
assert after.value("es4ps_worker_tasks_total", operation="create_user") - before.value(...) == 1
"""

from __future__ import annotations

import http.client
import socket
import ssl
from urllib.parse import urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families

from .ca import CertFiles


class Scrape:
    """The samples of one scrape: (name, labels) -> value."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and labels.items() <= sample_labels.items()
        )

    def names(self) -> set[str]:
        return {name for name, _labels, _value in self.samples}


def scrape(url: str, client: CertFiles | None = None, server_name: str = "") -> Scrape:
    """GET a metrics endpoint; raises for anything but 200.

    With `client`, over HTTPS as Prometheus reads the DCs' health endpoints (a PodMonitor's tlsConfig): that
    certificate shown, its CA trusted, the server's certificate checked for `server_name` at the URL's address.
    """
    if client is None:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        return Scrape(response.text)
    where = urlsplit(url)
    context = ssl.create_default_context(cafile=str(client.ca_file))
    context.load_cert_chain(client.cert_file, client.key_file)
    with context.wrap_socket(
        socket.create_connection((where.hostname, where.port), timeout=10), server_hostname=server_name
    ) as tls:
        connection = http.client.HTTPConnection(server_name)
        connection.sock = tls
        connection.request("GET", where.path)
        response = connection.getresponse()
        body = response.read().decode()
    if response.status != 200:
        raise AssertionError(f"{url}: {response.status} {body[:200]}")
    return Scrape(body)
