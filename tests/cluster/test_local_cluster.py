"""The local control plane is real: scheduling, KWOK nodes, cert-manager, tokens, RBAC, kubectl and helm."""

from __future__ import annotations

import base64
import json
import subprocess
import textwrap

import pytest
from cryptography import x509
from es4ps_localcluster import Cluster
from es4ps_localcluster.components.node import mount_points, unmount_under

pytestmark = pytest.mark.cluster


def test_node_is_ready(cluster):
    nodes = cluster.get("nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    assert ready, f"no Ready node among {[n['metadata']['name'] for n in nodes]}"


def test_deployment_pods_become_running_on_the_kwok_node(cluster, namespace):
    cluster.kubectl("create", "deployment", "web", "--image=registry.example/web:1", "--replicas=3", "-n", namespace)
    cluster.wait_for("deployment", "web", condition="Available", namespace=namespace)

    def running_pods():
        pods = cluster.get("pods", namespace=namespace)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == 3 else None

    pods = cluster.eventually(running_pods, message="3 Running pods")
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0"}
    assert all(p["status"].get("podIP") for p in pods)


def test_cert_manager_issues_a_certificate_with_the_requested_names(cluster, namespace):
    cluster.apply(
        textwrap.dedent(
            """
            apiVersion: cert-manager.io/v1
            kind: Issuer
            metadata: {name: selfsigned}
            spec: {selfSigned: {}}
            ---
            apiVersion: cert-manager.io/v1
            kind: Certificate
            metadata: {name: web}
            spec:
              secretName: web-tls
              commonName: web.example.test
              dnsNames: [web.example.test, www.example.test]
              issuerRef: {name: selfsigned, kind: Issuer}
            """
        ),
        namespace=namespace,
    )
    cluster.wait_for("certificate", "web", namespace=namespace)
    secret = cluster.get("secret", "web-tls", namespace=namespace)
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == ["web.example.test", "www.example.test"]
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN")


def test_service_account_tokens_authenticate_and_rbac_limits_them(cluster, namespace, tmp_path):
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    cluster.kubectl(
        "create", "rolebinding", "reader", "--role=pod-reader", f"--serviceaccount={namespace}:reader", "-n", namespace
    )
    token = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    admin = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    # only the token: the admin kubeconfig's client certificate would take precedence
    (tmp_path / "empty").write_text("apiVersion: v1\nkind: Config\n")
    as_reader = [
        "--kubeconfig",
        str(tmp_path / "empty"),
        "--server",
        admin["server"],
        "--certificate-authority",
        admin["certificate-authority"],
        "--token",
        token,
    ]

    who = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", *as_reader).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    listed = cluster.kubectl("get", "pods", "-n", namespace, *as_reader, check=False)
    assert listed.returncode == 0, listed.stderr
    refused = cluster.kubectl("get", "secrets", "-n", namespace, *as_reader, check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr


def test_kubectl_and_api_server_share_the_pinned_minor_version(cluster):
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["minor"].rstrip("+") == version["clientVersion"]["minor"].rstrip("+")
    assert int(version["serverVersion"]["minor"].rstrip("+")) >= 33


def test_helm_templates_a_trivial_chart(cluster, tmp_path):
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hello\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hi\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  greeting: {{ .Values.greeting }}\n"
    )
    assert "v3." in cluster.helm("version", "--short").stdout
    rendered = cluster.helm("template", "demo", str(chart), "--set", "greeting=hello").stdout
    assert "name: demo" in rendered and "greeting: hello" in rendered


def test_down_stops_only_the_processes_it_recorded(tmp_path):
    """`cluster-down` semantics with real processes: recorded ones stop, others are left alone."""
    local = Cluster(state_dir=tmp_path / "state", kubeconfig=tmp_path / "kubeconfig")
    local.processes.start("etcd", ["/bin/sleep", "300"])
    local.processes.start("kwok", ["/bin/sleep", "301"])
    bystander = subprocess.Popen(["/bin/sleep", "302"])
    try:
        # a stale record naming a pid that now runs something else must not be killed
        (local.processes.pids / "kube-apiserver.pid").write_text(f"{bystander.pid}\n/usr/bin/not-the-apiserver\n")
        assert set(local.running()) == {"etcd", "kwok"}
        local.down()
        assert local.running() == {}
        assert bystander.poll() is None, "a process the cluster did not start was stopped"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_mount_under_a_folder_with_a_space_is_found_and_unmounted(tmp_path):
    # mountinfo writes a space as \040: a checkout under such a path left its node's mounts behind.
    folder = tmp_path / "state with space"
    (folder / "pod volume").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(folder / "pod volume")], check=True)
    try:
        assert str(folder / "pod volume") in mount_points()
        unmount_under(folder)
        assert str(folder / "pod volume") not in mount_points()
    finally:
        subprocess.run(["umount", "-l", str(folder / "pod volume")], capture_output=True)
