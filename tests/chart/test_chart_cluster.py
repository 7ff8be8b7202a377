"""The charts on the local KWOK cluster, as a platform engineer uses them with GitOps.

`helm install` of es4ps-crds and es4ps with a domain from values; the operator's
Pod runs on the KWOK node (simulated), so the operator itself runs here as a
process with nothing but the token of the ServiceAccount the chart made: its
reconciliation to Ready proves the chart's RBAC suffices. Then `helm upgrade`
(a changed value, a CRD that gains a field) and `helm uninstall`.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
import yaml
from es4ps_localcluster.paths import ROOT
from es4ps_testkit.operator_harness import OperatorProcess, drop_finalizers, service_account_kubeconfig

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "es4ps"
CRD_CHART = ROOT / "charts" / "es4ps-crds"
DOMAIN_SPEC = {
    "realm": "AD.GITOPS.EXAMPLE",
    "organizationName": "GitOps Example",
    "allowedEmailDomains": ["gitops.example"],
    # a mail server: without one nobody could confirm an address, and the domain is not Ready
    "portal": {
        "host": "accounts.gitops.example",
        "smtp": {"host": "smtp.gitops.example", "from": "accounts@gitops.example"},
    },
}


def install_crd_chart(cluster) -> None:
    """`helm upgrade --install es4ps-crds`, adopting the CRD when other tests applied it with kubectl
    (Helm's documented adoption: its ownership label and annotations on the existing object)."""
    if cluster.get("crd", "es4psdomains.es4ps.io", check=False):
        ownership = {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "es4ps-crds", "meta.helm.sh/release-namespace": "default"},
        }
        cluster.merge_patch("crd", "es4psdomains.es4ps.io", {"metadata": ownership})
    cluster.helm("upgrade", "--install", "es4ps-crds", str(CRD_CHART), "-n", "default", "--wait")


@pytest.fixture
def release(cluster, namespace, tmp_path):
    """Install both charts (operator namespace = the test's), the domain in the same namespace."""
    release_name = f"es4ps-{uuid.uuid4().hex[:6]}"
    values = tmp_path / "values.yaml"

    def helm_values(**spec_changes) -> str:
        values.write_text(
            yaml.safe_dump({"domain": {"enabled": True, "name": "gitops", "spec": {**DOMAIN_SPEC, **spec_changes}}})
        )
        return str(values)

    install_crd_chart(cluster)
    cluster.helm("install", release_name, str(CHART), "-n", namespace, "-f", helm_values())
    yield release_name, helm_values
    cluster.helm("uninstall", release_name, "-n", namespace, check=False)
    drop_finalizers(cluster, "gitops", namespace)


def run_operator_as_the_chart_account(cluster, namespace, release_name, tmp_path) -> OperatorProcess:
    account = cluster.get("deployment", release_name, namespace)["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", [namespace], namespace)
    operator.wait_until(operator.is_leader, 60, "leadership")
    return operator


def domain_ready(cluster, namespace) -> bool:
    domain = cluster.get("es4psdomain", "gitops", namespace, check=False)
    conditions = {c["type"]: c["status"] for c in domain.get("status", {}).get("conditions", [])}
    return (
        conditions.get("Ready") == "True"
        and domain["status"].get("observedGeneration") == domain["metadata"]["generation"]
    )


