"""The generated tables of docs/: each rendered again from the environment declaration it names.

    python -m es4ps_devtools docs docs/interfaces.md docs/operator.md   rewrite their generated tables

A table sits between `<!-- generated from <module>:<attribute> -->` and
`<!-- end of generated table -->`; the module is imported by name (the
portal's, the worker's, the operator's declarations), which is why this lives
here and not in the contract that declares `Variable`.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from es4ps_contract.environment import Variable, render_table

# In a document, a generated table sits between these two comments; the first names the declaration.
_GENERATED = re.compile(
    r"(<!-- generated from (?P<source>[\w.]+:\w+) -->\n)(?P<table>.*?)(\n<!-- end of generated table -->)", re.S
)


def _declaration(source: str) -> tuple[Variable, ...]:
    module, _, attribute = source.partition(":")
    return tuple(getattr(importlib.import_module(module), attribute))


def render_document(text: str) -> str:
    """`text` with every generated table rendered again from the declaration it names."""
    return _GENERATED.sub(
        lambda match: match.group(1) + render_table(_declaration(match.group("source"))) + match.group(4), text
    )


def generated_sources(text: str) -> list[str]:
    """The declarations a document's generated tables name (module:attribute)."""
    return [match.group("source") for match in _GENERATED.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m es4ps_devtools docs <markdown file>...", file=sys.stderr)
        return 2
    for path in map(Path, paths):
        path.write_text(render_document(path.read_text()))
    return 0
