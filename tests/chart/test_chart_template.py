"""The chart renders what it promises, without a cluster: lint, schema, determinism, least RBAC, the CRD."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from es4ps_devtools import deployment as steps
from es4ps_testkit.tls_scan import modern_suite

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "es4ps"
CRD_CHART = ROOT / "charts" / "es4ps-crds"
HELM = str(ROOT / ".local" / "bin" / "helm")
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([HELM, *args], capture_output=True, text=True, env={**os.environ, "HELM_CACHE_HOME": "/tmp"})
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(*values: str) -> list[dict]:
    args = []
    for v in values:
        args += ["--set", v]
    return [d for d in yaml.safe_load_all(helm("template", "es4ps", str(CHART), "-n", "es4ps", *args).stdout) if d]


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_lint_strict(values):
    helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))


def test_crd_chart_lints():
    helm("lint", "--strict", str(CRD_CHART))


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("replicas=2", "replicas"),  # a typo of replicaCount: unknown keys are refused
        ("replicaCount=two", "replicaCount"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("operator.logFormat=xml", "logFormat"),
        ("domain.enabled=true", "name"),
        ("metrics.service.port=70000", "port"),
        ("domain.name=Not_A_Name", "name"),
    ],
)
def test_schema_refuses_bad_values_naming_the_field(setting, named):
    proc = helm("template", "es4ps", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert named in proc.stderr


def test_rendering_is_deterministic():
    args = ("template", "es4ps", str(CHART), "-f", str(CHART / "ci" / "domain-values.yaml"))
    assert helm(*args).stdout == helm(*args).stdout


def test_rbac_is_the_operators_tested_rules_without_wildcards():
    roles = {d["kind"]: d for d in render() if d["kind"] in ("ClusterRole", "Role")}
    reference = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "operator" / "deploy" / "rbac.yaml").read_text())}
    assert roles["ClusterRole"]["rules"] == reference["ClusterRole"]["rules"]
    assert roles["Role"]["rules"] == reference["Role"]["rules"]
    for rule in roles["ClusterRole"]["rules"] + roles["Role"]["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_crd_chart_is_the_repository_crds_kept_on_uninstall():
    rendered = [d for d in yaml.safe_load_all(helm("template", "crds", str(CRD_CHART)).stdout) if d]
    sources = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("es4ps.io_*.yaml"))]
    assert {d["kind"] for d in rendered} == {"CustomResourceDefinition"}
    assert {d["metadata"]["name"]: d["spec"] for d in rendered} == {s["metadata"]["name"]: s["spec"] for s in sources}
    for crd in rendered:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not any(d["kind"] == "CustomResourceDefinition" for d in render())


def test_app_version_is_the_project_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == (ROOT / "VERSION").read_text().strip()
    assert yaml.safe_load((CRD_CHART / "Chart.yaml").read_text())["appVersion"] == chart["appVersion"]
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"es4ps/operator:{chart['appVersion']}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ES4PS_SAMBA_IMAGE"] == f"es4ps/samba:{chart['appVersion']}"


def test_domain_from_values_is_rendered_as_given():
    docs = render(
        "domain.enabled=true",
        "domain.name=acme",
        "domain.namespace=acme",
        "domain.spec.realm=AD.ACME.EXAMPLE",
        "domain.spec.allowedEmailDomains={acme.example}",
        "domain.spec.portal.host=accounts.acme.example",
    )
    domain = next(d for d in docs if d["kind"] == "ES4PSDomain")
    assert domain["metadata"] == {**domain["metadata"], "name": "acme", "namespace": "acme"}
    assert domain["spec"] == {
        "realm": "AD.ACME.EXAMPLE",
        "allowedEmailDomains": ["acme.example"],
        "portal": {"host": "accounts.acme.example"},
    }


def test_with_watch_namespaces_the_operator_holds_no_cluster_wide_right():
    objects = render("watchNamespaces={acme,acme-test}")
    kinds = {(o["kind"], o["metadata"].get("namespace")) for o in objects if o["kind"].endswith(("Role", "Binding"))}
    assert not {kind for kind, _ in kinds} & {"ClusterRole", "ClusterRoleBinding"}
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    assert set(roles) == {
        ("acme", "es4ps"),
        ("acme-test", "es4ps"),
        ("kube-system", "es4ps-cluster-dns"),
        ("es4ps", "es4ps-leader-election"),
    }
    granted = [rule for rule in roles[("acme", "es4ps")]["rules"] for _ in rule["resources"]]
    assert any("secrets" in rule["resources"] for rule in granted)
    assert not any({"customresourcedefinitions", "namespaces"} & set(rule["resources"]) for rule in granted)
    assert roles[("kube-system", "es4ps-cluster-dns")]["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "resourceNames": ["kube-dns"], "verbs": ["get"]}
    ]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ES4PS_NAMESPACES"] == "acme,acme-test"


def test_a_given_cluster_dns_address_needs_no_right_in_kube_system():
    objects = render("watchNamespaces={acme}", "operator.clusterDNSIP=10.96.0.10")
    assert not [o for o in objects if o["metadata"].get("namespace") == "kube-system"]


def test_domains_may_name_images_only_from_the_registries_the_values_allow():
    [deployment] = [
        o
        for o in render("operator.images.allowedRegistries={registry.acme.example/es4ps}")
        if o["kind"] == "Deployment"
    ]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ES4PS_ALLOWED_IMAGE_REGISTRIES"] == "registry.acme.example/es4ps"
    [default] = [o for o in render() if o["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in default["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ES4PS_ALLOWED_IMAGE_REGISTRIES"] == ""


def test_the_grafana_dashboard_is_a_configmap_for_the_sidecar_with_the_data_path():
    assert not [d for d in render() if d["kind"] == "ConfigMap"]
    (dashboard,) = [d for d in render("metrics.grafanaDashboard.enabled=true") if d["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    content = json.loads(dashboard["data"]["es4ps-data-path.json"])
    expressions = [t["expr"] for panel in content["panels"] for t in panel["targets"]]
    assert any('queue="es4ps.provisioning"' in e for e in expressions)
    assert any("es4ps_worker_tasks_total" in e for e in expressions)
    assert any("es4ps_dc_replication_healthy" in e for e in expressions)


def test_the_ingress_examples_are_the_settings_the_project_runs_with():
    """ci/domain-values.yaml is examples/acme.yaml's ingress-nginx; ci/traefik-values.yaml and the Traefik
    variant in the example's comment are what `make demo` and the e2e tests give their Traefik."""
    example_text = (ROOT / "examples" / "acme.yaml").read_text()
    example = yaml.safe_load(example_text)["spec"]["portal"]["ingress"]

    def ingress_of(values: str) -> dict:
        return yaml.safe_load((CHART / "ci" / values).read_text())["domain"]["spec"]["portal"]["ingress"]

    assert ingress_of("domain-values.yaml") == {key: v for key, v in example.items() if key != "trustedProxies"}
    assert ingress_of("traefik-values.yaml") == steps.domain_ingress()
    commented = re.search(r"^ +#   ingress:\n((?: +#     .*\n)+)", example_text, re.MULTILINE)
    assert commented, "examples/acme.yaml no longer shows the Traefik variant"
    lines = [line.split("#     ", 1)[1] for line in commented.group(1).splitlines()]
    assert yaml.safe_load("\n".join(lines)) == steps.domain_ingress()