def test_install_upgrade_and_uninstall_as_a_platform_engineer(cluster, namespace, release, tmp_path):
    release_name, helm_values = release
    # the operator Deployment rolls out (its Pod Running on the KWOK node)
    cluster.kubectl("rollout", "status", f"deployment/{release_name}", "-n", namespace, "--timeout=120s")
    pods = cluster.get("pods", namespace=namespace)["items"]
    assert any(p["status"]["phase"] == "Running" for p in pods if p["metadata"]["name"].startswith(release_name))

    # the chart's ServiceAccount and RBAC are enough for the operator's real API calls
    operator = run_operator_as_the_chart_account(cluster, namespace, release_name, tmp_path)
    try:
        cluster.eventually(
            lambda: domain_ready(cluster, namespace),
            timeout=180,
            interval=1,
            message=f"the domain from values Ready\n{operator.log()[-3000:]}",
        )
        forbidden = [line for line in operator.log().splitlines() if "403" in line or "forbidden" in line.lower()]
        assert not forbidden, forbidden[:5]
        printed = cluster.kubectl("get", "es4psdomains", "-n", namespace).stdout
        assert "AD.GITOPS.EXAMPLE" in printed and "True" in printed

        # helm upgrade with a changed value reaches the domain and its portal; volumes are untouched
        claims = {c["metadata"]["name"]: c["metadata"]["uid"] for c in cluster.get("pvc", namespace=namespace)["items"]}
        assert claims
        cluster.helm(
            "upgrade",
            release_name,
            str(CHART),
            "-n",
            namespace,
            "-f",
            helm_values(organizationName="GitOps Example Renamed"),
        )

        def portal_renamed() -> bool:
            portal = cluster.get("statefulset", "gitops-portal", namespace)
            env = {e["name"]: e.get("value") for e in portal["spec"]["template"]["spec"]["containers"][0]["env"]}
            return env.get("ES4PS_ORGANIZATION_NAME") == "GitOps Example Renamed"

        cluster.eventually(portal_renamed, timeout=60, message="the new organisation name in the portal's Pods")
        cluster.eventually(lambda: domain_ready(cluster, namespace), timeout=120, message="Ready after the upgrade")
        after = {c["metadata"]["name"]: c["metadata"]["uid"] for c in cluster.get("pvc", namespace=namespace)["items"]}
        assert after == claims
    finally:
        operator.stop()

    # helm uninstall: the operator goes; the CRD, the domain and its data stay
    cluster.helm("uninstall", release_name, "-n", namespace)
    assert not cluster.get("deployment", release_name, namespace, check=False)
    assert cluster.get("crd", "es4psdomains.es4ps.io", check=False)
    assert cluster.get("es4psdomain", "gitops", namespace, check=False)
    remaining = {c["metadata"]["uid"] for c in cluster.get("pvc", namespace=namespace)["items"]}
    assert remaining == set(claims.values())


def test_an_upgraded_crd_chart_makes_a_new_field_accepted(cluster, namespace, tmp_path):
    install_crd_chart(cluster)
    domain = {
        "apiVersion": "es4ps.io/v1alpha1",
        "kind": "ES4PSDomain",
        "metadata": {"name": "future", "namespace": namespace},
        "spec": {**DOMAIN_SPEC, "paused": True, "futureSetting": "on"},
    }
    refused = cluster.kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(domain), check=False
    )
    assert refused.returncode != 0 and "futureSetting" in refused.stderr

    # the next version of the CRD chart: the same chart, its CRD with one more field
    newer = tmp_path / "es4ps-crds"
    shutil.copytree(CRD_CHART, newer, symlinks=False)
    crd_file = newer / "files" / "es4ps.io_es4psdomains.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["futureSetting"] = {"type": "string", "description": "A field of a newer version."}
    crd_file.write_text(yaml.safe_dump(crd))
    try:
        cluster.helm("upgrade", "es4ps-crds", str(newer), "--wait")
        cluster.eventually(
            lambda: (
                cluster.kubectl(
                    "apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(domain), check=False
                ).returncode
                == 0
            ),
            timeout=30,
            message="the new field accepted",
        )
        stored = cluster.get("es4psdomain", "future", namespace)
        assert stored["spec"]["futureSetting"] == "on"
    finally:
        cluster.kubectl("delete", "es4psdomain", "future", "-n", namespace, "--wait=false", check=False)
        drop_finalizers(cluster, "future", namespace)
        cluster.helm("upgrade", "es4ps-crds", str(CRD_CHART), "--wait")  # back to this version's CRD
