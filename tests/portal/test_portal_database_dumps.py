"""`es4ps-portal manage dump_database | restore_database` as the operator's backup and restore Jobs run them.

The `portal` step of each Job is taken from the Job the operator builds (es4ps_operator.builders.jobs) and
run here the way the kubelet runs that container: its command, with only its variables (a Secret's value
where one names it) on top of the image's own (images/django/Dockerfile: ENV, WORKDIR), its volumes as
local directories at the paths its variables and command name (an emptyDir writable by all, a Secret's
files owned by root with the volume's mode, the portal's volume as the portal leaves it), as the step's
user and groups, in a working directory it cannot write (the image's WORKDIR on a read-only root file
system). So a change of the Job's variables, mounts or user changes what runs here.

Run as root (as these tests are), the step runs as its own uid through setpriv, as es4ps_testkit.postgres
runs its server; run as another user, it runs as that user and the files' modes say less.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from es4ps_localcluster.paths import ROOT, VENV_BIN
from es4ps_operator import naming
from es4ps_operator.builders.jobs import WORK_DIR, backup_job, restore_job
from es4ps_operator.builders.portal import portal_spec_environment
from es4ps_operator.config import Images, OperatorConfig
from es4ps_testkit.domains import MINIMAL_SPEC, make_domain

CONFIG = OperatorConfig(images=Images(samba="es4ps/samba:test", portal="es4ps/portal:test", broker="rabbitmq:test"))
VOLUME_BACKUP = {"destination": {"volume": {"size": "2Gi"}}, "schedule": "0 2 * * *", "keep": 2}
DATABASE_SECRET = {"name": "acme-portal-database", "key": "url"}
BACKUP_OWNER = {"apiVersion": "es4ps.io/v1alpha1", "kind": "ES4PSBackup", "name": "b1", "uid": "u", "controller": True}
BACKUP_STATUS = {"location": "volume:acme-backups/acme/b1.tar.age", "sha256": "ab"}
DUMP = f"{WORK_DIR}/portal.db"  # where the backup's portal step writes and the restore's reads
AS_ROOT = os.getuid() == 0
PEOPLE = 40  # es4ps_testkit.portal_fill: every 20th never verified, the others with two tasks done

# Run in the step's own environment: what the portal's database holds, table by table, and its people.
READ_CONTENT = """
import json
from django.db import connection
from es4ps_portal.accounts.models import User
tables = {}
with connection.cursor() as cursor:
    for table in sorted(connection.introspection.table_names()):
        cursor.execute("SELECT * FROM " + connection.ops.quote_name(table))
        tables[table] = sorted(json.dumps(list(row), default=str) for row in cursor.fetchall())
users = sorted(User.objects.values_list("username", "email")) if User._meta.db_table in tables else []
print(json.dumps({"tables": tables, "users": users}))
"""


# Where the portal image's venv is (images/django/Dockerfile); here it is this one, VENV_BIN.
IMAGE_VENV_BIN = "/opt/es4ps/venv/bin"


def image_environment() -> tuple[dict[str, str], str]:
    """The portal image's ENV and WORKDIR (images/django/Dockerfile), as the image declares them."""
    lines = (ROOT / "images" / "django" / "Dockerfile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ENV "))
    text = ""
    for line in lines[start:]:
        text += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            break
    variables = dict(word.split("=", 1) for word in shlex.split(text)[1:])
    [workdir] = [line.split(None, 1)[1] for line in lines if line.startswith("WORKDIR ")]
    return variables, workdir


def _own(path: Path, uid: int, gid: int) -> None:
    if AS_ROOT:
        os.chown(path, uid, gid)


