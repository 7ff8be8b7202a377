"""The development commands from the command line (what `make images`, `make demo` and `make docs` run).

python -m es4ps_devtools images build|list ...   the product's images (see `images -h`)
python -m es4ps_devtools demo up|mail|down       the whole product on the real node (`make demo`)
python -m es4ps_devtools docs FILE...            rewrite the generated tables of these documents
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"images": "images", "demo": "demo", "docs": "docs", "release": "release"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    # each command's module is imported only when asked for (docs needs no cluster, demo no docs)
    return importlib.import_module(f"es4ps_devtools.{COMMANDS[argv[0]]}").main(argv[1:])
