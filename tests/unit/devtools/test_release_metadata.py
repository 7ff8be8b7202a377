"""One version, one licence: VERSION stamps the charts, the images and their packages; Apache-2.0 is everywhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from es4ps_devtools.images import IMAGES
from es4ps_devtools.paths import CHARTS, ROOT, VERSION

SHIPPED_PACKAGES = ["contract", "operator", "images/django", "images/samba"]


def test_the_licence_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.parametrize("chart", ["es4ps", "es4ps-crds"])
def test_each_chart_carries_the_version_and_the_licence(chart):
    metadata = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
    assert metadata["version"] == metadata["appVersion"] == VERSION
    assert metadata["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    assert (CHARTS / chart / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_image_is_labelled_with_the_licence_and_carries_it(name):
    dockerfile = IMAGES[name].dockerfile.read_text()
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile
    assert "COPY LICENSE /usr/share/licenses/es4ps/LICENSE" in dockerfile
    assert IMAGES[name].build_args["VERSION"] == VERSION and IMAGES[name].tag == VERSION


@pytest.mark.parametrize("package", SHIPPED_PACKAGES)
def test_each_shipped_package_takes_its_version_from_the_version_file(package):
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    version_file = ROOT / package / project["tool"]["setuptools"]["dynamic"]["version"]["file"]
    assert version_file.resolve() == (ROOT / "VERSION").resolve()


def test_the_changelog_has_an_entry_per_release_the_newest_being_this_version():
    releases = re.findall(r"^## (\d+\.\d+\.\d+) ", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == VERSION
    assert "0.1.0" in releases
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))), reverse=True)


def test_the_api_version_policy_is_written_down():
    policy = (ROOT / "docs" / "api-versions.md").read_text()
    for promise in ("v1alpha1", "v1beta1", "conversion", "storage", "storedVersions", "deprecat"):
        assert promise in policy
    assert Path(ROOT / "CHANGELOG.md").read_text().count("docs/api-versions.md") >= 1
