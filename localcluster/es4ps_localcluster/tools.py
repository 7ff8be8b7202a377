"""The Go-built tools: `ensure("seaweedfs")` before a test starts its S3 server, `Build` to build them meanwhile.

`make setup` builds what the cluster and the demo run; a tool only some tests
use is built by the first test that needs it (hack/build-tools.sh: cached
under the shared cache directory, so that happens once per machine). `Build`
runs the same script in the background, so a caller can do other work (build
container images, say) while the tools compile.
"""

from __future__ import annotations

import subprocess
import tempfile

from .paths import BIN, ROOT

BUILD = ROOT / "hack" / "build-tools.sh"


class ToolError(RuntimeError):
    """A tool could not be built; the message carries the end of the build's output."""


class Build:
    """hack/build-tools.sh for these tools (none: the cluster's and the demo's) running in the background."""

    def __init__(self, *tools: str) -> None:
        self.tools = tools
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - read and closed by wait()
        self._process = subprocess.Popen([str(BUILD), *tools], stdout=self._output, stderr=subprocess.STDOUT)

    def wait(self) -> None:
        """Return once the tools are built and linked into .local/bin; ToolError with the build's output if not."""
        code = self._process.wait()
        self._output.seek(0)
        output = self._output.read().decode(errors="replace")
        self._output.close()
        if code != 0:
            raise ToolError(f"building {' '.join(self.tools) or 'the tools'} failed: {output[-3000:]}")


def ensure(tool: str, binary: str | None = None) -> str:
    """The path of `binary` (default: named like the tool) in .local/bin, built from localcluster/tools/<tool> first."""
    Build(tool).wait()
    path = BIN / (binary or tool)
    if not path.exists():
        raise ToolError(f"building {tool} made no {path.name}")
    return str(path)
