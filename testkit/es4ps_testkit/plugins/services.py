"""Session fixtures that start the real services of the directory side (classes in es4ps_testkit's modules).

- `test_ca`: a throwaway CA; `test_ca.issue(name, cn, server_names=..., client=...)` writes ca.crt, tls.crt, tls.key
- `rabbitmq`: RabbitMQ with only a TLS listener, client certificates required, EXTERNAL login;
  `rabbitmq.portal_env` / `rabbitmq.worker_env` are the ES4PS_BROKER_* variables of each side
- `samba_dc`: a Samba AD DC provisioned by `es4ps-samba-dc run` on its own loopback address;
  `samba_dc.worker_env` / `samba_dc.portal_env`, `.realm`, `.ldap_url`, `.ldaps_url`, `.ca_file`, `.admin_password`
- `second_dc`: an additional DC joined to `samba_dc`'s domain for one test, named dc2, dc3, ... (once each in a
  session), removed from the domain after the test
- `contract_keys`: sealing and signing key pairs as files; `.portal_env` / `.worker_env`; `.result_env(name)`: the
  result signing key of the worker named `name` (the portal side finds its public half)
- `portal_env`, `worker_env`: everything each side needs, merged (add them to a subprocess environment);
  `worker_env` signs results as the default worker (`DirectoryWorker.DEFAULT_NAME`)
- `directory_worker`: the real `es4ps-worker` consuming tasks against all of the above
- `task_client`: a portal stand-in that publishes signed tasks and collects their result events
- `username`: a username no other test of any session uses
- `outside_ad`: an Active Directory ES4PS does not run (a Samba DC of its own domain, Microsoft AD's defaults),
  its OU `DELEGATED_OU` delegated to `SERVICE_ACCOUNT` by `es4ps-samba-dc delegate` (es4ps_testkit.outside_ad)
- `s3_server`: SeaweedFS's S3 gateway with one bucket and one identity allowed only on it
- `postgres`: a throwaway PostgreSQL server (Debian's); `postgres.create_database(name)` returns its URL
- `workstation`, `sssd_workstation`: a Debian workstation (winbind / sssd, PAM, pam_mkhomedir) in namespaces
  of its own, joined to `samba_dc`'s domain by its Administrator (`net ads join` / `adcli join`);
  `.passwd(name)`, `.group_names(name)`, `.login(name, password)`
- `file_server`: the domain's file server (`es4ps-files run`: Samba member server, homes, the group share
  `students`, the print share `pdf` with CUPS and cups-pdf) in namespaces of its own, joined by its entrypoint;
  reach it with `es4ps_testkit.file_server.smbclient`

A service that does not come up fails the test with the tail of its log; nothing is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import ServiceError
from ..ca import ThrowawayCA
from ..file_server import FileServer
from ..legacy import LegacyDC, LegacyPerson
from ..outside_ad import OutsideAD
from ..postgres import PostgreSQL
from ..rabbitmq import RabbitMQ
from ..registration import unique_username
from ..s3 import SeaweedS3
from ..samba import SambaDC
from ..tasks import TaskClient
from ..worker import ContractKeys, DirectoryWorker
from ..workstation import Workstation


def started(service):
    """Start a service or fail the test with the reason (its log tail): a missing service is never skipped."""
    try:
        service.start()
    except ServiceError as exc:
        (getattr(service, "close", None) or service.stop)()  # close() also gives a DC's address back
        pytest.fail(str(exc), pytrace=False)
    return service


def started_legacy_dc(directory: Path, people: list[LegacyPerson], pod_reachable: bool = False) -> LegacyDC:
    """ES4PS-Containers' DC started and holding `people`, or the test fails with the reason."""
    dc = LegacyDC(directory, pod_reachable=pod_reachable)
    try:
        dc.start(timeout_s=180)
        dc.add_people(people)
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the test says it and the address goes back
        dc.close()
        pytest.fail(f"the legacy DC did not come up: {exc}", pytrace=False)
    return dc


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory, test_ca: ThrowawayCA) -> Iterator[RabbitMQ]:
    broker = started(RabbitMQ(tmp_path_factory.mktemp("rabbitmq"), test_ca))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory, test_ca: ThrowawayCA) -> Iterator[SambaDC]:
    dc = started(SambaDC(tmp_path_factory.mktemp("samba"), test_ca))
    yield dc
    dc.close()


# A joined DC's name is never joined again in a session: the session DC keeps Kerberos tickets for the
# name's former key and could not replicate with the new DC (a failure seen only after an earlier join).
_additional_dc_numbers = itertools.count(2)


@pytest.fixture
def second_dc(tmp_path: Path, test_ca: ThrowawayCA, samba_dc: SambaDC) -> Iterator[SambaDC]:
    number = next(_additional_dc_numbers)
    dc = SambaDC(tmp_path / f"dc{number}", test_ca, hostname=f"dc{number}", join=samba_dc, volume_bytes=1 << 30)
    try:
        dc.start(timeout_s=180)
    except ServiceError as exc:
        dc.close()
        pytest.fail(str(exc), pytrace=False)
    yield dc
    dc.close()
    dc.leave_domain()


