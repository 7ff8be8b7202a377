"""What an earlier release pushed, reused while the registry still holds it signed: `make release` done once.

A release's slow steps (compressing and pushing each image, its SBOM, the
signatures) depend only on what is released, where, and with which key. So
each image is recorded under its image ID, and each chart under the hash of
its packaged files, together with the registry's path and the public key; a
later release finding the same record, and the registry still holding the
artifact with its signature (and an image's SBOM attestation), takes the
record instead of doing the work again. The SBOM and the chart's package are
kept beside the record, so the release's output is the same either way.

Nothing is trusted that the registry does not confirm: a record whose
artifact, signature or attestation is missing there is redone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from .artifacts import Artifact

# cosign stores a digest's signature and attestations under these tags of the same repository
SIGNATURE_SUFFIX, ATTESTATION_SUFFIX = ".sig", ".att"


def content_hash(folder: Path) -> str:
    """sha256 over a folder's files (paths and contents): a chart's identity before `helm package` stamps times."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cosign_tag(digest: str, suffix: str) -> str:
    """The tag cosign gives a digest's signature (.sig) or attestations (.att)."""
    return digest.replace(":", "-") + suffix


class Pushed:
    """The records of what was pushed to `prefix` signed with `public_key`, kept in `folder`."""

    def __init__(self, folder: Path, prefix: str, public_key: Path) -> None:
        self.folder = folder
        self.scope = hashlib.sha256(prefix.encode() + b"\0" + public_key.read_bytes()).hexdigest()[:16]

    def _record(self, kind: str, identity: str) -> Path:
        return self.folder / kind / f"{self.scope}-{identity.replace(':', '-')}.json"

    def find(self, kind: str, identity: str, present) -> tuple[Artifact, Path | None] | None:
        """The record of an image (by image ID) or chart (by content hash), if `present(artifact, kind)` says the
        registry still holds it; with the file kept beside it (SBOM, chart package)."""
        record = self._record(kind, identity)
        if not record.exists():
            return None
        data = json.loads(record.read_text())
        artifact = Artifact(**data["artifact"])
        kept = Path(data["kept"]) if data.get("kept") else None
        if kept is not None and not kept.exists():
            return None
        return (artifact, kept) if present(artifact, kind) else None

    def keep(self, kind: str, identity: str, artifact: Artifact, file: Path | None) -> None:
        """Record what was pushed, with a copy of its SBOM or package."""
        record = self._record(kind, identity)
        record.parent.mkdir(parents=True, exist_ok=True)
        kept = None
        if file is not None:
            kept = record.with_suffix(file.suffix if kind == "charts" else ".cdx.json")
            shutil.copy(file, kept)
        record.write_text(json.dumps({"artifact": asdict(artifact), "kept": str(kept) if kept else ""}))
