"""The local cluster knows Kubernetes, not ES4PS: no import of the product, no name of its images, charts or domains.

The names are read from the product itself (its packages and commands, the
images es4ps_devtools builds, the charts, the example domains, the CRD's group
and kinds), so a new image, chart or example is checked without a change here.
The project's own name (the cache folder, the package's prefix) is the
project's, not the product's, and stays allowed, like RFC 2606's example names.
"""

from __future__ import annotations

import ast
import re
import tomllib

import yaml
from es4ps_devtools.images import IMAGES
from es4ps_localcluster.paths import ROOT

PACKAGE = ROOT / "localcluster" / "es4ps_localcluster"
PROJECT = "es4ps"
# RFC 2606's names for documentation, which an example domain may use as they are: nobody's product.
RESERVED = {"example", "example.com", "example.org", "example.net"}


def product_packages() -> set[str]:
    """Top-level Python packages of the repository other than the local cluster's."""
    found = {path.parent.name for path in ROOT.glob("*/es4ps_*/__init__.py")}
    found |= {path.parent.name for path in ROOT.glob("images/*/es4ps_*/__init__.py")}
    return found - {PACKAGE.name}


def product_names() -> set[str]:
    """What names a product part: commands, images and Dockerfiles, charts, domains and hosts, the API."""
    names: set[str] = set()
    for pyproject in [*ROOT.glob("*/pyproject.toml"), *ROOT.glob("images/*/pyproject.toml")]:
        if pyproject.parent.name != "localcluster":
            names |= set(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    for image in IMAGES.values():
        names |= {image.repository, str(image.dockerfile.relative_to(ROOT))}
    names.add("charts/")
    for chart in ROOT.glob("charts/*/Chart.yaml"):
        names.add(yaml.safe_load(chart.read_text())["name"])
    for example in ROOT.glob("examples/*.yaml"):
        for document in yaml.safe_load_all(example.read_text()):
            if not document or document.get("kind") != "ES4PSDomain":
                continue
            spec = document["spec"]
            names |= {document["metadata"]["name"], document["metadata"].get("namespace", ""), spec["realm"]}
            names |= {spec["portal"]["host"], *spec["allowedEmailDomains"], "examples/"}
    for crd in ROOT.glob("crds/*.yaml"):
        definition = yaml.safe_load(crd.read_text())
        names |= {definition["spec"]["group"], definition["spec"]["names"]["kind"]}
    return names - {PROJECT, ""} - RESERVED


def _pattern(name: str) -> re.Pattern:
    # a whole name: not part of a longer word, path or dotted name
    return re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)", re.IGNORECASE)


def test_the_local_cluster_imports_nothing_of_the_product():
    packages = product_packages()
    assert {"es4ps_operator", "es4ps_portal", "es4ps_devtools", "es4ps_testkit"} <= packages
    imports = []
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            imports += [f"{source.relative_to(ROOT)}: {m}" for m in modules if m.split(".")[0] in packages]
    assert imports == []


def test_the_local_cluster_names_no_product_image_chart_or_domain():
    names = product_names()
    assert {"es4ps/operator", "es4ps-crds", "acme", "AD.ACME.EXAMPLE", "es4ps.io", "es4ps-portal"} <= names
    found = []
    for source in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.yaml")]:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            found += [f"{source.relative_to(ROOT)}:{number}: {n}" for n in names if _pattern(n).search(line)]
    assert found == []