class PortalStep:
    """The `portal` container of a Job, run here as its Pod would run it (see the module's docstring)."""

    def __init__(
        self, job: dict, root: Path, claims: Mapping[str, Path], variables_from_secrets: Mapping[tuple[str, str], str]
    ) -> None:
        pod = job["spec"]["template"]["spec"]
        [self.container] = [c for c in (*pod.get("initContainers", ()), *pod["containers"]) if c["name"] == "portal"]
        pod_security = pod.get("securityContext", {})
        security = {**pod_security, **self.container.get("securityContext", {})}
        self.uid, self.gid = security["runAsUser"], security.get("runAsGroup", 0)
        fs_group = pod_security.get("fsGroup")
        # The runtime's groups: the primary one (the image's user has no other), the Pod's extra ones.
        self.groups = sorted({self.gid, *pod_security.get("supplementalGroups", ()), *([fs_group] if fs_group else [])})
        root.mkdir(parents=True)
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        self.mounts: dict[str, Path] = {}
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                local = claims[volume["persistentVolumeClaim"]["claimName"]]
            elif "emptyDir" in volume:
                local = root / mount["name"]
                local.mkdir()
                local.chmod(0o777)
            else:  # a Secret: files owned by root, or by the Pod's fsGroup, with the volume's mode
                local = root / mount["name"]
                local.mkdir()
                local.chmod(0o755)
                secret = volume["secret"]
                for item in secret["items"]:
                    file = local / item["path"]
                    file.write_text(secrets.token_urlsafe(50))
                    _own(file, 0, fs_group or 0)
                    file.chmod(item.get("mode", secret.get("defaultMode", 0o644)))
            self.mounts[mount["mountPath"]] = local
        image_env, workdir = image_environment()
        if self.local(workdir) == workdir:  # the image's own folder, on a read-only root file system
            self.cwd = root / "rootfs"
            self.cwd.mkdir()
            self.cwd.chmod(0o755)
        else:
            self.cwd = Path(self.local(workdir))
        # The image's variables, HOME (the image's user's: its WORKDIR), then the Job's and nothing else.
        # Paths inside the container are mapped onto the volumes' local folders first; only then does
        # the image's venv become this one (a checkout under /tmp must not see its venv mapped onto a
        # Job's /tmp volume).
        self.env = {**{name: self.local(value) for name, value in image_env.items()}, "HOME": str(self.cwd)}
        self.env["PATH"] = self.env["PATH"].replace(IMAGE_VENV_BIN, str(VENV_BIN))
        for variable in self.container["env"]:
            if "value" in variable:
                self.env[variable["name"]] = self.local(variable["value"])
            else:
                reference = variable["valueFrom"]["secretKeyRef"]
                self.env[variable["name"]] = variables_from_secrets[(reference["name"], reference["key"])]
        self.command = [self.local(argument) for argument in self.container["command"]]

    def local(self, value: str) -> str:
        """A path inside the container -> the local directory standing for its volume."""
        for mount_path, local in self.mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(local) + value[len(mount_path) :]
        return value

    def _argv(self, command: list[str]) -> list[str]:
        if not AS_ROOT:
            return command
        groups = ",".join(str(group) for group in self.groups)
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", f"--groups={groups}", "--", *command]

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """The step's own command (or another one, in the same container)."""
        argv = self._argv(list(command) or self.command)
        return subprocess.run(argv, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=300)

    def popen(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen(
            self._argv(list(command)),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def manage(self, *args: str) -> str:
        result = self.run("es4ps-portal", "manage", *args)
        assert result.returncode == 0, f"es4ps-portal manage {args[0]} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def content(self) -> dict:
        """Every row of every table of the step's portal database, and its people (username, e-mail)."""
        output = self.manage("shell", "--verbosity=0", "-c", READ_CONTENT)
        content = json.loads(output.strip().splitlines()[-1])
        content["users"] = [tuple(user) for user in content["users"]]
        return content


def sqlite_domain():
    """A domain whose portal keeps its data in SQLite on its volume (the default), with backups."""
    return make_domain(directory={"backup": VOLUME_BACKUP})


def postgresql_domain():
    """A domain whose portal keeps its data in PostgreSQL (a Secret holds the URL), with backups."""
    return make_domain(
        directory={"backup": VOLUME_BACKUP}, portal={**MINIMAL_SPEC["portal"], "databaseURLSecretRef": DATABASE_SECRET}
    )


def database_url(url: str) -> dict[tuple[str, str], str]:
    """The Secret's value that ES4PS_DATABASE_URL comes from."""
    return {(DATABASE_SECRET["name"], DATABASE_SECRET["key"]): url}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the step's user can reach (a test's tmp_path is under root's private /tmp/pytest-of-root)."""
    path = Path(tempfile.mkdtemp(prefix="es4ps-dumps-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def live_portal_volume(path: Path) -> Path:
    """The portal's volume while it runs: the portal's user owns it (its Pod's fsGroup) and what it wrote."""
    path.mkdir()
    _own(path, 10001, 10001)
    return path


def fresh_volume(path: Path) -> Path:
    """A volume just provisioned for a new domain's portal, as a strict provisioner makes it: root's, 0755."""
    path.mkdir()
    path.chmod(0o755)
    return path


def sqlite_restore(domain, root: Path, volume: Path) -> PortalStep:
    """The restore Job's portal step on `volume`, after the Job's step that gives the volume to the portal's user."""
    job = restore_job(domain, CONFIG, BACKUP_STATUS)
    pod = job["spec"]["template"]["spec"]
    [owner] = [c for c in pod["initContainers"] if c["name"] == "portal-volume"]
    [mount] = owner["volumeMounts"]
    [claim] = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == mount["name"]]
    assert claim == naming.portal_volume(domain)
    # As root, as the step runs (with CHOWN alone).
    subprocess.run([str(volume) if a == mount["mountPath"] else a for a in owner["command"]], check=True)
    return PortalStep(job, root, {claim: volume}, {})


def fill_portal(step: PortalStep, domain) -> list[tuple[str, str]]:
    """Migrations applied and PEOPLE people as registrations leave them (es4ps_testkit.portal_fill); their names."""
    step.manage("migrate", "--verbosity=0")
    email_domain = domain.allowed_email_domains[0]
    step.manage(
        "shell",
        "--verbosity=0",
        "-c",
        f"from es4ps_testkit.portal_fill import fill_users; fill_users({PEOPLE}, {email_domain!r}, prefix='dump')",
    )
    return sorted((f"dump{i}", f"dump{i}@{email_domain}") for i in range(PEOPLE))


def add_person(step: PortalStep, username: str) -> None:
    """What the portal does once it runs on a restored database: it writes."""
    step.manage(
        "shell",
        "--verbosity=0",
        "-c",
        f"from es4ps_portal.accounts.models import User; User.objects.create(username={username!r}, "
        f"email='{username}@acme.example')",
    )


def hand_over(dump: Path, restore: PortalStep) -> Path:
    """The dump where the restore Job's fetch step (root, umask 022) unpacks it."""
    target = Path(restore.local(DUMP))
    shutil.copyfile(dump, target)
    target.chmod(0o644)
    return target


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0, result.stdout
    assert f"CommandError: {message}" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_the_jobs_give_the_portal_step_only_these_variables():
    """What the other tests here run with (they take it from the Jobs; this says it in one place)."""
    sqlite = sqlite_domain()
    postgres = postgresql_domain()
    common = ["ES4PS_PORTAL_HOST", "ES4PS_REALM", "ES4PS_ALLOWED_EMAIL_DOMAINS", "DJANGO_SECRET_KEY_FILE"]
    for domain, database in ((sqlite, "ES4PS_DATA_DIR"), (postgres, "ES4PS_DATABASE_URL")):
        for job in (backup_job(domain, CONFIG, "b1", BACKUP_OWNER, []), restore_job(domain, CONFIG, BACKUP_STATUS)):
            pod = job["spec"]["template"]["spec"]
            [step] = [c for c in (*pod.get("initContainers", ()), *pod["containers"]) if c["name"] == "portal"]
            spec = [variable["name"] for variable in portal_spec_environment(domain)]
            assert [variable["name"] for variable in step["env"]] == [*common, *spec, database]


def test_sqlite_dump_of_a_running_portal_restores_once_into_an_empty_volume_and_never_over_a_portal(scratch):
    domain = sqlite_domain()
    claim = naming.portal_volume(domain)
    portal_volume = live_portal_volume(scratch / "portal-volume")
    backup = PortalStep(
        backup_job(domain, CONFIG, "b1", BACKUP_OWNER, []), scratch / "backup", {claim: portal_volume}, {}
    )
    people = fill_portal(backup, domain)

    # The portal runs on (its connection open, WAL mode) and has just written someone who is only in the WAL yet.
    portal = backup.popen(
        "es4ps-portal", "manage", "shell", "--verbosity=0", "-c",
        "import sys; from es4ps_portal.accounts.models import User; "
        "User.objects.create(username='walonly', email='walonly@acme.example'); print('written', flush=True); "
        "sys.stdin.read()",
    )  # fmt: skip
    try:
        assert portal.stdout.readline().strip() == "written", portal.stderr.read()
        assert (portal_volume / "portal.sqlite3-wal").stat().st_size > 0
        dumped = backup.run()
    finally:
        portal.communicate(timeout=60)
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    assert "sqlite database dumped to" in dumped.stdout
    dump = Path(backup.local(DUMP))
    original = backup.content()
    assert original["users"] == sorted([*people, ("walonly", "walonly@acme.example")])
    assert len(original["tables"]["accounts_provisioningtask"]) == 2 * (PEOPLE - PEOPLE // 20)

    # A new domain's restore Job, into its portal's fresh volume: the same rows, table by table.
    new_volume = fresh_volume(scratch / "new-portal-volume")
    restore = sqlite_restore(domain, scratch / "restore", new_volume)
    hand_over(dump, restore)
    restored = restore.run()
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert restored.stdout.strip().endswith(": restored")
    assert restore.content() == original

    # The portal starts and writes; the same Job run again (a retry) leaves all of it alone.
    add_person(restore, "afterrestore")
    again = restore.run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().endswith(": already restored")
    after = restore.content()
    assert after["users"] == sorted([*original["users"], ("afterrestore", "afterrestore@acme.example")])

    # Another backup's dump (of the restored portal, as it is now) over the restored portal: refused, nothing changed.
    other = PortalStep(backup_job(domain, CONFIG, "b2", BACKUP_OWNER, []), scratch / "other", {claim: new_volume}, {})
    assert other.run().returncode == 0
    hand_over(Path(other.local(DUMP)), restore)
    assert_refused(restore.run(), f"{new_volume}/portal.sqlite3 holds a portal already: not restored over it")
    assert restore.content() == after

    # The dump over the portal it came from (never restored, so no marker): refused, nothing changed.
    over = PortalStep(restore_job(domain, CONFIG, BACKUP_STATUS), scratch / "over", {claim: portal_volume}, {})
    hand_over(dump, over)
    before = over.content()
    assert_refused(over.run(), f"{portal_volume}/portal.sqlite3 holds a portal already: not restored over it")
    assert over.content() == before
    assert not (portal_volume / ".es4ps-restored").exists()


def test_postgresql_dump_restores_once_into_an_empty_database_and_never_over_a_portal(scratch, postgres):
    domain = postgresql_domain()
    source = database_url(postgres.create_database("dumps_portal"))
    backup = PortalStep(backup_job(domain, CONFIG, "b1", BACKUP_OWNER, []), scratch / "backup", {}, source)
    people = fill_portal(backup, domain)
    dumped = backup.run()
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    assert "postgresql database dumped to" in dumped.stdout
    dump = Path(backup.local(DUMP))
    original = backup.content()
    assert original["users"] == people
    assert len(original["tables"]["accounts_provisioningtask"]) == 2 * (PEOPLE - PEOPLE // 20)

    # A new domain's restore Job, into an empty database: the same rows, table by table.
    target = database_url(postgres.create_database("dumps_restored"))
    restore = PortalStep(restore_job(domain, CONFIG, BACKUP_STATUS), scratch / "restore", {}, target)
    hand_over(dump, restore)
    restored = restore.run()
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert restored.stdout.strip().endswith(": restored")
    assert portal_tables(restore.content()) == portal_tables(original)

    # The portal starts and writes; the same Job run again (a retry) leaves all of it alone.
    add_person(restore, "afterrestore")
    again = restore.run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().endswith(": already restored")
    after = restore.content()
    assert after["users"] == sorted([*people, ("afterrestore", "afterrestore@acme.example")])

    # Another backup's dump over the restored portal: refused, nothing changed.
    other = PortalStep(backup_job(domain, CONFIG, "b2", BACKUP_OWNER, []), scratch / "other", {}, target)
    assert other.run().returncode == 0
    hand_over(Path(other.local(DUMP)), restore)
    assert_refused(restore.run(), "the database holds a portal already: not restored over it")
    assert restore.content() == after

    # The dump over the portal it came from: refused, nothing changed.
    over = PortalStep(restore_job(domain, CONFIG, BACKUP_STATUS), scratch / "over", {}, source)
    hand_over(dump, over)
    assert_refused(over.run(), "the database holds a portal already: not restored over it")
    assert over.content() == original


def test_a_postgresql_restore_that_fails_half_way_leaves_the_database_empty_for_the_jobs_retry(scratch, postgres):
    domain = postgresql_domain()
    backup = PortalStep(
        backup_job(domain, CONFIG, "b1", BACKUP_OWNER, []),
        scratch / "backup",
        {},
        database_url(postgres.create_database("dumps_whole")),
    )
    fill_portal(backup, domain)
    assert backup.run().returncode == 0
    dump = Path(backup.local(DUMP))
    cut = scratch / "cut.db"  # the schema (at the start of the archive) is whole, the last table's data is not
    cut.write_bytes(dump.read_bytes()[:-64])
    target = database_url(postgres.create_database("dumps_cut"))
    restore = PortalStep(restore_job(domain, CONFIG, BACKUP_STATUS), scratch / "restore", {}, target)
    hand_over(cut, restore)

    failed = restore.run()

    assert failed.returncode != 0
    assert "CommandError: pg_restore failed:" in failed.stderr, failed.stderr[-3000:]
    assert restore.content()["tables"] == {}
    hand_over(dump, restore)  # the Job's next Pod (the file fetched whole this time)
    retried = restore.run()
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert portal_tables(restore.content()) == portal_tables(backup.content())


def portal_tables(content: dict) -> dict:
    """The portal's own tables (without what a restore records about itself)."""
    return {**content, "tables": {k: v for k, v in content["tables"].items() if not k.startswith("es4ps_restore")}}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_file_that_is_no_dump_is_refused_and_nothing_is_written(scratch, request, backend):
    junk = scratch / "junk"
    junk.write_bytes(b"this is not a dump of anything\n" * 100)
    if backend == "sqlite":
        domain = sqlite_domain()
        volume = fresh_volume(scratch / "new-portal-volume")
        restore = sqlite_restore(domain, scratch / "restore", volume)
        message = "the dump is not an SQLite database (a PostgreSQL portal's dump needs PostgreSQL)"
    else:
        domain = postgresql_domain()
        url = database_url(request.getfixturevalue("postgres").create_database("dumps_junk"))
        restore = PortalStep(restore_job(domain, CONFIG, BACKUP_STATUS), scratch / "restore", {}, url)
        message = "the dump is not a PostgreSQL dump (an SQLite portal's dump needs SQLite)"
    hand_over(junk, restore)

    assert_refused(restore.run(), message)

    if backend == "sqlite":
        assert list(volume.iterdir()) == []
    else:
        assert restore.content()["tables"] == {}
