"""Settings of the worker and the DC entrypoint, and the smb.conf editing."""
# ruff: noqa: S105 - test values

from pathlib import Path

import pytest
from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_samba.dc import ConfigError, DCConfig, managed_options, parse_options, set_global_options
from es4ps_samba.worker import WorkerConfig, WorkerConfigError


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "admin").write_text("Adm1n-pass\n")
    (tmp_path / "sealing").write_text(generate_sealing_keypair()[0])
    (tmp_path / "verify").write_text(generate_signing_keypair()[1])
    return {
        "ES4PS_REALM": "ad.acme.example",
        "ES4PS_ADMIN_PASSWORD_FILE": str(tmp_path / "admin"),
        "ES4PS_SEALING_PRIVATE_KEY_FILE": str(tmp_path / "sealing"),
        "ES4PS_SIGNING_PUBLIC_KEY_FILE": str(tmp_path / "verify"),
    }


def test_worker_defaults(worker_env):
    config = WorkerConfig.from_env(worker_env)

    assert (config.realm, config.netbios_name, config.ldap_url, config.users_ou) == (
        "AD.ACME.EXAMPLE",
        "AD",
        "ldap://127.0.0.1",
        "OU=ES4PS",
    )
    assert config.admin_password == "Adm1n-pass"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ES4PS_REALM": ""}, "ES4PS_REALM is not set"),
        ({"ES4PS_ADMIN_PASSWORD_FILE": "/nonexistent"}, "cannot read ES4PS_ADMIN_PASSWORD_FILE"),
        ({"ES4PS_SIGNING_PUBLIC_KEY_FILE": "/nonexistent"}, "cannot read signing public key"),
        ({"ES4PS_WORKER_MAX_RETRIES": "many"}, "whole number"),
        ({"ES4PS_WORKER_CONCURRENCY": "0"}, "at least 1"),
    ],
)
def test_bad_worker_settings_are_named(worker_env, change, message):
    with pytest.raises(WorkerConfigError, match=message) as caught:
        WorkerConfig.from_env({**worker_env, **change})
    assert "Adm1n-pass" not in str(caught.value)


DC_ENV = {"ES4PS_REALM": "ad.acme.example", "ES4PS_DC_HOSTNAME": "DC0", "ES4PS_ADMIN_PASSWORD_FILE": "/secret/pw"}


def test_dc_defaults_follow_the_realm():
    config = DCConfig.from_env({**DC_ENV, "ES4PS_HOST_IP": "192.0.2.10"})

    assert (config.realm, config.netbios_name, config.hostname) == ("AD.ACME.EXAMPLE", "AD", "dc0")
    assert config.bind_interfaces == "127.0.0.1/8 192.0.2.10"
    assert str(config.data_dir) == "/var/lib/samba"
    assert managed_options(config)["old password allowed period"] == "0"


def test_extra_options_override_managed_ones():
    config = DCConfig.from_env({**DC_ENV, "ES4PS_SAMBA_OPTIONS": "# comment\nOld Password Allowed Period = 60\n"})
    assert managed_options(config)["old password allowed period"] == "60"


def test_parse_options_refuses_lines_without_a_value():
    with pytest.raises(ConfigError, match="name = value"):
        parse_options("log level = 1\nnonsense")


def test_set_global_options_replaces_values_and_keeps_shares(tmp_path):
    smb_conf = tmp_path / "smb.conf"
    smb_conf.write_text("# Global parameters\n[global]\n\tInterfaces = lo\n\trealm = X\n\n[sysvol]\n\tpath = /x\n")

    set_global_options(smb_conf, {"interfaces": "127.0.0.5/8", "tls enabled": "yes"})
    set_global_options(smb_conf, {"interfaces": "127.0.0.5/8", "tls enabled": "yes"})  # converges

    text = smb_conf.read_text()
    assert text.count("interfaces = ") == 1 and "interfaces = 127.0.0.5/8" in text
    assert text.count("tls enabled = yes") == 1
    assert text.index("tls enabled") < text.index("[sysvol]")
    assert "realm = X" in text and "path = /x" in text
