"""The container images build here and run their processes for real (issue: container images built and run here).

The images are built once per session by es4ps_devtools.images (the same code as
`make images`), with a project-owned dockerd when no engine answers. Containers
use the host's network, like the DC's pods (hostNetwork), so they reach the
session's real RabbitMQ and Samba DC on loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from es4ps_devtools.images import IMAGES, PRODUCT_IMAGES, images
from es4ps_devtools.paths import ROOT, VERSION
from es4ps_localcluster import images as local_images
from es4ps_localcluster.processes import free_port, wait_until
from es4ps_testkit.domains import portal_spec_env
from es4ps_testkit.plugins.services import started
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.samba import SambaDC, claim_loopback_address
from es4ps_testkit.tasks import TaskClient, create_task

pytestmark = pytest.mark.images

# The capabilities a Samba AD DC needs when NT ACLs live in user.* xattrs (docs/directory.md).
DC_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"]


class Docker:
    def __init__(self, host: str) -> None:
        self.host = host
        self.containers: list[str] = []

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "DOCKER_HOST": self.host},
        )
        if check and proc.returncode != 0:
            pytest.fail(f"docker {' '.join(args[:4])} ... exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self, *args: str) -> str:
        """`docker run -d` with a unique name, removed at the end of the test module."""
        name = f"es4ps-test-{uuid.uuid4().hex[:8]}"
        self.run("run", "-d", "--name", name, *args)
        self.containers.append(name)
        return name

    def logs(self, name: str) -> str:
        proc = self.run("logs", name, check=False)
        return proc.stdout + proc.stderr

    def inspect(self, ref: str) -> dict:
        return json.loads(self.run("inspect", ref).stdout)[0]

    def remove_all(self) -> None:
        for name in self.containers:
            self.run("rm", "-f", "-v", name, check=False)
        self.containers.clear()


@pytest.fixture(scope="module")
def docker():
    host, started_here = local_images.ensure_engine()
    start = time.monotonic()
    local_images.build(images(PRODUCT_IMAGES), host)
    print(f"\nimages built in {time.monotonic() - start:.0f} s", file=sys.stderr)
    client = Docker(host)
    yield client
    client.remove_all()
    if started_here:
        local_images.stop_dockerd()


def mounted_files(env: dict[str, str], directory: Path, uid: int) -> tuple[dict[str, str], list[str]]:
    """Copy the files the *_FILE variables name into one folder owned by `uid` (as a Secret volume
    would show them to the container's user); return the rewritten env and the mount arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    rewritten = dict(env)
    for key, value in env.items():
        if key.endswith("_FILE") and value:
            copy = directory / key.lower()
            copy.write_bytes(Path(value).read_bytes())
            os.chown(copy, uid, uid)
            copy.chmod(0o400)
            rewritten[key] = f"/etc/es4ps-test/{copy.name}"
    return rewritten, ["-v", f"{directory}:/etc/es4ps-test:ro"]


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


@pytest.mark.parametrize("name", PRODUCT_IMAGES)
def test_image_is_built_lean_labelled_and_non_root_where_possible(docker, name):
    image = IMAGES[name]
    config = docker.inspect(image.ref)["Config"]
    assert config["Labels"]["org.opencontainers.image.version"] == VERSION
    assert config["Labels"]["org.opencontainers.image.source"]
    assert config["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
    licence = docker.run("run", "--rm", "--entrypoint", "cat", image.ref, "/usr/share/licenses/es4ps/LICENSE").stdout
    assert licence == (ROOT / "LICENSE").read_text()
    if name != "samba":  # the DC needs root (it changes users and binds low ports)
        assert config["User"] and config["User"].split(":")[0] not in ("", "0", "root")
    no_compiler = docker.run(
        "run", "--rm", "--entrypoint", "sh", image.ref, "-c", "command -v gcc cc c++ make || echo none", check=False
    )
    assert no_compiler.stdout.strip() == "none", no_compiler.stdout


def test_operator_image_prints_its_version_and_help(docker):
    ref = IMAGES["operator"].ref
    assert docker.run("run", "--rm", ref, "--version").stdout.strip().endswith(VERSION)
    assert "usage" in docker.run("run", "--rm", ref, "--help").stdout.lower()


def test_portal_image_serves_health_and_readiness(docker, tmp_path, portal_env):
    """The image's own entrypoint migrates and serves; /readyz proves its database answers."""
    secret_key = tmp_path / "secret-key"
    secret_key.write_text(secrets.token_urlsafe(50))
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)
    port = free_port()
    env = {
        **portal_spec_env(),
        **portal_env,
        "ES4PS_PORTAL_HOST": "accounts.example.test",
        "ES4PS_ORGANIZATION_NAME": "Image Test",
        "ES4PS_ALLOWED_EMAIL_DOMAINS": "example.test",
        "ES4PS_PORTAL_PORT": str(port),
        "ES4PS_DATA_DIR": "/var/lib/es4ps-portal",
        "DJANGO_SECRET_KEY_FILE": str(secret_key),
    }
    env, mount_args = mounted_files(env, tmp_path / "files", uid=10001)
    name = docker.start(
        "--network",
        "host",
        "-v",
        f"{data}:/var/lib/es4ps-portal",
        *mount_args,
        *env_args(env),
        IMAGES["portal"].ref,
    )

    def answers(path: str) -> int | None:
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
        except requests.ConnectionError:
            return None

    def serving() -> bool:
        if answers("/healthz") == 200:
            return True
        if not docker.inspect(name)["State"]["Running"]:
            pytest.fail(f"the portal container did not serve /healthz:\n{docker.logs(name)[-3000:]}")
        return False

    wait_until(
        serving, 120, lambda: f"the portal container serving /healthz\n{docker.logs(name)[-3000:]}", interval_s=1
    )
    assert answers("/readyz") == 200, docker.logs(name)[-3000:]
    assert (data / "portal.sqlite3").exists()


@pytest.fixture
def dc_container(docker, tmp_path, test_ca):
    """A Samba DC in a container of the samba image: least capabilities, host network on its own loopback address."""
    address, lock = claim_loopback_address()
    spec = SambaDC(tmp_path / "dc", test_ca, realm="IMAGE.ES4PS.TEST", netbios_name="IMAGETEST")
    spec.directory.mkdir(parents=True)
    spec.address, spec._lock = address, lock
    fqdn = f"{spec.hostname}.{spec.dns_domain}"
    spec.tls = test_ca.issue(f"image-dc-{address}", fqdn, server_names=(fqdn, address))
    spec.write_password_files()
    spec.data_dir.mkdir()
    # As in the DC's Pod: the DC prepares the worker's state directory on its volume for the worker's uid.
    dc_env = {**spec.dc_env, "ES4PS_DATA_DIR": "/var/lib/samba", "ES4PS_WORKER_UID": "10001"}
    env, mount_args = mounted_files(dc_env, tmp_path / "dc-files", 0)
    run_args = [
        "--network",
        "host",
        "--cap-drop",
        "ALL",
        *[f"--cap-add={c}" for c in DC_CAPABILITIES],
        "-v",
        f"{spec.data_dir}:/var/lib/samba",
        *mount_args,
        *env_args(env),
        IMAGES["samba"].ref,
        "es4ps-samba-dc",
        "run",
    ]
    yield spec, run_args
    os.close(lock)


def start_dc(docker: Docker, run_args: list[str], timeout: float = 120) -> str:
    name = docker.start(*run_args)

    def ready() -> bool:
        if docker.run("exec", name, "es4ps-samba-dc", "ready", check=False).returncode == 0:
            return True
        if not docker.inspect(name)["State"]["Running"]:
            pytest.fail(f"the DC container did not become ready:\n{docker.logs(name)[-4000:]}")
        return False

    wait_until(ready, timeout, lambda: f"the DC container ready\n{docker.logs(name)[-4000:]}", interval_s=1)
    return name


def ldap_search(spec: SambaDC, base: str, expression: str, *attrs: str) -> str:
    """ldbsearch from the host, as Administrator, over LDAP to the containerised DC."""
    proc = subprocess.run(
        [
            "ldbsearch",
            "-H",
            spec.ldap_url,
            f"-U{spec.netbios_name}\\Administrator%{spec.admin_password}",
            "-b",
            base,
            *(["-s", "base"] if not base else []),
            expression,
            *attrs,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_samba_image_provisions_with_least_capabilities_and_keeps_the_domain(docker, dc_container):
    spec, run_args = dc_container
    first = start_dc(docker, run_args)
    assert f"dnsHostName: {spec.hostname}.{spec.dns_domain}" in ldap_search(spec, "", "(objectClass=*)", "dnsHostName")
    config = docker.inspect(first)["HostConfig"]
    assert not config["Privileged"] and config["CapDrop"] == ["ALL"]
    assert "SYS_ADMIN" not in (config["CapAdd"] or [])
    domain_sid = ldap_search(spec, spec.base_dn, "(objectClass=domain)", "objectSid")
    # As the kubelet stops a pod: SIGTERM to the entrypoint, which passes it on to samba and
    # exits 0 once samba is gone (a SIGKILL after docker's 10 s grace would show as 137).
    docker.run("stop", first)
    assert docker.inspect(first)["State"]["ExitCode"] == 0, docker.logs(first)[-3000:]
    docker.run("rm", first)

    # a new provision would make a new domain SID
    start_dc(docker, run_args)
    assert domain_sid == ldap_search(spec, spec.base_dn, "(objectClass=domain)", "objectSid")


@pytest.fixture
def private_broker(tmp_path, test_ca):
    """A broker of this test's own: the session's broker has a worker process consuming it already."""
    broker = started(RabbitMQ(tmp_path / "rabbitmq", test_ca))
    yield broker
    broker.stop()


def test_worker_container_creates_the_user_in_the_dc(docker, dc_container, private_broker, contract_keys, tmp_path):
    rabbitmq = private_broker
    spec, run_args = dc_container
    start_dc(docker, run_args)
    env, mount_args = mounted_files(
        {
            **rabbitmq.worker_env,
            **contract_keys.worker_env,
            **contract_keys.result_env("image-test-worker"),
            **spec.worker_env,
            "ES4PS_WORKER_NAME": "image-test-worker",
        },
        tmp_path / "worker-files",
        uid=10001,
    )
    # as in the DC's pod: the worker runs unprivileged
    worker = docker.start(
        "--network",
        "host",
        "--user",
        "10001:10001",
        "--cap-drop",
        "ALL",
        # the DC's volume, shared as in the Pod: the worker keeps its record of applied tasks there
        "-v",
        f"{spec.data_dir}/es4ps-worker:{env['ES4PS_WORKER_STATE_DIR']}",
        *mount_args,
        *env_args(env),
        IMAGES["samba"].ref,
        "es4ps-worker",
    )
    client = TaskClient({**rabbitmq.portal_env, **contract_keys.portal_env})
    try:
        username = f"img{uuid.uuid4().hex[:6]}"
        task_id = client.submit(create_task(client, username, "Corr3ct-Horse-Battery"))
        try:
            event = client.wait_for(task_id, timeout_s=120)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nthe worker container's log:\n{docker.logs(worker)[-3000:]}") from None
    finally:
        client.close()
    assert event.outcome.value == "succeeded", (event, docker.logs(worker)[-3000:])
    assert event.worker == "image-test-worker"
    assert f"sAMAccountName: {username}" in ldap_search(
        spec, spec.base_dn, f"(sAMAccountName={username})", "sAMAccountName"
    )
