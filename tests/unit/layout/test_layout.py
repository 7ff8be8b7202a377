"""The layout check (`make lint`): cycles, even deferred ones, imports against the layers, sizes, owned exceptions."""

from __future__ import annotations

import textwrap
from pathlib import Path

from es4ps_testkit import layout


def package(root: Path, files: dict[str, str], rules: str = "") -> str:
    """A package directory `pkg` under `root` holding es4ps_demo with `files`; its name for check_package."""
    for name, text in {"__init__.py": '"""Demo."""\n', **files}.items():
        path = root / "pkg" / "es4ps_demo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "pkg" / "layout.toml").write_text(textwrap.dedent(rules))
    return "pkg"


def check(root: Path, product: bool = True) -> list[str]:
    rules = root / "pkg" / "layout.toml"
    kept = [line for line in rules.read_text().splitlines(keepends=True) if not line.startswith("product = ")]
    rules.write_text(f"product = {str(product).lower()}\n" + "".join(kept))
    return layout.check_package("pkg", root)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    package(
        tmp_path,
        {
            "high.py": "from . import low\n",
            "low.py": "def later():\n    from . import high\n    return high\n",
        },
    )
    assert check(tmp_path) == ["pkg: import cycle: es4ps_demo.high <-> es4ps_demo.low"]


def test_a_type_only_cycle_is_a_cycle_too(tmp_path):
    package(
        tmp_path,
        {
            "sub/__init__.py": "X = 1\nif TYPE_CHECKING:\n    from ..top import Top\n",
            "top.py": "from .sub import X\n",
        },
    )
    assert check(tmp_path) == ["pkg: import cycle: es4ps_demo.sub <-> es4ps_demo.top"]


def test_an_import_upwards_is_refused_and_downwards_allowed(tmp_path):
    rules = 'layers = [["handlers"], ["reconcile"], ["builders.*"], ["__init__"]]\n'
    package(
        tmp_path,
        {
            "handlers.py": "from . import reconcile\n",
            "reconcile.py": "from .builders import portal\n",
            "builders/__init__.py": "",
            "builders/portal.py": "from ..handlers import run\n",
            "extra.py": "",
        },
        rules,
    )
    assert check(tmp_path) == [
        "pkg: import cycle: es4ps_demo.builders.portal <-> es4ps_demo.handlers <-> es4ps_demo.reconcile",
        "pkg: es4ps_demo.builders: in no layer of layout.toml",
        "pkg: es4ps_demo.builders.portal imports es4ps_demo.handlers: a higher layer",
        "pkg: es4ps_demo.extra: in no layer of layout.toml",
    ]


def test_a_forbidden_direction_allows_what_it_names(tmp_path):
    rules = """
        [[forbidden]]
        from = ["audit.*"]
        to = ["accounts.*"]
        allow = ["accounts.models"]
        why = "audit knows only the user model"
    """
    package(
        tmp_path,
        {
            "accounts/__init__.py": "",
            "accounts/models.py": "",
            "accounts/ratelimit.py": "",
            "audit/__init__.py": "",
            "audit/records.py": "from ..accounts.models import User\nfrom ..accounts import ratelimit\n",
        },
        rules,
    )
    assert check(tmp_path) == [
        "pkg: es4ps_demo.audit.records imports es4ps_demo.accounts.ratelimit: audit knows only the user model"
    ]


def test_long_files_and_functions_of_product_code_are_refused_but_named_tables(tmp_path):
    long_function = "def long():\n" + "    x = 1\n" * 85
    table = "def table():\n    return [\n" + "        1,\n" * 85 + "    ]\n"
    package(tmp_path, {"big.py": long_function + table + "\n" * 400}, 'tables = ["big.table"]\n')
    assert check(tmp_path) == [
        "pkg: pkg/es4ps_demo/big.py: 574 lines (at most 450)",
        "pkg: pkg/es4ps_demo/big.py: long has 86 lines (at most 80)",
    ]
    assert check(tmp_path, product=False) == []


def test_an_exception_covers_its_finding_and_a_stale_one_is_an_error(tmp_path):
    rules = """
        exceptions = [
            "import cycle: es4ps_demo.high <-> *",
            "es4ps_demo.gone imports es4ps_demo.high: a higher layer",
        ]
    """
    package(tmp_path, {"high.py": "from . import low\n", "low.py": "from . import high\n"}, rules)
    assert check(tmp_path) == [
        "pkg/layout.toml: exception no longer found (remove it): "
        "es4ps_demo.gone imports es4ps_demo.high: a higher layer"
    ]


def test_the_repositorys_packages_keep_their_rules():
    packages = layout.packages()
    assert {"operator", "contract", "images/django", "images/samba", "testkit"} <= set(packages)
    assert [problem for name in packages for problem in layout.check_package(name)] == []
