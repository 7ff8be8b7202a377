"""DNS for the tests: dnsmasq as a name server of the test's making, and questions asked as a client would.

`NameServer` runs dnsmasq on a loopback address of its own (port 53): either
a stand-in that answers a few records and nothing else (a cluster's DNS, an
organisation's upstream), or a command line given whole (the DC Pod's
resolver as the operator writes it). `ask` puts one question to a server
with dnspython and returns the answer's code and addresses.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from es4ps_localcluster.processes import start_process, stop_process_group, wait_until

from . import ServiceError
from .samba import claim_loopback_address

DNSMASQ = "/usr/sbin/dnsmasq"


def ask(server: str, name: str, kind: str = "A", timeout_s: float = 3) -> tuple[str, list[str]]:
    """(response code, the answer's records as text) of one recursive question to `server` on port 53."""
    import dns.message
    import dns.query
    import dns.rcode

    query = dns.message.make_query(name, kind)
    response = dns.query.udp(query, server, timeout=timeout_s)
    records = [item.to_text() for rrset in response.answer for item in rrset]
    return dns.rcode.to_text(response.rcode()), records


class NameServer:
    """dnsmasq on 127.0.0.X:53: `records` ({name: IPv4 address}) and nothing else, or `arguments` whole.

    In `arguments`, "{address}" stands for the address it listens on.
    """

    def __init__(self, directory: Path, records: Mapping[str, str] | None = None, arguments: list[str] | None = None):
        self.directory = directory
        self.records = dict(records or {})
        self.arguments = arguments
        self.address = ""
        self.log = directory / "dnsmasq.log"
        self._lock: int | None = None
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.arguments is not None:
            return [argument.replace("{address}", self.address) for argument in self.arguments]
        command = [
            DNSMASQ,
            "--keep-in-foreground",
            "--log-facility=-",
            "--log-queries",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            f"--listen-address={self.address}",
            "--bind-interfaces",
            "--port=53",
            "--pid-file=",
        ]
        return command + [f"--host-record={name},{address}" for name, address in self.records.items()]

    def start(self, timeout_s: float = 15) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address, self._lock = claim_loopback_address()
        self._process = start_process(self.command(), self.log, dict(os.environ))
        wait_until(self._answers, timeout_s, f"dnsmasq on {self.address}", self.log, self._process, error=ServiceError)

    def _answers(self) -> bool:
        try:
            ask(self.address, "es4ps-probe.invalid", timeout_s=0.5)
            return True
        except Exception:  # not listening yet
            return False

    def stop(self) -> None:
        stop_process_group(self._process)
        self._process = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
