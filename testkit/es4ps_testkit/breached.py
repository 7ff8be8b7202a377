"""A breach corpus for the tests, served the way Have I Been Pwned serves its k-anonymity ranges, and as range files.

`RangeServer` answers GET <url><PREFIX> on 127.0.0.1 with every suffix of that
range (the corpus's, with their counts, and padding entries of count 0 when
asked for `Add-Padding`), and records every path asked, so a test can see
that nothing but a 5-character prefix left the portal. `write_range_files`
lays the same ranges out as files, as the downloaders of the corpus do.
Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = "/range/"
PADDING = 20


def ranges(passwords: Iterable[str], count: int = 42) -> dict[str, dict[str, int]]:
    """prefix -> {suffix: count} of the passwords' SHA-1 (upper-case hex), as the corpus holds them."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for password in passwords:
        digest = hashlib.sha1(password.encode()).hexdigest().upper()  # noqa: S324 - the protocol's hash
        found[digest[:5]][digest[5:]] = count
    return dict(found)


def range_text(entries: dict[str, int], padding: int = 0) -> str:
    lines = [f"{suffix}:{count}" for suffix, count in sorted(entries.items())]
    lines += [f"{index:035X}:0" for index in range(padding)]
    return "\r\n".join(lines)


def write_range_files(directory: Path, passwords: Iterable[str]) -> None:
    """One file per prefix that holds a corpus password (`<PREFIX>.txt`, lines SUFFIX:COUNT)."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, entries in ranges(passwords).items():
        (directory / f"{prefix}.txt").write_text(range_text(entries))


class RangeServer:
    """A range API over `passwords` on a free port of 127.0.0.1 (`url` ends with /range/)."""

    def __init__(self, passwords: Iterable[str]) -> None:
        corpus = ranges(passwords)
        self.asked: list[str] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.asked.append(self.path)
                server.headers.append(dict(self.headers))
                prefix = self.path.removeprefix(PATH).upper()
                if not self.path.startswith(PATH) or len(prefix) != 5:
                    self.send_error(400)
                    return
                padding = PADDING if self.headers.get("Add-Padding", "").lower() == "true" else 0
                body = range_text(corpus.get(prefix, {}), padding).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}{PATH}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="range-server", daemon=True)

    def start(self) -> RangeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and close its port: later lookups meet a refused connection."""
        self._http.shutdown()
        self._http.server_close()
