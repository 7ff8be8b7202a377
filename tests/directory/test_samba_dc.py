"""The DC entrypoint: provisions once, serves LDAPS with the given certificate, probes, joins a second DC."""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time

import ldap3
import ldb
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from es4ps_contract.events import Outcome
from es4ps_contract.tasks import EnableUser
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import wait_until
from es4ps_samba.dc.config import MARKER_NAME, DCConfig
from es4ps_samba.dc.peers import Directory, PeerCheck
from es4ps_samba.dc.store import backend_store, lmdb_map_size, partition_files
from es4ps_testkit.dns import ask
from es4ps_testkit.samba import SambaDC, find_account, password_authenticates
from es4ps_testkit.tasks import PASSWORD, binding, create_task, run

pytestmark = pytest.mark.services


def entrypoint(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "es4ps-samba-dc"), command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def domain_sid(dc: SambaDC) -> str:
    return str(dc.samdb().get_domain_sid())


def test_ldaps_serves_the_certificate_of_the_mounted_files(samba_dc):
    context = ssl.create_default_context(cafile=str(samba_dc.ca_file))
    with (
        socket.create_connection((samba_dc.address, 636), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=f"{samba_dc.hostname}.{samba_dc.dns_domain}") as tls,
    ):
        certificate = tls.getpeercert()
    assert dict(item[0] for item in certificate["subject"])["commonName"] == f"dc1.{samba_dc.dns_domain}"


def served_certificate(dc: SambaDC) -> bytes | None:
    """The DER certificate LDAPS presents now; None while the DC does not answer."""
    context = ssl.create_default_context(cafile=str(dc.ca_file))
    try:
        with (
            socket.create_connection((dc.address, 636), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=f"{dc.hostname}.{dc.dns_domain}") as tls,
        ):
            return tls.getpeercert(binary_form=True)
    except OSError:
        return None


def test_a_renewed_certificate_is_served_without_restarting_the_entrypoint(samba_dc, test_ca):
    before = served_certificate(samba_dc)
    assert before is not None
    fqdn = f"{samba_dc.hostname}.{samba_dc.dns_domain}"

    # What cert-manager and the kubelet do: new key and certificate in the mounted files.
    renewed = test_ca.issue(samba_dc.tls.directory.name, fqdn, server_names=(fqdn, samba_dc.address))
    expected = x509.load_pem_x509_certificate(renewed.cert_file.read_bytes()).public_bytes(Encoding.DER)
    assert expected != before

    wait_until(lambda: served_certificate(samba_dc) == expected, 60, "LDAPS with the renewed certificate", samba_dc.log)
    assert samba_dc.running  # the same entrypoint process: samba was restarted inside it
    wait_until(samba_dc.is_ready, 60, "the DC ready again", samba_dc.log)
    assert "LDAPS certificate changed" in samba_dc.log.read_text()


