"""The domain's file server (spec.fileServices): a StatefulSet of one Samba member server, and its Service.

The Pod runs images/samba's `es4ps-files run`: it joins the domain as its own
computer (`files`) with the password of `<domain>-files-machine` (a generated
Secret: a lost volume joins again as the same computer), serves homes and the
group shares to the domain's people over SMB3 with encryption required, and
the print share through CUPS when asked; its metrics listen on the port
`metrics` (the NetworkPolicy `<domain>-files` opens it to Prometheus only). Its volume holds the homes, the
shares, the printed files and its membership; nothing here deletes any of it.

Services:
    <domain>-files   SMB (445) under spec.directory.serviceType, like the DCs' external Services
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain, Storage
from ..fileservices import FileServices
from .common import (
    Manifest,
    admin_password_volume,
    env,
    exec_probe,
    memory_volume,
    mount,
    pod_template,
    secret_volume,
    service,
    statefulset,
)
from .directory import dc_join_server, samba_image, volume_bytes

DATA_DIR = "/var/lib/samba"
ADMIN_DIR = "/etc/es4ps/admin"
MACHINE_DIR = "/etc/es4ps/machine"
# The file server's computer name in the domain (a NetBIOS name: at most 15 characters).
COMPUTER_NAME = "files"
SMB_PORT = 445
# smbd and winbindd switch to people's users and own their files; cupsd drops to lp for its filters.
FILES_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL"]


def build_files(domain: Domain, config: OperatorConfig) -> list[Manifest]:
    """The file server's Service and StatefulSet; nothing without spec.fileServices."""
    files = domain.file_services
    if files is None:
        return []
    return [_files_service(domain), _files_statefulset(domain, config, files)]


def id_range(domain: Domain) -> str:
    """The uids and gids the domain's Unix policies give (`low-high`): every policy's range and the default one."""
    unix = domain.directory.unix
    ranges = [unix.uid_range] if unix else []
    ranges += [policy.uid_range for policy in domain.policies if policy.uid_range]
    if not ranges:
        return ""
    return f"{min(low for low, _ in ranges)}-{max(high for _, high in ranges)}"


def _files_service(domain: Domain) -> Manifest:
    spec: dict[str, Any] = {
        "type": domain.directory.service_type,
        "selector": naming.selector(domain, naming.FILES),
        "ports": [{"name": "smb", "port": SMB_PORT, "targetPort": SMB_PORT, "protocol": "TCP"}],
    }
    if domain.directory.service_type != "ClusterIP":
        spec["externalTrafficPolicy"] = "Local"  # Samba's logs see who connects
    return service(domain, naming.files(domain), naming.FILES, spec)


def files_env(domain: Domain, config: OperatorConfig, files: FileServices) -> list[dict[str, Any]]:
    """The variables of `es4ps-files run` (es4ps_samba.files.config declares them)."""
    return [
        env("ES4PS_REALM", domain.realm),
        env("ES4PS_NETBIOS_NAME", domain.netbios_name),
        env("ES4PS_FILES_HOSTNAME", COMPUTER_NAME),
        env("ES4PS_JOIN_SERVER", dc_join_server(domain, config)),
        env("ES4PS_DATA_DIR", DATA_DIR),
        # On the volume: the image's /etc/samba/smb.conf links there, so Samba's tools read it too.
        env("ES4PS_SMB_CONF", f"{DATA_DIR}/etc/smb.conf"),
        env("ES4PS_ADMIN_PASSWORD_FILE", f"{ADMIN_DIR}/password"),
        env("ES4PS_MACHINE_PASSWORD_FILE", f"{MACHINE_DIR}/password"),
        env("ES4PS_ID_RANGE", id_range(domain)),
        env("ES4PS_FILES_HOMES", "true" if files.homes else "false"),
        env("ES4PS_FILES_HOMES_QUOTA_BYTES", volume_bytes(files.homes_quota) if files.homes_quota else ""),
        env("ES4PS_FILES_SHARES", files.shares_json()),
        env("ES4PS_FILES_PRINTING", "true" if files.printing else "false"),
        env("ES4PS_FILES_METRICS_PORT", str(naming.FILES_METRICS_PORT)),
    ]


def _files_container(domain: Domain, config: OperatorConfig, files: FileServices) -> dict[str, Any]:
    ready = ["es4ps-files", "ready"]
    return {
        "name": "files",
        "image": files.image or samba_image(domain, config),
        "imagePullPolicy": config.images.pull_policy,
        "command": ["es4ps-files", "run"],
        "env": files_env(domain, config, files),
        "ports": [
            {"name": "smb", "containerPort": SMB_PORT, "protocol": "TCP"},
            {"name": naming.FILES_METRICS_PORT_NAME, "containerPort": naming.FILES_METRICS_PORT, "protocol": "TCP"},
        ],
        # The first start joins the domain; a DC that is not up yet delays it.
        "startupProbe": exec_probe(ready, period_s=5, failures=120, timeout_s=10),
        "readinessProbe": exec_probe(ready, period_s=10, failures=3, timeout_s=10),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": list(FILES_CAPABILITIES)},
        },
        "volumeMounts": [
            mount("data", DATA_DIR, read_only=False),
            mount("admin", ADMIN_DIR),
            mount("machine", MACHINE_DIR),
            mount("run", "/run", read_only=False),
        ],
    }


def _files_statefulset(domain: Domain, config: OperatorConfig, files: FileServices) -> Manifest:
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # No fsGroup: it would re-own every home and share on the volume.
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,
        "containers": [_files_container(domain, config, files)],
        "volumes": [
            admin_password_volume(domain),
            secret_volume("machine", naming.files_machine_secret(domain), {"password": "password"}),
            memory_volume("run"),
        ],
    }
    return statefulset(
        domain,
        naming.files(domain),
        naming.FILES,
        naming.selector(domain, naming.FILES),
        replicas=files.replicas,
        pod=pod_template(domain, naming.FILES, files.placement, pod_spec, main=("files",)),
        storage=Storage(files.storage_size, files.storage_class),
    )
