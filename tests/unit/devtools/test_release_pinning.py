"""`make release` pins the released images by digest in the published chart's values, comments kept."""

from __future__ import annotations

import pytest
import yaml
from es4ps_devtools.paths import CHART
from es4ps_devtools.release import Artifact, ReleaseError, pin_values

DIGEST = "sha256:" + "ab" * 32


def artifacts(registry: str = "registry.example:5000/es4ps") -> dict[str, Artifact]:
    return {
        name: Artifact(name, f"{registry}/{name}:0.2.0", DIGEST.replace("ab", f"{i}{i}"), 1000)
        for i, name in enumerate(("operator", "portal", "samba", "rabbitmq"))
    }


def test_the_chart_values_name_the_released_images_by_tag_and_digest():
    text = (CHART / "values.yaml").read_text()
    released = artifacts()
    pinned = pin_values(text, released)
    values = yaml.safe_load(pinned)
    assert f"{values['image']['repository']}:{values['image']['tag']}" == released["operator"].pinned
    assert values["image"]["tag"] == f"0.2.0@{released['operator'].digest}"
    assert (
        values["operator"]["images"]["samba"] == f"registry.example:5000/es4ps/samba:0.2.0@{released['samba'].digest}"
    )
    assert values["operator"]["images"]["portal"] == released["portal"].pinned
    # the adopter's broker stays the stock image; everything else, comments included, is as it was
    assert values["operator"]["images"]["broker"] == ""
    changed = [(a, b) for a, b in zip(text.splitlines(), pinned.splitlines(), strict=True) if a != b]
    assert len(changed) == 4 and all("#" not in a for a, _ in changed)


def test_values_without_the_lines_to_pin_are_refused():
    text = (CHART / "values.yaml").read_text().replace('    portal: ""', '    portal: "somewhere/else:1"')
    with pytest.raises(ReleaseError, match="portal"):
        pin_values(text, artifacts())