def test_starttls_on_the_ldap_port_works_with_the_ca(samba_dc):
    tls = ldap3.Tls(ca_certs_file=str(samba_dc.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(samba_dc.address, port=389, tls=tls)
    connection = ldap3.Connection(server, user=f"Administrator@{samba_dc.dns_domain}", password=samba_dc.admin_password)
    connection.open()
    assert connection.start_tls()
    assert connection.bind()
    connection.unbind()


def test_a_restart_keeps_the_domain(samba_dc):
    sid = domain_sid(samba_dc)
    assert (samba_dc.data_dir / MARKER_NAME).exists()

    samba_dc.stop()
    assert entrypoint("live", samba_dc.dc_env).returncode == 1
    assert entrypoint("ready", samba_dc.dc_env).returncode == 1
    samba_dc.start()

    assert domain_sid(samba_dc) == sid  # the same domain, not a new provision
    assert entrypoint("ready", samba_dc.dc_env).returncode == 0
    assert entrypoint("live", samba_dc.dc_env).returncode == 0


def test_a_provision_cut_short_is_done_again(tmp_path, test_ca):
    dc = SambaDC(tmp_path / "dc", test_ca)
    dc.address = "127.0.0.1"  # provisioning only: nothing binds, no address to claim
    dc.tls = test_ca.issue("partial-dc", "dc1.es4ps.test", server_names=("dc1.es4ps.test",))
    dc.admin_password_file.parent.mkdir(parents=True)
    dc.admin_password_file.write_text(dc.admin_password)
    dc.worker_password_file.write_text(dc.worker_password)
    # What a provision killed half-way leaves: some files, no marker.
    (dc.data_dir / "private").mkdir(parents=True)
    (dc.data_dir / "private" / "sam.ldb").write_bytes(b"half a database")

    result = entrypoint("prepare", dc.dc_env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert (dc.data_dir / MARKER_NAME).exists()
    assert (dc.data_dir / "private" / "sam.ldb").stat().st_size > 1_000_000
    smb_conf = (dc.data_dir / "etc" / "smb.conf").read_text()
    assert "tls certfile = " in smb_conf and "es4ps-cert.pem" in smb_conf
    assert oct((dc.data_dir / "private" / "tls" / "es4ps-key.pem").stat().st_mode & 0o777) == "0o600"
    assert dc.admin_password not in smb_conf and dc.worker_password not in smb_conf


def offline_dc(directory, test_ca, volume_bytes: int) -> SambaDC:
    """A DC only prepared (provisioned, converged) by the entrypoint, never run: no address to claim."""
    dc = SambaDC(directory, test_ca, volume_bytes=volume_bytes)
    dc.address = "127.0.0.1"
    dc.tls = test_ca.issue(f"offline-{directory.name}", "dc1.es4ps.test", server_names=("dc1.es4ps.test",))
    dc.data_dir.mkdir(parents=True)
    dc.admin_password_file.write_text(dc.admin_password)
    dc.worker_password_file.write_text(dc.worker_password)
    return dc


def local_samdb(dc: SambaDC):
    """The DC's own database, opened from its files (the DC is not running)."""
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(str(dc.data_dir / "etc" / "smb.conf"))
    return SamDB(url=str(dc.sam_ldb), session_info=system_session(), lp=lp)


def map_sizes(dc: SambaDC) -> set[int]:
    return {lmdb_map_size(path) for path in partition_files(dc.sam_ldb)}


def test_a_new_domain_is_stored_in_lmdb_sized_from_its_volume_and_follows_a_larger_one(tmp_path, test_ca):
    dc = offline_dc(tmp_path / "dc", test_ca, volume_bytes=1 << 30)
    result = entrypoint("prepare", dc.dc_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert backend_store(dc.sam_ldb) == "mdb"
    assert len(partition_files(dc.sam_ldb)) == 5  # domain, configuration, schema, two DNS zones
    assert map_sizes(dc) == {768 << 20}

    dc.volume_bytes = 2 << 30  # the volume was resized
    result = entrypoint("prepare", dc.dc_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert map_sizes(dc) == {1536 << 20}
    assert "raised the map size" in result.stdout

    dc.volume_bytes = 1 << 30  # a map never shrinks
    assert entrypoint("prepare", dc.dc_env).returncode == 0
    assert map_sizes(dc) == {1536 << 20}
    # The directory reads fine through the raised maps: the Administrator is still there.
    assert len(local_samdb(dc).search(expression="(sAMAccountName=Administrator)", attrs=["dn"])) == 1


def test_a_domain_provisioned_with_tdb_stays_on_tdb(tmp_path, test_ca):
    dc = offline_dc(tmp_path / "dc", test_ca, volume_bytes=1 << 30)
    # A volume from before LMDB: provisioned with Samba's default store, marked as done.
    provision = subprocess.run(
        [
            "samba-tool",
            "domain",
            "provision",
            f"--targetdir={dc.data_dir}",
            f"--realm={dc.realm}",
            f"--domain={dc.netbios_name}",
            "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL",
            f"--adminpass={dc.admin_password}",
            "--option=acl_xattr:security_acl_name = user.NTACL",
        ],
        capture_output=True,
        text=True,
    )
    assert provision.returncode == 0, provision.stderr[-2000:]
    (dc.data_dir / MARKER_NAME).write_text(f"provision {dc.realm} {dc.hostname}\n")

    result = entrypoint("prepare", dc.dc_env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert backend_store(dc.sam_ldb) == "tdb"
    assert "raised the map size" not in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ES4PS_REALM": ""}, "ES4PS_REALM is not set"),
        ({"ES4PS_NETBIOS_NAME": "A-NAME-MUCH-TOO-LONG"}, "ES4PS_NETBIOS_NAME must be at most 15 characters"),
        ({"ES4PS_DC_ROLE": "join"}, "ES4PS_JOIN_SERVER is required"),
        ({"ES4PS_HOST_IP": "not-an-ip"}, "ES4PS_HOST_IP must be an IP address"),
        ({"ES4PS_TLS_KEY_FILE": ""}, "set all of ES4PS_TLS_CERT_FILE"),
        ({"ES4PS_SAMBA_OPTIONS": "just words"}, "expected 'name = value'"),
        ({"ES4PS_DATA_VOLUME_BYTES": "5Gi"}, "ES4PS_DATA_VOLUME_BYTES must be a whole number"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(samba_dc, change, message):
    result = entrypoint("run", {**samba_dc.dc_env, **change})

    assert result.returncode == 2
    assert message in result.stderr


def test_an_additional_dc_joins_with_the_domain_data(samba_dc, task_client, directory_worker, username, request):
    assert run(task_client, create_task(task_client, username)).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(username, **binding(username))).outcome is Outcome.SUCCEEDED
    second = request.getfixturevalue("second_dc")  # joins after the account exists
    # The join replicated the domain, passwords included: the account authenticates on the new DC,
    # which serves LDAPS with its own certificate.
    assert backend_store(second.sam_ldb) == "mdb"
    assert map_sizes(second) == {768 << 20}
    expression = f"(sAMAccountName={ldb.binary_encode(username)})"
    assert len(second.samdb().search(samba_dc.base_dn, expression=expression)) == 1
    assert domain_sid(second) == domain_sid(samba_dc)
    tls = ldap3.Tls(ca_certs_file=str(second.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(second.address, port=636, use_ssl=True, tls=tls)
    assert ldap3.Connection(server, user=f"{username}@{samba_dc.dns_domain}", password=PASSWORD).bind()
    assert not ldap3.Connection(server, user=f"{username}@{samba_dc.dns_domain}", password="Wr0ng-pass!").bind()

    # Later changes replicate both ways (the DCs find each other in the domain's DNS, on the first DC).
    later = f"{username}b"
    assert run(task_client, create_task(task_client, later)).outcome is Outcome.SUCCEEDED
    assert run(task_client, EnableUser(later, **binding(later))).outcome is Outcome.SUCCEEDED
    wait_until(lambda: password_authenticates(second, later, PASSWORD), 180, f"{later} replicated to {second.hostname}")
    second.samdb().newuser(f"{username}c", PASSWORD)
    wait_until(lambda: find_account(samba_dc, f"{username}c"), 180, f"{username}c replicated from {second.hostname}")

    # The operator's Jobs (es4ps_samba.dc.lifecycle): dbcheck before a roll-out; then the new DC leaves the domain.
    steps = {
        "ES4PS_REALM": samba_dc.realm,
        "ES4PS_NETBIOS_NAME": samba_dc.netbios_name,
        "ES4PS_ADMIN_PASSWORD_FILE": str(samba_dc.admin_password_file),
        "ES4PS_JOIN_SERVER": samba_dc.address,
        "ES4PS_LEAVING_DC": second.hostname,
        "ES4PS_LEAVING_SERVER": second.address,
    }
    lifecycle_step("dbcheck", steps)
    second.samdb().newuser(f"{username}d", PASSWORD)  # written on the new DC just before it goes
    lifecycle_step("leave", steps)
    assert find_account(samba_dc, f"{username}d"), (
        f"leave did not bring {second.hostname}'s last change to the remaining DC"
    )
    second.stop()
    lifecycle_step("remove", steps)
    config_dn = samba_dc.samdb().get_config_basedn()
    servers = {str(m["cn"][0]).lower() for m in samba_dc.samdb().search(config_dn, expression="(objectClass=server)")}
    assert servers == {samba_dc.hostname}, servers
    lifecycle_step("remove", steps)  # again, as after a crash: nothing left to do, still a success


def lifecycle_step(step: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "es4ps-samba-dc"), step], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"es4ps-samba-dc {step} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def test_a_dc_writes_its_current_address_where_the_zone_kept_an_old_one(samba_dc):
    """What a DC Pod created again at another address needs (es4ps_samba.dc.peers): its A record follows it."""
    import dns.resolver

    config = DCConfig.from_env(samba_dc.dc_env)
    directory = Directory(config)
    dns_name = f"{samba_dc.hostname}.{samba_dc.dns_domain}"

    def served() -> list[str]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [samba_dc.address]
        return sorted(str(answer) for answer in resolver.resolve(dns_name, "A"))

    assert served() == [samba_dc.address]
    directory.set_address(samba_dc.hostname, "192.0.2.77")  # the zone as a moved DC finds it
    try:
        assert served() == ["192.0.2.77"]
        assert PeerCheck(config).check() is None
        assert served() == [samba_dc.address]
        [dc] = [dc for dc in directory.domain_controllers() if dc.name == samba_dc.hostname]
        assert dc.addresses == (samba_dc.address,)
    finally:
        directory.set_address(samba_dc.hostname, samba_dc.address)


def test_a_dcs_locator_records_the_domain_deleted_are_served_again_within_about_a_minute(samba_dc, second_dc):
    """What a DC that joined again under its name finds (es4ps_samba.dc.locator): `remove` of its former self
    deleted every record naming it, on every DC. Its SRV records and its `<guid>._msdcs` CNAME are served by both
    DCs again within about a minute (its health check runs samba_dnsupdate); samba alone waits 10 minutes."""
    import logging

    from samba.remove_dc import remove_dns_references

    domain, fqdn = second_dc.dns_domain, f"{second_dc.hostname}.{second_dc.dns_domain}"
    locator = {
        (f"_ldap._tcp.{domain}", "SRV"),
        (f"_ldap._tcp.dc._msdcs.{domain}", "SRV"),
        (f"_kerberos._tcp.{domain}", "SRV"),
        (f"_gc._tcp.{domain}", "SRV"),
        (f"{second_dc.samdb().get_ntds_GUID()}._msdcs.{domain}", "CNAME"),
    }

    def naming_it(dc: SambaDC) -> set[tuple[str, str]]:
        """The locator records `dc`'s DNS serves that point at the joined DC."""
        return {(name, kind) for name, kind in locator if any(fqdn + "." in r for r in ask(dc.address, name, kind)[1])}

    # samba's own samba_dnsupdate at the joined DC's start registered them (on its loopback address too)
    wait_until(
        lambda: naming_it(samba_dc) == naming_it(second_dc) == locator,
        90,
        lambda: f"{fqdn}'s records after its join: {naming_it(samba_dc)} on {samba_dc.hostname}",
        second_dc.log,
        interval_s=2,
    )
    for dc in (samba_dc, second_dc):  # as `remove` leaves the zone, once replicated
        remove_dns_references(dc.samdb(), logging.getLogger(__name__), fqdn)
    assert naming_it(samba_dc) == naming_it(second_dc) == set()
    deleted = time.monotonic()
    wait_until(
        lambda: naming_it(samba_dc) == naming_it(second_dc) == locator,
        100,
        lambda: (
            f"{fqdn}'s records served again: {naming_it(samba_dc)} by {samba_dc.hostname}, {naming_it(second_dc)} by it"
        ),
        second_dc.log,
        interval_s=2,
    )
    print(f"{fqdn}'s locator records served again by both DCs {time.monotonic() - deleted:.0f} s after their deletion")