def test_the_operators_pod_takes_the_overrides_a_domains_components_take():
    values = CHART / "ci" / "placement-values.yaml"
    docs = yaml.safe_load_all(helm("template", "es4ps", str(CHART), "-n", "es4ps", "-f", str(values)).stdout)
    by_kind = {d["kind"]: d for d in docs if d}
    template = by_kind["Deployment"]["spec"]["template"]
    spec, given = template["spec"], yaml.safe_load(values.read_text())
    for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "imagePullSecrets"):
        assert spec[field] == given[field], field
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["containers"][0]["resources"] == given["resources"]
    assert template["metadata"]["annotations"] == {"example.com/owner": "platform"}
    assert template["metadata"]["labels"]["team"] == "platform"
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "es4ps"  # the chart's own label wins
    assert by_kind["ServiceAccount"]["metadata"]["annotations"] == {"iam.example.com/role": "arn:operator"}


def test_the_traefik_tls_option_allows_tls12_and_up_with_modern_suites_and_is_the_one_the_demo_names():
    assert not [d for d in render() if d["kind"] == "TLSOption"]
    (option,) = [d for d in render("traefikTLSOption.enabled=true") if d["kind"] == "TLSOption"]
    assert option["metadata"]["namespace"] == "es4ps"
    assert option["spec"]["minVersion"] == "VersionTLS12"
    assert option["spec"]["cipherSuites"] and all(modern_suite(s) for s in option["spec"]["cipherSuites"])
    assert f"{steps.OPERATOR_NAMESPACE}-{option['metadata']['name']}@kubernetescrd" == steps.TLS_OPTIONS
