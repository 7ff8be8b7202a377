"""The file server's manifests (es4ps_operator.builders.files): what spec.fileServices turns into, its metrics'
PodMonitor, NetworkPolicy and alerts."""

from __future__ import annotations

import json

import yaml
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.files import build_files
from es4ps_operator.builders.monitoring import alert_rules, build_monitoring
from es4ps_samba.files.config import FilesConfig
from es4ps_testkit.domains import make_domain
from test_operator_placement_monitoring import promtool

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


def test_the_file_servers_metrics_are_scraped_and_opened_to_prometheus_only(config):
    domain = make_domain(
        fileServices=FILES, policies=POLICIES, directory={"unix": {"enabled": True}}, monitoring={"enabled": True}
    )
    written = [*build_desired_state(domain, config).manifests(), *build_monitoring(domain)]
    found = {(m["kind"], m["metadata"]["name"]): m for m in written}
    (endpoint,) = found[("PodMonitor", "acme-files")]["spec"]["podMetricsEndpoints"]
    (container,) = found[("StatefulSet", "acme-files")]["spec"]["template"]["spec"]["containers"]
    declared = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert declared == {"smb": 445, "metrics": 9935} and endpoint["port"] == "metrics"
    assert FilesConfig.from_env({e["name"]: e["value"] for e in container["env"]}).metrics_port == 9935
    # SMB for everyone; the metrics port for Prometheus's namespace only.
    scraper = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert found[("NetworkPolicy", "acme-files")]["spec"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": 445}]},
        {"from": scraper, "ports": [{"protocol": "TCP", "port": "metrics"}]},
    ]
    # Without monitoring nobody is let in to the metrics port; without a file server there is no policy.
    unmonitored = build_desired_state(files_domain(), config).manifests()
    policy = next(m for m in unmonitored if (m["kind"], m["metadata"]["name"]) == ("NetworkPolicy", "acme-files"))
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 445}]}]
    assert "acme-files" not in {m["metadata"]["name"] for m in build_desired_state(make_domain(), config).manifests()}


def test_the_file_server_alerts_fire_on_a_broken_trust_homes_over_quota_and_a_full_volume_and_not_before(tmp_path):
    rules = alert_rules(make_domain(fileServices=FILES, policies=POLICIES, directory={"unix": {"enabled": True}}))
    assert "ES4PSFileServerDown" not in {r["alert"] for r in alert_rules(make_domain())}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "es4ps", "rules": rules}]}))
    files = 'namespace="acme",pod="acme-files-0"'

    def case(series, name, fires):
        expected = [
            {"exp_labels": {"es4ps_domain": "acme", "severity": severity},
             "exp_annotations": next(r["annotations"] for r in rules if r["alert"] == name)}
            for severity in fires
        ]  # fmt: skip
        return {"interval": "1m", "input_series": series,
                "alert_rule_test": [{"eval_time": "90m", "alertname": name, "exp_alerts": expected}]}  # fmt: skip

    def volume(free):
        return [{"series": f"es4ps_files_volume_size_bytes{{{files}}}", "values": "1000x100"},
                {"series": f"es4ps_files_volume_free_bytes{{{files}}}", "values": f"{free}x100"}]  # fmt: skip

    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
        case([{"series": f"es4ps_files_trust_ok{{{files}}}", "values": "0x100"}],
             "ES4PSFileServerTrustBroken", ["critical"]),
        case([{"series": f"es4ps_files_trust_ok{{{files}}}", "values": "1x100"}], "ES4PSFileServerTrustBroken", []),
        case([{"series": f"es4ps_files_homes_over_quota{{{files}}}", "values": "2x100"}],
             "ES4PSFileServerHomesOverQuota", ["warning"]),
        case([{"series": f"es4ps_files_homes_over_quota{{{files}}}", "values": "0x100"}],
             "ES4PSFileServerHomesOverQuota", []),
        case(volume(50), "ES4PSFileServerVolumeLow", ["warning"]),
        case(volume(500), "ES4PSFileServerVolumeLow", []),
    ]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    tested = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
