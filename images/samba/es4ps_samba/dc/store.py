"""The DC's database store: LMDB for new domains and joins, its map size derived from the volume.

Samba keeps each partition of the directory (domain, configuration, schema,
the two DNS zones) in its own file under private/sam.ldb.d. With the default
TDB store adding an account gets slower as the domain grows (docs/performance.md);
LMDB (`--backend-store=mdb`) holds up better. An LMDB file can never grow past
its map size, which is stored in the file itself: a write that would need more
fails (LDAP "busy"), the DC keeps serving reads. The map size is set at
provision or join, 3/4 of the volume (the rest holds sysvol, logs, TDB files and
the worker's state), and raised on a later start when the volume grew. The
volume's size is the larger of what the domain asked for (ES4PS_DATA_VOLUME_BYTES,
from spec.directory.storage.size) and what the file system mounted at the data
directory holds: a PVC resized after provisioning is seen on the next start.

A volume provisioned with TDB keeps TDB: nothing converts it behind the
administrator's back (docs/directory.md, "The database store").
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

# Samba's own default map size per partition, used when the volume size is not known.
SAMBA_DEFAULT_MAP_SIZE = 8 << 30
# The share of the volume the map may fill (per partition file; only the domain partition grows large).
VOLUME_SHARE = 3 / 4
MIB = 1 << 20
# A smaller volume cannot hold a provisioned domain (about 45 MB) with room to grow.
MIN_VOLUME_BYTES = 256 * MIB


def volume_size(data_dir: Path, requested_bytes: int | None) -> int | None:
    """The volume's size: the larger of the requested one and the file system's, if `data_dir` is a mount."""
    sizes = [requested_bytes] if requested_bytes else []
    if data_dir.is_dir() and os.path.ismount(data_dir):
        stat = os.statvfs(data_dir)
        sizes.append(stat.f_blocks * stat.f_frsize)
    return max(sizes) if sizes else None


def map_size_for_volume(volume_bytes: int | None) -> int:
    """The LMDB map size for a volume of `volume_bytes` (None: Samba's default), whole MiB."""
    if volume_bytes is None:
        return SAMBA_DEFAULT_MAP_SIZE
    return int(volume_bytes * VOLUME_SHARE) // MIB * MIB


def backend_store(sam_ldb: Path) -> str:
    """ "mdb" or "tdb": the store of the provisioned domain at `sam_ldb` (its @PARTITION record says)."""
    import ldb

    database = ldb.Ldb()
    database.connect(str(sam_ldb), flags=ldb.FLG_RDONLY, options=["modules:"])
    found = database.search("@PARTITION", scope=ldb.SCOPE_BASE, attrs=["backendStore"])
    if len(found) and "backendStore" in found[0]:
        return str(found[0]["backendStore"][0])
    return "tdb"  # domains from before Samba 4.9 name no store: TDB


def partition_files(sam_ldb: Path) -> list[Path]:
    """The files of the directory's partitions (sam.ldb.d/*.ldb)."""
    return sorted((sam_ldb.parent / "sam.ldb.d").glob("*.ldb"))


def lmdb_map_size(path: Path) -> int:
    """The map size stored in the LMDB file `path` (read by the lmdb binding; samba must not be writing it).

    Opened read-only without the lock file and with no map size of our own (0), LMDB takes the one the
    file's newest meta page records.
    """
    environment = lmdb.open(str(path), subdir=False, readonly=True, lock=False, map_size=0)
    try:
        return environment.info()["map_size"]
    finally:
        environment.close()


def raise_map_size(path: Path, map_size: int) -> None:
    """Store a larger map size in the LMDB file `path` (samba must not be running).

    LMDB records a new map size with the next write, so one write is made that
    leaves nothing behind: a special record added and removed in one transaction.
    """
    import ldb

    database = ldb.Ldb()
    database.connect(f"mdb://{path}", options=[f"lmdb_env_size:{map_size}", "modules:"])
    database.transaction_start()
    try:
        database.add({"dn": "@ES4PS_MAP_SIZE", "mapSize": str(map_size)})
        database.delete("@ES4PS_MAP_SIZE")
    except ldb.LdbError:
        database.transaction_cancel()
        raise
    database.transaction_commit()


def converge_map_size(sam_ldb: Path, map_size: int) -> list[Path]:
    """Raise the map size of every LMDB partition below `map_size` to it; the files changed.

    Never shrinks (LMDB cannot give back pages it used, and a volume cannot shrink).
    A TDB domain is left as it is.
    """
    if backend_store(sam_ldb) != "mdb":
        return []
    raised = []
    for path in partition_files(sam_ldb):
        if lmdb_map_size(path) < map_size:
            raise_map_size(path, map_size)
            raised.append(path)
    return raised
