"""The homes' and the shares' folders: made with the owner, group and mode access needs; never emptied or removed.

A share folder belongs to root and its first group (setgid, so new files stay
the group's): `2770` for readWrite, `2750` for readOnly. A home belongs to its
person, `0700`. Folders of shares that left the spec stay as they are: a
reconcile never deletes anyone's files.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path

from es4ps_contract.environment import SettingError

from .config import FilesConfig

# What may name a home folder: a directory account's name (no path separators, no dot-names).
HOME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def prepare_data_dir(config: FilesConfig) -> None:
    """The volume's folders smbd and CUPS need; existing ones keep what they hold."""
    for folder in (config.data_dir / "private", config.data_dir / "state", config.data_dir / "cache"):
        folder.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "private").chmod(0o700)
    for folder, mode in ((config.homes_dir, 0o711), (config.shares_dir, 0o755)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    if config.printing:
        config.spool_dir.mkdir(parents=True, exist_ok=True)
        config.spool_dir.chmod(0o1777)
        config.printed_dir.mkdir(parents=True, exist_ok=True)
        config.printed_dir.chmod(0o711)


def prepare_share(shares_dir: Path, name: str, group: str, writable: bool) -> Path:
    """The share's folder, owned by root and `group`; SettingError while the domain has no such group yet (the
    worker makes a policy's groups with its first account: smbd asks again at the next connection)."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise SettingError(f"share {name}: the domain has no group {group!r} with a Unix gid yet") from None
    folder = shares_dir / name
    folder.mkdir(exist_ok=True)
    os.chown(folder, 0, gid)
    folder.chmod(0o2770 if writable else 0o2750)
    return folder


def make_home(homes_dir: Path, name: str) -> Path:
    """The person's home folder, made at their first connection; an existing one is left as it is."""
    if not HOME_NAME.match(name):
        raise SettingError(f"not a home name: {name[:40]!r}")
    try:
        person = pwd.getpwnam(name)
    except KeyError:
        raise SettingError(f"{name!r} is not a person of the domain") from None
    home = homes_dir / name
    if not home.exists():
        home.mkdir(mode=0o700)
        os.chown(home, person.pw_uid, person.pw_gid)
    return home


def tree_bytes(top: Path) -> int:
    """What the files under `top` take on the volume (allocated blocks; nothing when `top` is not there)."""
    used = 0
    for folder, _dirs, files in os.walk(top):
        for name in files:
            try:
                used += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue  # removed meanwhile
    return used


def home_space(home: Path, quota_bytes: int) -> tuple[int, int]:
    """(size, free) of a home in 1 KiB blocks as smbd's `dfree command` reports them: the quota as its size, what
    the person's files leave of it (and no more than the volume has) as free space."""
    used = tree_bytes(home)
    volume_free = os.statvfs(home).f_bavail * os.statvfs(home).f_frsize
    # At least one block: smbd reads a free space of 0 as "1024 blocks" (source3/smbd/dfree.c), 1 MiB more.
    return quota_bytes // 1024, max(1, min(quota_bytes - used, volume_free) // 1024)
