"""spec.fileServices read into plain typed values (the CRD has checked it and filled in its defaults).

The file server is a Samba member server of the domain (images/samba:
es4ps_samba.files); this module only names what the builders hand on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .placement import Placement, read_placement


@dataclasses.dataclass(frozen=True)
class Share:
    """A group share: who may connect is membership of `groups` (policies' groups); `access` readWrite|readOnly."""

    name: str
    groups: tuple[str, ...]
    access: str


@dataclasses.dataclass(frozen=True)
class FileServices:
    replicas: int  # 0 or 1
    image: str | None  # None: the directory's image
    storage_size: str
    storage_class: str | None
    homes: bool
    homes_quota: str | None  # None: the volume's size
    shares: tuple[Share, ...]
    printing: bool
    placement: Placement

    def shares_json(self) -> str:
        """The shares as the file server's entrypoint reads them (ES4PS_FILES_SHARES)."""
        return json.dumps(
            [{"name": s.name, "groups": list(s.groups), "access": s.access} for s in self.shares],
            separators=(",", ":"),
        )


def read_file_services(spec: Mapping[str, Any] | None) -> FileServices | None:
    """spec.fileServices as the API server defaulted it; None when left out (no file server)."""
    if spec is None:
        return None
    storage, homes = spec["storage"], spec["homes"]
    return FileServices(
        replicas=spec["replicas"],
        image=spec.get("image"),
        storage_size=storage["size"],
        storage_class=storage.get("storageClassName"),
        homes=homes["enabled"],
        homes_quota=homes.get("quota"),
        shares=tuple(Share(s["name"], tuple(s["groups"]), s["access"]) for s in spec["shares"]),
        printing=spec["printing"]["enabled"],
        placement=read_placement(spec),
    )
