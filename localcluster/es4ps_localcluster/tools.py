"""The Go-built tools, built when first needed: `ensure("seaweedfs")` before a test starts its S3 server.

`make setup` builds what the cluster and the demo run; a tool only some tests
use is built by the first test that needs it (hack/build-tools.sh: cached
under the shared cache directory, so that happens once per machine).
"""

from __future__ import annotations

import subprocess

from .paths import BIN, ROOT

BUILD = ROOT / "hack" / "build-tools.sh"


class ToolError(RuntimeError):
    """A tool could not be built; the message carries the end of the build's output."""


def ensure(tool: str, binary: str | None = None) -> str:
    """The path of `binary` (default: named like the tool) in .local/bin, built from localcluster/tools/<tool> first."""
    path = BIN / (binary or tool)
    proc = subprocess.run([str(BUILD), tool], capture_output=True, text=True)
    if proc.returncode != 0 or not path.exists():
        raise ToolError(f"building {tool} failed: {(proc.stderr or proc.stdout)[-3000:]}")
    return str(path)
