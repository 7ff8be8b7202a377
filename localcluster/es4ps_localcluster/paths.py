"""Where things are: the checkout this package is installed from, its `.local/`, the shared build cache.

The package is installed editable from the repository (`make setup`), so the
repository root is two folders above this file; the images and the demo read
the Dockerfiles, charts and examples from there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if not (ROOT / "VERSION").is_file():  # a plain (non-editable) install would land here
    raise ImportError(f"es4ps_localcluster must be installed editable from the checkout; {ROOT} is not one")

LOCAL = ROOT / ".local"
# The Go-built tools (hack/build-tools.sh links them here).
BIN = LOCAL / "bin"
# The venv's own commands (es4ps-samba-dc, es4ps-worker, es4ps-portal).
VENV_BIN = Path(sys.executable).parent
# Builds shared by every checkout on this machine: Go tools, the base image, dockerd's layers, containerd's images.
CACHE = Path(os.environ.get("ES4PS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es4ps")
VERSION = (ROOT / "VERSION").read_text().strip()
