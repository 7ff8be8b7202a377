"""Settings of the worker and the DC entrypoint, and the smb.conf editing."""
# ruff: noqa: S105 - test values

from pathlib import Path

import pytest
from es4ps_contract.environment import SettingError
from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_samba.dc.config import DCConfig, parse_options
from es4ps_samba.dc.smbconf import managed_options, set_global_options
from es4ps_samba.dc.tls import install_tls_files, mounted_tls_digest
from es4ps_samba.worker.config import WorkerConfig


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "worker").write_text("W0rker-pass\n")
    (tmp_path / "sealing").write_text(generate_sealing_keypair()[0])
    (tmp_path / "verify").write_text(generate_signing_keypair()[1])
    (tmp_path / "result").write_text(generate_signing_keypair()[0])
    return {
        "ES4PS_REALM": "ad.acme.example",
        "ES4PS_WORKER_PASSWORD_FILE": str(tmp_path / "worker"),
        "ES4PS_WORKER_STATE_DIR": str(tmp_path / "state"),
        "ES4PS_BROKER_URL": "amqps://broker:5671/es4ps",
        "ES4PS_BROKER_CA_FILE": "/tls/ca.crt",
        "ES4PS_BROKER_CERT_FILE": "/tls/tls.crt",
        "ES4PS_BROKER_KEY_FILE": "/tls/tls.key",
        "ES4PS_SEALING_PRIVATE_KEY_FILE": str(tmp_path / "sealing"),
        "ES4PS_SIGNING_PUBLIC_KEY_FILE": str(tmp_path / "verify"),
        "ES4PS_RESULT_SIGNING_KEY_FILE": str(tmp_path / "result"),
    }


def test_worker_defaults(worker_env):
    config = WorkerConfig.from_env(worker_env)

    assert (config.realm, config.netbios_name, config.ldap_url, config.users_ou, config.account) == (
        "AD.ACME.EXAMPLE",
        "AD",
        "ldap://127.0.0.1",
        "OU=ES4PS",
        "es4ps-worker",
    )
    assert config.password == "W0rker-pass"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ES4PS_REALM": ""}, "ES4PS_REALM is not set"),
        ({"ES4PS_WORKER_PASSWORD_FILE": "/nonexistent"}, "cannot read the file named by ES4PS_WORKER_PASSWORD_FILE"),
        ({"ES4PS_WORKER_STATE_DIR": ""}, "ES4PS_WORKER_STATE_DIR is not set"),
        ({"ES4PS_SIGNING_PUBLIC_KEY_FILE": "/nonexistent"}, "cannot read signing public key"),
        ({"ES4PS_RESULT_SIGNING_KEY_FILE": "/nonexistent"}, "cannot read signing private key"),
        ({"ES4PS_WORKER_MAX_RETRIES": "many"}, "whole number"),
        ({"ES4PS_WORKER_CONCURRENCY": "0"}, "at least 1"),
    ],
)
def test_bad_worker_settings_are_named(worker_env, change, message):
    with pytest.raises(SettingError, match=message) as caught:
        WorkerConfig.from_env({**worker_env, **change})
    assert "W0rker-pass" not in str(caught.value)


DC_ENV = {
    "ES4PS_REALM": "ad.acme.example",
    "ES4PS_DC_HOSTNAME": "DC0",
    "ES4PS_ADMIN_PASSWORD_FILE": "/secret/pw",
    "ES4PS_WORKER_PASSWORD_FILE": "/secret/worker",
}


def test_dc_defaults_follow_the_realm():
    config = DCConfig.from_env({**DC_ENV, "ES4PS_HOST_IP": "192.0.2.10"})

    assert (config.realm, config.netbios_name, config.hostname) == ("AD.ACME.EXAMPLE", "AD", "dc0")
    assert config.bind_interfaces == "127.0.0.1/8 192.0.2.10"
    assert str(config.data_dir) == "/var/lib/samba"
    assert managed_options(config)["old password allowed period"] == "0"
    # A joined, returned or restored DC is pulled from within a minute, not Samba's five.
    assert managed_options(config)["kccsrv:periodic_interval"] == "60"
    assert managed_options(config)["dreplsrv:periodic_interval"] == "60"


@pytest.mark.parametrize("value", ["soon", "0", "-5", "100000"])
def test_a_bad_certificate_check_interval_is_named(value):
    with pytest.raises(SettingError, match="ES4PS_TLS_CHECK_SECONDS"):
        DCConfig.from_env({**DC_ENV, "ES4PS_TLS_CHECK_SECONDS": value})


def test_the_lmdb_map_size_is_three_quarters_of_the_volume_in_whole_mib(tmp_path):
    config = DCConfig.from_env({**DC_ENV, "ES4PS_DATA_DIR": str(tmp_path), "ES4PS_DATA_VOLUME_BYTES": str(5 << 30)})
    assert config.map_size == 3840 << 20
    odd = DCConfig.from_env({**DC_ENV, "ES4PS_DATA_DIR": str(tmp_path), "ES4PS_DATA_VOLUME_BYTES": "1000000000"})
    assert odd.map_size == 715 << 20  # 750 000 000 bytes, rounded down to whole MiB
    # Not told, and the data directory is no mount of its own: Samba's default.
    assert DCConfig.from_env({**DC_ENV, "ES4PS_DATA_DIR": str(tmp_path)}).map_size == 8 << 30


@pytest.mark.parametrize("value", ["5Gi", "-1", "1000"])
def test_a_bad_volume_size_is_named(value):
    with pytest.raises(SettingError, match="ES4PS_DATA_VOLUME_BYTES"):
        DCConfig.from_env({**DC_ENV, "ES4PS_DATA_VOLUME_BYTES": value})


def test_installed_certificate_files_are_told_from_renewed_ones(tmp_path):
    mounted = {name: tmp_path / "secret" / name for name in ("tls.crt", "tls.key", "ca.crt")}
    mounted["tls.crt"].parent.mkdir()
    for name, path in mounted.items():
        path.write_text(f"first {name}")
    config = DCConfig.from_env(
        {
            **DC_ENV,
            "ES4PS_DATA_DIR": str(tmp_path / "data"),
            "ES4PS_TLS_CERT_FILE": str(mounted["tls.crt"]),
            "ES4PS_TLS_KEY_FILE": str(mounted["tls.key"]),
            "ES4PS_TLS_CA_FILE": str(mounted["ca.crt"]),
        }
    )

    installed = install_tls_files(config)
    assert mounted_tls_digest(config) == installed
    key = tmp_path / "data" / "private" / "tls" / "es4ps-key.pem"
    assert (key.read_text(), key.stat().st_mode & 0o777) == ("first tls.key", 0o600)

    mounted["tls.key"].write_text("renewed tls.key")
    assert mounted_tls_digest(config) not in (None, installed)
    mounted["tls.key"].unlink()  # the kubelet swapping the volume's files
    assert mounted_tls_digest(config) is None


def test_extra_options_override_managed_ones():
    config = DCConfig.from_env({**DC_ENV, "ES4PS_SAMBA_OPTIONS": "# comment\nOld Password Allowed Period = 60\n"})
    assert managed_options(config)["old password allowed period"] == "60"


def test_parse_options_refuses_lines_without_a_value():
    with pytest.raises(SettingError, match="name = value"):
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
