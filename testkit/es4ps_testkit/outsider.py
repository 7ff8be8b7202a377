"""A client outside the cluster: a network namespace on this machine with an address of its own.

Neither the node nor a Pod: it reaches this machine's addresses (the real
node's, where host-network DCs listen) through a veth pair, from an address
in 198.18.0.0/15 (RFC 2544's range for tests), as a computer of the
organisation's network would. `python` runs a script there with the
project's interpreter and returns what it prints as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from . import ServiceError


class Outsider:
    """`ip netns` namespace + veth pair; start() makes them (after removing leftovers), stop() removes them."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.namespace = f"es4ps-outsider-{tag}"
        self.host_link, self.inner_link = f"eso{tag}h", f"eso{tag}i"
        third = tag % 250
        self.host_address, self.address = f"198.18.{third}.1", f"198.18.{third}.2"

    def _ip(self, *args: str, check: bool = True) -> None:
        result = subprocess.run(["ip", *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise ServiceError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def start(self) -> None:
        self.stop()
        self._ip("netns", "add", self.namespace)
        self._ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        self._ip("link", "set", self.inner_link, "netns", self.namespace)
        self._ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        self._ip("link", "set", self.host_link, "up")
        inside = ("-n", self.namespace)
        self._ip(*inside, "addr", "add", f"{self.address}/30", "dev", self.inner_link)
        self._ip(*inside, "link", "set", self.inner_link, "up")
        self._ip(*inside, "link", "set", "lo", "up")
        self._ip(*inside, "route", "add", "default", "via", self.host_address)

    def python(self, script: str, argument: object, timeout_s: float = 60) -> object:
        """Run `script` (argv[1] is `argument` as JSON) in the namespace; the JSON of its last line."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", script, json.dumps(argument)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            raise ServiceError(f"the outsider's script failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return json.loads(lines[-1])

    def stop(self) -> None:
        self._ip("link", "del", self.host_link, check=False)  # takes its peer with it
        self._ip("netns", "del", self.namespace, check=False)
