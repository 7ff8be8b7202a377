"""Traefik, the local cluster's ingress controller: its objects, and how an Ingress asks for it.

Traefik (localcluster/tools/traefik, `github.com/traefik/traefik/v3`) runs as
a Deployment in its own namespace with its Kubernetes Ingress provider and
an IngressClass, from a FROM scratch image of the binary `make setup` built
(`images.TRAEFIK`). It serves an Ingress as its owner wrote it: the host rule
routes, the certificate is the one in the Secret the Ingress names, and it
appends the client's address to X-Forwarded-For (it drops what a client sent
there itself: no address is trusted to set it). Its default TLS option, from
its file provider (a ConfigMap), is what an audit accepts: TLS 1.2 or newer,
ECDHE with AEAD suites only (Traefik's own default adds CBC suites with SHA-1).

From this machine it answers on 127.0.0.1:443 (a hostPort of the Pod, so
`https://<name>.localhost/` works in a browser); Pods reach it through the
Service `traefik/traefik` on port 443. Its traffic to a backend comes from
its Pod's address, from the namespace `traefik`, which a backend's
NetworkPolicy has to admit: a controller running as a host process would be
admitted as the node itself.
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "traefik"
NAME = "traefik"  # of the Deployment, its Service, ServiceAccount and RBAC objects
INGRESS_CLASS = "traefik"
CONTROLLER = "traefik.io/ingress-controller"  # what Traefik's provider looks for in an IngressClass
# Where this machine reaches it (a hostPort on loopback only: other addresses' port 443 stay free).
HOST_ADDRESS = "127.0.0.1"
HTTPS_PORT = 443
CONTAINER_HTTPS_PORT = 8443  # unprivileged inside the Pod
PING_PORT = 9000
LABELS = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/part-of": "es4ps-localcluster"}
DYNAMIC_CONFIG_DIR = "/etc/traefik/dynamic"
# Every router without a TLS option of its own gets this one (TLS 1.3's suites are all AEAD, not configurable).
DEFAULT_TLS_OPTION = {
    "minVersion": "VersionTLS12",
    "cipherSuites": [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ],
    "curvePreferences": ["X25519", "CurveP256", "CurveP384"],
}


# What an Ingress served by this controller carries: its class and Traefik's router annotations.
INGRESS_ANNOTATIONS = {
    "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
    "traefik.ingress.kubernetes.io/router.tls": "true",
}


def arguments() -> list[str]:
    """Traefik's static configuration: one TLS entry point, the Ingress provider for our class, the file provider
    (the default TLS option), a ping endpoint."""
    return [
        f"--entryPoints.websecure.address=:{CONTAINER_HTTPS_PORT}",
        "--entryPoints.websecure.asDefault=true",
        "--entryPoints.websecure.http.tls=true",
        f"--entryPoints.ping.address=:{PING_PORT}",
        "--ping.entryPoint=ping",
        "--providers.kubernetesIngress=true",
        f"--providers.kubernetesIngress.ingressClass={INGRESS_CLASS}",
        # the address `kubectl get ingress` shows, written by Traefik into each Ingress it serves
        f"--providers.kubernetesIngress.ingressEndpoint.ip={HOST_ADDRESS}",
        f"--providers.file.directory={DYNAMIC_CONFIG_DIR}",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ]


def _meta(name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def _rbac() -> list[dict[str, Any]]:
    read = ["get", "list", "watch"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(NAME, namespaced=False),
            "rules": [
                {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(NAME, namespaced=False),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
    ]


def _deployment(image: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/ping", "port": "ping"}, "periodSeconds": 5}
    container = {
        "name": "traefik",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": arguments(),
        "ports": [
            {
                "name": "websecure",
                "containerPort": CONTAINER_HTTPS_PORT,
                "hostPort": HTTPS_PORT,
                "hostIP": HOST_ADDRESS,
                "protocol": "TCP",
            },
            {"name": "ping", "containerPort": PING_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "dynamic", "mountPath": DYNAMIC_CONFIG_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME),
        "spec": {
            "replicas": 1,
            # a hostPort cannot be held by two Pods of one node: the old one goes first
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "serviceAccountName": NAME,
                    # the image's user is 65535
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "dynamic", "configMap": {"name": f"{NAME}-dynamic"}}],
                },
            },
        },
    }


def manifests(image: str) -> list[dict[str, Any]]:
    """Everything Traefik needs, `image` being its locally built image (`images.TRAEFIK`): apply in this order."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": dict(LABELS)}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": _meta(INGRESS_CLASS, namespaced=False),
            "spec": {"controller": CONTROLLER},
        },
        *_rbac(),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{NAME}-dynamic"),
            "data": {"tls.yaml": json.dumps({"tls": {"options": {"default": DEFAULT_TLS_OPTION}}}, indent=2)},
        },
        _deployment(image),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(NAME),
            "spec": {
                "selector": dict(LABELS),
                "ports": [{"name": "websecure", "port": HTTPS_PORT, "targetPort": "websecure", "protocol": "TCP"}],
            },
        },
    ]