@pytest.fixture(scope="session")
def outside_ad(tmp_path_factory: pytest.TempPathFactory, test_ca: ThrowawayCA) -> Iterator[OutsideAD]:
    directory = started(OutsideAD(tmp_path_factory.mktemp("outside-ad"), test_ca))
    try:
        directory.prepare_for_es4ps()
    except ServiceError as exc:
        directory.close()
        pytest.fail(str(exc), pytrace=False)
    yield directory
    directory.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = started(SeaweedS3(tmp_path_factory.mktemp("s3")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgreSQL]:
    server = started(PostgreSQL(tmp_path_factory.mktemp("postgres")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def contract_keys(tmp_path_factory: pytest.TempPathFactory) -> ContractKeys:
    return ContractKeys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory, test_ca: ThrowawayCA) -> Iterator[RabbitMQ]:
    """A broker of the module's own: the session's has the session DC's worker on the same queue."""
    server = started(RabbitMQ(tmp_path_factory.mktemp("own-rabbitmq"), test_ca))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_keys(tmp_path_factory: pytest.TempPathFactory) -> ContractKeys:
    """Contract keys of the module's own, for the workers beside `own_broker`."""
    return ContractKeys(tmp_path_factory.mktemp("own-keys"))


@pytest.fixture(scope="session")
def portal_env(rabbitmq: RabbitMQ, samba_dc: SambaDC, contract_keys: ContractKeys) -> dict[str, str]:
    """The broker, directory and key variables of the portal."""
    return {**rabbitmq.portal_env, **samba_dc.portal_env, **contract_keys.portal_env}


@pytest.fixture(scope="session")
def worker_env(rabbitmq: RabbitMQ, samba_dc: SambaDC, contract_keys: ContractKeys) -> dict[str, str]:
    """The broker, directory and key variables of a directory worker."""
    return {
        **rabbitmq.worker_env,
        **samba_dc.worker_env,
        **contract_keys.worker_env,
        **contract_keys.result_env(DirectoryWorker.DEFAULT_NAME),
    }


@pytest.fixture(scope="session")
def directory_worker(tmp_path_factory: pytest.TempPathFactory, worker_env: dict[str, str]) -> Iterator[DirectoryWorker]:
    worker = started(DirectoryWorker(tmp_path_factory.mktemp("worker"), worker_env))
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def task_client(portal_env: dict[str, str]) -> Iterator[TaskClient]:
    client = TaskClient(portal_env)
    yield client
    client.close()


@pytest.fixture
def username() -> str:
    """A username no other test of any session uses."""
    return unique_username("t")


def joined_workstation(directory, dc: SambaDC, hostname: str, client: str) -> Workstation:
    """A workstation joined to `dc`'s domain by its Administrator, or the test fails with the reason."""
    machine = Workstation(directory, dc, hostname=hostname, client=client)
    try:
        machine.start()
        machine.join()
    except ServiceError as exc:
        machine.close()
        pytest.fail(str(exc), pytrace=False)
    return machine


@pytest.fixture(scope="session")
def workstation(tmp_path_factory: pytest.TempPathFactory, samba_dc: SambaDC) -> Iterator[Workstation]:
    """A winbind workstation joined to the session's domain as an administrator joins one (`net ads join`)."""
    machine = joined_workstation(tmp_path_factory.mktemp("workstation"), samba_dc, "ws1", "winbind")
    yield machine
    machine.close()


@pytest.fixture(scope="session")
def sssd_workstation(tmp_path_factory: pytest.TempPathFactory, samba_dc: SambaDC) -> Iterator[Workstation]:
    """An sssd workstation joined to the session's domain by an administrator (`adcli join`)."""
    machine = joined_workstation(tmp_path_factory.mktemp("sssd-workstation"), samba_dc, "ws2", "sssd")
    yield machine
    machine.close()


# The file server's group share in the tests: the live portal's policy group `students` (es4ps_testkit.live_portal).
TEST_SHARES = '[{"name": "students", "groups": ["students"], "access": "readWrite"}]'
# The homes' quota in the tests (spec.fileServices.homes.quota: 64Mi).
TEST_HOMES_QUOTA_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def file_server(tmp_path_factory: pytest.TempPathFactory, samba_dc: SambaDC) -> Iterator[FileServer]:
    """The domain's file server, joined and served by its own entrypoint, with homes, `students` and `pdf`."""
    server = FileServer(
        tmp_path_factory.mktemp("file-server"), samba_dc, shares=TEST_SHARES, homes_quota_bytes=TEST_HOMES_QUOTA_BYTES
    )
    try:
        server.start()
        server.serve()
    except ServiceError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.close()
