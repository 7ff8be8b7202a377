"""The file server's settings and smb.conf (es4ps_samba.files): bad shares refused, SMB3 encryption always."""

from __future__ import annotations

import pytest
from es4ps_contract.environment import SettingError
from es4ps_samba.files.config import FilesConfig, parse_shares
from es4ps_samba.files.folders import home_space, make_home
from es4ps_samba.files.smbconf import render

ENV = {
    "ES4PS_REALM": "ad.acme.example",
    "ES4PS_FILES_HOSTNAME": "files",
    "ES4PS_JOIN_SERVER": "dc0.ad.acme.example",
    "ES4PS_ADMIN_PASSWORD_FILE": "/s/admin",
    "ES4PS_MACHINE_PASSWORD_FILE": "/s/machine",
    "ES4PS_FILES_SHARES": '[{"name": "students", "groups": ["students", "wifi users"], "access": "readOnly"}]',
}


def sections(text: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("["):
            current = found.setdefault(line.strip("[]"), {})
        elif "=" in line:
            name, _, value = line.partition("=")
            current[name.strip()] = value.strip()
    return found


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ('[{"name": "a b", "groups": ["g"]}]', "not a valid share name"),
        ('[{"name": "homes", "groups": ["g"]}]', "not a valid share name"),
        ('[{"name": "../etc", "groups": ["g"]}]', "not a valid share name"),
        ('[{"name": "x", "groups": []}]', "at least one group"),
        ('[{"name": "x", "groups": ["a\\"b"]}]', "cannot quote"),
        ('[{"name": "x", "groups": ["g"], "access": "all"}]', "access must be one of"),
        ('[{"name": "x", "groups": ["g"]}, {"name": "X", "groups": ["g"]}]', "given twice"),
        ("{}", "JSON list"),
    ],
)
def test_bad_shares_are_refused_naming_the_field(shares, message):
    with pytest.raises(SettingError, match=message):
        parse_shares(shares)


def test_smb_conf_requires_smb3_encryption_and_limits_each_share(tmp_path):
    config = FilesConfig.from_env(ENV | {"ES4PS_DATA_DIR": str(tmp_path), "ES4PS_FILES_HOMES_QUOTA_BYTES": "2048"})
    conf = sections(render(config, "es4ps-files"))
    assert conf["global"]["server smb encrypt"] == "required"
    assert conf["global"]["server min protocol"] == "SMB3"
    assert conf["global"]["map to guest"] == "never"
    assert conf["global"]["machine password timeout"] == "0"
    assert conf["homes"]["valid users"] == "%S"
    assert conf["homes"]["dfree command"] == "/run/es4ps-files/dfree"
    assert conf["students"]["valid users"] == '@"students" @"wifi users"'
    assert conf["students"]["read only"] == "yes"
    assert "pdf" not in conf  # printing is off unless asked


def test_a_home_is_made_once_and_never_emptied(tmp_path):
    import getpass

    me = getpass.getuser()
    home = make_home(tmp_path, me)
    (home / "kept.txt").write_text("mine")
    assert make_home(tmp_path, me) == home and (home / "kept.txt").read_text() == "mine"
    assert home.stat().st_mode & 0o777 == 0o700
    for bad in ("../etc", ".hidden", "a/b"):
        with pytest.raises(SettingError):
            make_home(tmp_path, bad)


def test_a_home_s_space_is_its_quota_less_what_it_holds(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"x" * 64 * 1024)
    total, free = home_space(tmp_path, 1024 * 1024)
    assert total == 1024
    assert 1024 - 80 <= free <= 1024 - 64


def test_a_home_past_its_quota_has_one_block_left_never_zero(tmp_path):
    # smbd reads a free space of 0 from its dfree command as 1024 blocks (1 MiB more than the truth).
    (tmp_path / "data.bin").write_bytes(b"x" * 2 * 1024 * 1024)
    assert home_space(tmp_path, 1024 * 1024) == (1024, 1)
