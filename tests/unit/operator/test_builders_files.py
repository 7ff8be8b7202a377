"""The file server's manifests (es4ps_operator.builders.files): what spec.fileServices turns into."""

from __future__ import annotations

import json

from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.files import build_files
from es4ps_samba.files.config import FilesConfig
from es4ps_testkit.domains import make_domain

FILES = {
    "storage": {"size": "50Gi"},
    "homes": {"quota": "2Gi"},
    "shares": [
        {"name": "students", "groups": ["students"]},
        {"name": "staff", "groups": ["staff"], "access": "readOnly"},
    ],
}
POLICIES = [
    {"emailDomain": "students.acme.example", "groups": ["students"], "uidRange": {"start": 1000000, "end": 1999999}},
    {"emailDomain": "staff.acme.example", "groups": ["staff"]},
]


def files_domain(**changes):
    return make_domain(fileServices=FILES | changes, policies=POLICIES, directory={"unix": {"enabled": True}})


def test_no_file_server_without_file_services(config):
    state = build_desired_state(make_domain(), config)
    assert not state.applied["files"]
    assert "acme-files-machine" not in {secret.name for secret in state.generated_secrets}


def test_the_file_server_runs_the_samba_image_s_entrypoint_with_its_own_volume_and_secrets(config):
    domain = files_domain()
    service, statefulset = build_files(domain, config)
    assert (service["metadata"]["name"], service["spec"]["ports"][0]["port"]) == ("acme-files", 445)
    assert statefulset["spec"]["replicas"] == 1
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (container["image"], container["command"]) == ("es4ps/samba:test", ["es4ps-files", "run"])
    assert "fsGroup" not in pod["securityContext"]  # it would re-own every home
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    secrets = {volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
    assert secrets == {"acme-samba-admin", "acme-files-machine"}
    assert "acme-files-machine" in {secret.name for secret in build_desired_state(domain, config).generated_secrets}


def test_the_entrypoint_reads_what_the_operator_writes(config, tmp_path):
    (_service, statefulset) = build_files(files_domain(), config)
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    environ = {variable["name"]: variable["value"] for variable in container["env"]}
    read = FilesConfig.from_env(environ)
    assert (read.realm, read.workgroup, read.hostname) == ("AD.ACME.EXAMPLE", "AD", "files")
    assert read.join_server == "acme-dc0.acme.svc.cluster.local"
    assert read.homes_quota_bytes == 2 * 1024**3
    assert [(s.name, s.groups, s.access) for s in read.shares] == [
        ("students", ("students",), "readWrite"),
        ("staff", ("staff",), "readOnly"),
    ]
    # Every policy's uid range is in the server's id range (the students' own one too).
    assert read.id_range == (10000, 1999999)
    assert json.loads(environ["ES4PS_FILES_SHARES"])[0]["access"] == "readWrite"


def test_replicas_zero_keeps_the_statefulset_and_its_volume(config):
    (_service, statefulset) = build_files(files_domain(replicas=0), config)
    assert statefulset["spec"]["replicas"] == 0
    assert statefulset["spec"]["volumeClaimTemplates"]
