"""The environment between the operator and the images is one fact: what the builders write, the images read.

The operator's builders give each container of the example domain its
variables; each image declares the variables it reads (es4ps_contract's
`Variable`). A variable renamed on one side fails here: every variable written
must be declared by the image, every required one must be written, and the DC's
and the worker's own readers must accept the values (with the mounted files
stood in by temporary ones). docs/interfaces.md's tables are rendered from the
same declarations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from es4ps_contract.environment import Variable
from es4ps_contract.keys import generate_sealing_keypair, generate_signing_keypair
from es4ps_contract.passwords import PasswordPolicy
from es4ps_devtools.docs import generated_sources, render_document
from es4ps_operator.builders import build_desired_state
from es4ps_portal import environment as portal_environment
from es4ps_samba.dc import config as dc_config
from es4ps_samba.dc.config import DCConfig
from es4ps_samba.worker import config as worker_config
from es4ps_samba.worker.config import WorkerConfig
from es4ps_testkit.domains import default_password_policy, make_domain

ROOT = Path(__file__).resolve().parents[3]

# The image and declaration behind each container the operator writes (the broker is stock RabbitMQ, the
# DC Pod's resolver is dnsmasq on its command line: neither reads ES4PS variables).
UNDECLARED = {"rabbitmq", "resolver"}
DECLARATIONS: dict[str, tuple[Variable, ...]] = {
    "dc": dc_config.VARIABLES,
    "worker": worker_config.VARIABLES,
    "portal": portal_environment.VARIABLES,
    "consumer": portal_environment.VARIABLES,
}


def written_containers(domain, config):
    """(StatefulSet, container) -> container, for every container the builders write."""
    found = {}
    for manifest in build_desired_state(domain, config).manifests():
        if manifest["kind"] == "StatefulSet":
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                found[(manifest["metadata"]["name"], container["name"])] = container
    return found


@pytest.fixture
def example_containers(acme, config):
    containers = written_containers(acme, config)
    assert {name for _sts, name in containers} == {*DECLARATIONS, *UNDECLARED}
    return containers


def test_every_variable_written_is_read_and_every_required_one_is_written(example_containers):
    for (statefulset, name), container in example_containers.items():
        if name in UNDECLARED:
            continue
        written = {variable["name"] for variable in container["env"]}
        declared = {variable.name for variable in DECLARATIONS[name]}
        required = {variable.name for variable in DECLARATIONS[name] if variable.required}
        assert written <= declared, f"{statefulset}/{name} is given variables its image never reads"
        assert required <= written, f"{statefulset}/{name} lacks variables its image needs"


def resolved_environment(container, tmp_path: Path) -> dict[str, str]:
    """The container's variables as its process would see them: fields filled in, mounted files made."""
    mounts = {mount["mountPath"]: tmp_path / mount["name"] for mount in container["volumeMounts"]}
    environ = {}
    for variable in container["env"]:
        value = variable.get("value", "")
        if "valueFrom" in variable:
            value = "192.0.2.10"  # status.podIP / status.hostIP
        mount_path = next((path for path in mounts if value.startswith(path + "/")), None)
        if mount_path is not None:
            value = str(mounts[mount_path] / value[len(mount_path) + 1 :])
        environ[variable["name"]] = value
    return environ


def write_secret_files(tmp_path: Path) -> None:
    """Stand-ins for the Secrets the operator mounts (keys in the contract's format, passwords)."""
    sealing_private, _ = generate_sealing_keypair()
    _, signing_public = generate_signing_keypair()
    result_private, _ = generate_signing_keypair()
    files = {
        "worker-keys/sealing-private.key": sealing_private,
        "worker-keys/signing-public.key": signing_public,
        "result-key/private.key": result_private,
        "worker-credentials/password": "W0rker-pass",
        "admin/password": "Adm1n-pass",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)


