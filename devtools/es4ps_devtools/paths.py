"""The product's files in the checkout this package is installed from (editable, by `make setup`)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if not (ROOT / "VERSION").is_file():  # a plain (non-editable) install would land here
    raise ImportError(f"es4ps_devtools must be installed editable from the checkout; {ROOT} is not one")

# The project's one version: image tags, charts, the changelog's newest release.
VERSION = (ROOT / "VERSION").read_text().strip()
CHARTS = ROOT / "charts"
CHART = CHARTS / "es4ps"
CRD_CHART = CHARTS / "es4ps-crds"
EXAMPLE = ROOT / "examples" / "acme.yaml"
