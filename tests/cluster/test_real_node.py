"""The real node runs real containers: locally built images, Pod networking, Services, cluster DNS, the API."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
from es4ps_localcluster import Cluster
from es4ps_localcluster import images as local_images

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_image_on_node(real_cluster):
    """The Debian base image, imported into the node's containerd like the product images are."""
    host = local_images.docker_host()
    local_images.ensure_base_image(host)
    socket = Cluster().node.containerd_socket
    save = subprocess.Popen(
        ["docker", "save", local_images.BASE_IMAGE], stdout=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": host}
    )
    subprocess.run(
        ["ctr", "--address", str(socket), "-n", "k8s.io", "images", "import", "-"],
        stdin=save.stdout,
        check=True,
        capture_output=True,
    )
    assert save.wait() == 0
    return local_images.BASE_IMAGE


def test_the_node_is_a_real_kubelet(real_cluster):
    nodes = real_cluster.get("nodes")["items"]
    assert len(nodes) == 1
    info = nodes[0]["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["kubeletVersion"].startswith("v1.34")


def test_a_pod_reaches_the_api_and_resolves_services(real_cluster, real_namespace, base_image_on_node):
    real_cluster.apply(
        textwrap.dedent(
            f"""
            apiVersion: v1
            kind: Pod
            metadata: {{name: probe, labels: {{app: probe}}}}
            spec:
              restartPolicy: Never
              containers:
              - name: probe
                image: {base_image_on_node}
                imagePullPolicy: Never
                command:
                - bash
                - -c
                - |
                  set -e
                  exec 3<>/dev/tcp/kubernetes.default.svc.cluster.local/443 && echo api-reachable
                  getent hosts probe.{real_namespace}.svc.cluster.local | awk '{{print "service-resolves", $1}}'
            ---
            apiVersion: v1
            kind: Service
            metadata: {{name: probe}}
            spec: {{selector: {{app: probe}}, ports: [{{port: 80}}]}}
            """
        ),
        namespace=real_namespace,
    )
    real_cluster.eventually(
        lambda: real_cluster.get("pod", "probe", real_namespace)["status"].get("phase") in ("Succeeded", "Failed"),
        timeout=90,
        message="the probe pod to finish",
    )
    logs = real_cluster.kubectl("logs", "probe", "-n", real_namespace).stdout
    service_ip = real_cluster.get("service", "probe", real_namespace)["spec"]["clusterIP"]
    assert "api-reachable" in logs
    assert f"service-resolves {service_ip}" in logs
    assert real_cluster.get("pod", "probe", real_namespace)["status"]["phase"] == "Succeeded", logs