def test_the_dc_and_the_worker_read_what_the_operator_writes(example_containers, config, tmp_path):
    write_secret_files(tmp_path)
    dc = DCConfig.from_env(resolved_environment(example_containers[("acme-dc0", "dc")], tmp_path))
    assert (dc.realm, dc.hostname, dc.role, dc.users_ou, dc.worker_account) == (
        "AD.ACME.EXAMPLE",
        "dc0",
        "provision",
        "OU=ES4PS",
        "es4ps-worker",
    )
    assert dc.worker_password() == "W0rker-pass"
    assert dc.password_policy == default_password_policy()  # examples/acme.yaml writes the defaults out
    second_dc = written_containers(make_domain(directory={"replicas": 2}), config)[("acme-dc1", "dc")]
    joined = DCConfig.from_env(resolved_environment(second_dc, tmp_path))
    assert (joined.role, joined.join_server) == ("join", "acme-dc0.acme.svc.cluster.local")
    assert joined.password_policy is None  # dc0 writes the domain's policy; it replicates

    worker_config = WorkerConfig.from_env(resolved_environment(example_containers[("acme-dc0", "worker")], tmp_path))
    assert (worker_config.account, worker_config.password, worker_config.users_ou) == (
        dc.worker_account,
        dc.worker_password(),
        dc.users_ou,
    )


def test_the_portal_reads_the_policies_and_unix_attributes_the_operator_writes(example_containers):
    from es4ps_portal.accounts.email_domains import parse_allowed_domains
    from es4ps_portal.provisioning.policies import parse_policies, parse_unix, policy_for

    environ = {
        variable["name"]: variable.get("value") for variable in example_containers[("acme-portal", "portal")]["env"]
    }
    unix = parse_unix(environ["ES4PS_UNIX_ATTRIBUTES"])
    allowed = parse_allowed_domains(environ["ES4PS_ALLOWED_EMAIL_DOMAINS"])
    policies = parse_policies(environ["ES4PS_POLICIES"], allowed, unix)
    assert (unix.uid_range, unix.gid_number, unix.login_shell) == ((10000, 999999), 10513, "/bin/bash")
    students = policy_for("ana@students.acme.example", policies)
    assert (students.ou, students.groups, students.uid_range) == ("Students", ("students", "wifi"), (1000000, 1999999))
    assert (students.computers_per_person, policy_for("bo@acme.org", policies).computers_per_person) == (2, 0)
    assert (environ["ES4PS_REGISTRATION_APPROVAL"], environ["ES4PS_AUDIT_RETENTION_DAYS"]) == ("Automatic", "365")


def test_only_dc0s_worker_creates_policies_ous_and_groups(config):
    containers = written_containers(make_domain(directory={"replicas": 3}), config)
    creates = {
        sts: {v["name"]: v.get("value") for v in container["env"]}["ES4PS_WORKER_CREATES_CONTAINERS"]
        for (sts, name), container in containers.items()
        if name == "worker"
    }
    assert creates == {"acme-dc0": "1", "acme-dc1": "0", "acme-dc2": "0"}


def test_the_portal_reads_the_limits_policy_and_language_the_operator_writes(example_containers):
    environ = {
        variable["name"]: variable.get("value") for variable in example_containers[("acme-portal", "portal")]["env"]
    }
    limits = portal_environment.parse_rate_limits(environ["ES4PS_RATE_LIMITS"])
    assert limits["register"]["ip"] == (600, 3600)
    assert PasswordPolicy.from_json(environ["ES4PS_PASSWORD_POLICY"]) == default_password_policy()
    assert portal_environment.parse_reminder_days(environ["ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS"]) == (14, 3)
    assert portal_environment.LANGUAGE_CODES[environ["ES4PS_DEFAULT_LANGUAGE"]] == "en"


@pytest.mark.parametrize(
    ("document", "sources"),
    [
        (
            "interfaces.md",
            {
                "es4ps_samba.dc.config:VARIABLES",
                "es4ps_samba.dc.existing:VARIABLES",
                "es4ps_samba.worker.config:VARIABLES",
                "es4ps_samba.backup.cli:VARIABLES",
                "es4ps_samba.files.config:VARIABLES",
                "es4ps_portal.environment:VARIABLES",
            },
        ),
        ("operator.md", {"es4ps_operator.config:VARIABLES"}),
    ],
)
def test_the_documents_tables_are_rendered_from_the_declarations(document, sources):
    text = (ROOT / "docs" / document).read_text()
    assert set(generated_sources(text)) >= sources
    assert render_document(text) == text, f"docs/{document} is out of date: run `make docs`"
