"""A release reuses what an earlier one pushed only for the same build, registry and key, and only if still there."""

from __future__ import annotations

from pathlib import Path

from es4ps_devtools.artifacts import Artifact
from es4ps_devtools.pushed import Pushed, content_hash, cosign_tag

DIGEST = "sha256:" + "cd" * 32


def key(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"{text}.pub"
    path.write_text(text)
    return path


def test_a_record_is_found_for_the_same_build_registry_and_key_while_the_registry_holds_it(tmp_path):
    sbom = tmp_path / "sbom.json"
    sbom.write_text('{"components": []}')
    pushed = Pushed(tmp_path / "cache", "registry.example/es4ps", key(tmp_path, "k1"))
    artifact = Artifact("operator", "registry.example/es4ps/operator:0.2.0", DIGEST, 123, str(sbom), 20)
    pushed.keep("images", "sha256:1111", artifact, sbom)
    sbom.unlink()  # the release's own output goes; the kept copy stays

    found = pushed.find("images", "sha256:1111", lambda a, kind: True)
    assert found is not None and found[0] == artifact and found[1].read_text() == '{"components": []}'
    # gone from the registry (or its signature is): done again
    assert pushed.find("images", "sha256:1111", lambda a, kind: False) is None
    # another build, another registry, another key: nothing to reuse
    assert pushed.find("images", "sha256:2222", lambda a, kind: True) is None
    other_registry = Pushed(tmp_path / "cache", "elsewhere.example/es4ps", key(tmp_path, "k1"))
    assert other_registry.find("images", "sha256:1111", lambda a, kind: True) is None
    other_key = Pushed(tmp_path / "cache", "registry.example/es4ps", key(tmp_path, "k2"))
    assert other_key.find("images", "sha256:1111", lambda a, kind: True) is None


def test_a_chart_is_known_by_its_files_not_by_its_package():
    first = Path(__file__).parent
    assert content_hash(first) == content_hash(first)
    assert content_hash(first) != content_hash(first.parent / "contract")


def test_cosign_keeps_a_digests_signature_and_attestations_under_tags_of_its_own():
    assert cosign_tag(DIGEST, ".sig") == "sha256-" + "cd" * 32 + ".sig"
