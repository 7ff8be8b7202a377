"""The layout rules of the repository's packages, checked from their source: imports only downwards, small files.

Each package directory (one holding an `es4ps_*` package: operator/,
contract/, images/*/, ...) may hold a `layout.toml` with its rules (its owner
writes them); `make lint` runs `python -m es4ps_testkit.layout check` over
every one found. What is checked:

- the file-level import graph of the package has no cycle, counting every
  import in a file (a deferred one inside a function, or one under
  TYPE_CHECKING, is a dependency all the same);
- `layers` (top first): a module imports only modules of its own layer or
  below; a module in no layer is an error once a package declares layers;
- `forbidden`: pairs of module patterns that must not import each other in
  that direction (`from` never imports `to`, but for `allow`);
- packages of product code (`product = true`: shipped in an image): no file
  over `max_file_lines` lines and no function over `max_function_lines`
  lines, but for the data tables named in `tables`;
- `exceptions`: findings known and owned, as the check prints them (fnmatch
  wildcards allowed), so the owner removes the line with the fix; an
  exception that no longer matches anything is an error too (the list only
  shrinks).

Patterns name modules relative to the package, with fnmatch wildcards:
`handlers`, `builders.*`, `accounts.models`.

    python -m es4ps_testkit.layout check             every package's rules
    python -m es4ps_testkit.layout graph operator    a package's import graph (edges, one a line)
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = "layout.toml"
# The limits of product code (issue 24); a package's layout.toml may only lower them.
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


@dataclasses.dataclass(frozen=True)
class Module:
    """One Python file of a package: its dotted name and its path."""

    name: str
    path: Path
    is_package: bool


@dataclasses.dataclass(frozen=True)
class Rules:
    """A package's layout.toml."""

    product: bool = False
    layers: tuple[tuple[str, ...], ...] = ()
    forbidden: tuple[dict, ...] = ()
    tables: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    max_file_lines: int = MAX_FILE_LINES
    max_function_lines: int = MAX_FUNCTION_LINES

    @classmethod
    def read(cls, directory: Path) -> Rules:
        path = directory / RULES_FILE
        if not path.exists():
            return cls()
        data = tomllib.loads(path.read_text())
        return cls(
            product=data.get("product", False),
            layers=tuple(tuple(layer) for layer in data.get("layers", ())),
            forbidden=tuple(data.get("forbidden", ())),
            tables=tuple(data.get("tables", ())),
            exceptions=tuple(data.get("exceptions", ())),
            max_file_lines=min(data.get("max_file_lines", MAX_FILE_LINES), MAX_FILE_LINES),
            max_function_lines=min(data.get("max_function_lines", MAX_FUNCTION_LINES), MAX_FUNCTION_LINES),
        )


def modules(directory: Path) -> dict[str, Module]:
    """Every module of the top-level packages under `directory` (es4ps_*), by dotted name."""
    found = {}
    for top in sorted(directory.glob("es4ps_*/__init__.py")):
        for path in sorted(top.parent.rglob("*.py")):
            parts = path.relative_to(directory).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found[name] = Module(name, path, is_package)
    return found


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name an `from X import ...` statement imports from."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: Module, known: dict[str, Module]) -> set[str]:
    """The modules of the same packages that `module` imports, anywhere in its file."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, node)
            # `from pkg import sub` imports the module pkg.sub; `from pkg import name` the package itself.
            names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin for alias in node.names]
        else:
            continue
        for name in names:
            # `import a.b.c` of a name that is no module: its longest known prefix.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module.name:
                targets.add(name)
    return targets


def graph(directory: Path) -> dict[str, set[str]]:
    """Importer -> imported modules, within the packages of `directory`."""
    known = modules(directory)
    return {name: imports(module, known) for name, module in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: one per strongly connected group of modules (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _relative(name: str) -> str:
    return name.partition(".")[2] or "__init__"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    relative = _relative(name)
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def _layer(name: str, rules: Rules) -> int | None:
    return next((i for i, layer in enumerate(rules.layers) if _matches(name, layer)), None)


def import_findings(edges: dict[str, set[str]], rules: Rules) -> Iterator[str]:
    """Cycles, layer violations and forbidden imports, one line each."""
    for group in cycles(edges):
        yield f"import cycle: {' <-> '.join(group)}"
    for importer, targets in sorted(edges.items()):
        if rules.layers and _layer(importer, rules) is None:
            yield f"{importer}: in no layer of {RULES_FILE}"
        for target in sorted(targets):
            low, high = _layer(importer, rules), _layer(target, rules)
            if low is not None and high is not None and high < low:
                yield f"{importer} imports {target}: a higher layer"
            for rule in rules.forbidden:
                if (
                    _matches(importer, rule["from"])
                    and _matches(target, rule["to"])
                    and not _matches(target, rule.get("allow", ()))
                ):
                    yield f"{importer} imports {target}: {rule.get('why', 'forbidden')}"


def size_findings(directory: Path, rules: Rules, root: Path = ROOT) -> Iterator[str]:
    """Files over max_file_lines and functions over max_function_lines (data tables excepted)."""
    for module in modules(directory).values():
        relative = module.path.relative_to(root)
        text = module.path.read_text()
        lines = text.count("\n")
        if lines > rules.max_file_lines:
            yield f"{relative}: {lines} lines (at most {rules.max_file_lines})"
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1
            if length > rules.max_function_lines and f"{_relative(module.name)}.{node.name}" not in rules.tables:
                yield f"{relative}: {node.name} has {length} lines (at most {rules.max_function_lines})"


def packages(root: Path = ROOT) -> list[str]:
    """The package directories under `root` (relative), each holding an es4ps_* package."""
    found = {init.parent.parent for init in root.glob("*/es4ps_*/__init__.py")}
    found |= {init.parent.parent for init in root.glob("images/*/es4ps_*/__init__.py")}
    return sorted(str(directory.relative_to(root)) for directory in found)


def check_package(package: str, root: Path = ROOT) -> list[str]:
    """Every finding of one package that its exceptions do not list, and every stale exception."""
    directory = root / package
    rules = Rules.read(directory)
    findings = list(import_findings(graph(directory), rules))
    if rules.product:
        findings += list(size_findings(directory, rules, root))

    def excepted(finding: str) -> bool:
        return any(fnmatch.fnmatchcase(finding, exception) for exception in rules.exceptions)

    problems = [f"{package}: {finding}" for finding in findings if not excepted(finding)]
    stale = [line for line in rules.exceptions if not any(fnmatch.fnmatchcase(f, line) for f in findings)]
    problems += [f"{package}/{RULES_FILE}: exception no longer found (remove it): {line}" for line in stale]
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["graph"] and len(argv) == 2:
        for importer, targets in sorted(graph(ROOT / argv[1]).items()):
            for target in sorted(targets):
                print(f"{importer} -> {target}")
        return 0
    if argv == ["check"]:
        problems = [problem for package in packages() for problem in check_package(package)]
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__.rsplit("\n\n", 1)[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
