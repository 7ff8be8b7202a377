"""Where things are: the checkout this package is installed from, its `.local/`, the shared build cache.

The package is installed editable from the repository (`make setup`), so the
repository root is two folders above this file: its `.local/` holds the
cluster's state and the tools' links, `localcluster/tools/` the Go modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The Go modules the tools are built from (hack/build-tools.sh).
TOOLS = ROOT / "localcluster" / "tools"
if not TOOLS.is_dir():  # a plain (non-editable) install would land here
    raise ImportError(f"es4ps_localcluster must be installed editable from the checkout; {ROOT} is not one")

LOCAL = ROOT / ".local"
# The Go-built tools (hack/build-tools.sh links them here).
BIN = LOCAL / "bin"
# The venv's own commands (the console scripts of what is installed into it).
VENV_BIN = Path(sys.executable).parent
# Builds shared by every checkout on this machine: Go tools, the base image, dockerd's layers, containerd's images.
CACHE = Path(os.environ.get("ES4PS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es4ps")
