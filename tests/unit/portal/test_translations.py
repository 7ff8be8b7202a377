"""Every text of the portal and the contract is translated in every language shipped, and each page's words are.

The texts are extracted again from the sources (hack/update-translations.sh,
on a copy), so a text added without its translations fails here: no entry may
be untranslated (empty) or fuzzy (a guess msgmerge made from a changed text).
"""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest
from es4ps_localcluster.paths import ROOT

CATALOGUES = ("images/django/es4ps_portal", "contract/es4ps_contract")
LANGUAGES = ("pt_BR", "es")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """A copy of both packages with their catalogues brought up to date with the sources."""
    root = tmp_path_factory.mktemp("translations")
    for package in CATALOGUES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    subprocess.run([str(ROOT / "hack" / "update-translations.sh"), str(root)], check=True, capture_output=True)
    return root


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("package", CATALOGUES)
def test_every_text_has_a_translation(extracted, package, language):
    catalogue = extracted / package / "locale" / language / "LC_MESSAGES" / "django.po"
    for attribute in ("--untranslated", "--only-fuzzy"):
        found = subprocess.run(["msgattrib", attribute, str(catalogue)], check=True, capture_output=True, text=True)
        assert found.stdout == "", f"{package}: {language} has entries {attribute.removeprefix('--')}:\n{found.stdout}"
    # msgfmt's own checks: placeholders kept, plural forms right.
    subprocess.run(["msgfmt", "--check", "--output-file", "/dev/null", str(catalogue)], check=True)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogues_are_those_of_the_sources(language):
    """`make setup` compiled what the repository holds (the tests read these .mo files)."""
    for package in CATALOGUES:
        messages = ROOT / package / "locale" / language / "LC_MESSAGES"
        with (messages / "django.mo").open("rb") as compiled:
            catalog = gettext.GNUTranslations(compiled)
        assert catalog.info()["language"] == language
        assert (messages / "django.mo").stat().st_mtime >= (messages / "django.po").stat().st_mtime, (
            "run hack/compile-translations.sh (make setup)"
        )
