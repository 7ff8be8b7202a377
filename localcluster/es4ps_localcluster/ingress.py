"""Traefik, the local cluster's ingress controller: its objects, and how an Ingress asks for it.

Traefik (localcluster/tools/traefik, `github.com/traefik/traefik/v3`) runs as
a Deployment in its own namespace with its Kubernetes Ingress provider and
an IngressClass, from a FROM scratch image of the binary `make setup` built
(`images.TRAEFIK`). It serves an Ingress as its owner wrote it: the host rule
routes, the certificate is the one in the Secret the Ingress names, and it
appends the client's address to X-Forwarded-For (it drops what a client sent
there itself: no address is trusted to set it).

From this machine it answers on 127.0.0.1:443 (a hostPort of the Pod, so
`https://<name>.localhost/` works in a browser); Pods reach it through the
Service `traefik/traefik` on port 443. Its traffic to a backend comes from
its Pod's address, from the namespace `traefik`, which a backend's
NetworkPolicy has to admit: a controller running as a host process would be
admitted as the node itself.
"""

from __future__ import annotations

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


# What an Ingress served by this controller carries: its class and Traefik's router annotations.
INGRESS_ANNOTATIONS = {
    "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
    "traefik.ingress.kubernetes.io/router.tls": "true",
}


def arguments() -> list[str]:
    """Traefik's static configuration: one TLS entry point, the Ingress provider for our class, a ping endpoint."""
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
