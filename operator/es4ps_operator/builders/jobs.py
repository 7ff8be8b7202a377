"""Jobs the operator runs for a domain: a DC leaving the domain, a database check, a backup, a restore, the
check of an existing domain before joining it.

Each is a plain Job (written once, never re-applied, deleted by the operator
when its step is over) whose Pods reach the DCs over the network, never the
DCs' volumes while they run. Each step mounts only the secrets it uses: the
Administrator's password only the steps that act on the directory with it
(leave, remove, dbcheck, join-check, the backup's copy of the directory, the
restore of dc0's volume); the backup's signing key only its store step; the key a
restore trusts and the decryption key only its fetch step.

    <domain>-dc<i>-leave    es4ps-samba-dc leave: the leaving DC's roles and last changes go to dc0
    <domain>-dc<i>-remove   es4ps-samba-dc remove: the domain forgets the stopped DC; its volume is retired
    <domain>-dbcheck-<h>    es4ps-samba-dc dbcheck: dc0's database is clean before an image roll-out
    <backup name>           es4ps-backup: copy the directory and the portal database, encrypt, store
    <domain>-restore        es4ps-backup: fetch, decrypt, restore dc0's volume and the portal database
    <domain>-join-check     es4ps-samba-dc join-check: the existing domain answers, takes the password, can be joined

The images' sides of these commands are images/samba (es4ps_samba.dc.lifecycle,
es4ps_samba.backup) and images/django (the dump_database and restore_database
commands); their variables are declared there.
"""

from __future__ import annotations

from typing import Any

from .. import naming
from ..config import OperatorConfig
from ..domain import Domain
from ..placement import Placement
from .common import (
    CONTAINER_READABLE,
    Manifest,
    admin_password_volume,
    env,
    env_from_secret,
    memory_volume,
    metadata,
    mount,
    pod_template,
    restricted_security_context,
    secret_volume,
)
from .directory import ADMIN_DIR, DATA_DIR, dc_join_server, samba_image
from .portal import PORTAL_UID, portal_spec_environment

WORK_DIR = "/var/lib/es4ps-job"
BACKUPS_DIR = "/var/lib/es4ps-backups"
BACKUP_KEY_DIR = "/etc/es4ps/backup-key"
BACKUP_SIGNING_DIR = "/etc/es4ps/backup-signing"
S3_CREDENTIALS_DIR = "/etc/es4ps/s3"
PORTAL_DATA_DIR = "/var/lib/es4ps-portal"
# A step that failed this often is reported, not retried for ever.
BACKOFF_LIMIT = 2
# The backup Job's last step (es4ps_samba.backup): its termination message is the result, one JSON object.
STORE_STEP = "store"


def _job(
    domain: Domain,
    name: str,
    component: str,
    pod_spec: dict[str, Any],
    owner: dict | None = None,
    placement: Placement | None = None,
) -> Manifest:
    """A Job of `component` running `pod_spec` once; `placement`: its Pods' overrides (default spec.maintenance)."""
    meta = metadata(domain, name, component)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        **pod_spec,
    }
    # The overrides' resources apply to every step (they run one after another).
    steps = tuple(c["name"] for c in [*spec.get("initContainers", ()), *spec["containers"]])
    template = pod_template(domain, component, placement or domain.maintenance, spec, main=steps, spread=False)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"backoffLimit": BACKOFF_LIMIT, "template": template},
    }


def _domain_env(domain: Domain, admin: bool) -> list[dict[str, Any]]:
    variables = [env("ES4PS_REALM", domain.realm), env("ES4PS_NETBIOS_NAME", domain.netbios_name)]
    if admin:
        variables.append(env("ES4PS_ADMIN_PASSWORD_FILE", f"{ADMIN_DIR}/password"))
    return variables


def _samba_step(
    domain: Domain, config: OperatorConfig, name: str, command: list[str], extra_env, mounts, *, admin: bool = True
) -> dict:
    """A step of the Samba image; `admin`: it acts on the directory as Administrator (mounts the password)."""
    return {
        "name": name,
        "image": samba_image(domain, config),
        "imagePullPolicy": config.images.pull_policy,
        "command": command,
        "env": [*_domain_env(domain, admin), *extra_env],
        # Writing the failure's reason where the operator reads it (the Pod's termination message).
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]},
        },
        "volumeMounts": [mount("admin", ADMIN_DIR), *mounts] if admin else list(mounts),
    }


# --- a DC leaving the domain ---------------------------------------------------------------------


def dc_leave_job(domain: Domain, config: OperatorConfig, index: int, step: str) -> Manifest:
    """Step `leave` or `remove` for DC `index` (see es4ps_samba.dc.lifecycle)."""
    leaving = [
        env("ES4PS_JOIN_SERVER", dc_join_server(domain, config)),
        env("ES4PS_LEAVING_DC", naming.dc_hostname(domain, index)),
        env("ES4PS_LEAVING_SERVER", f"{naming.dc(domain, index)}.{domain.namespace}.svc.{config.cluster_domain}"),
    ]
    mounts, volumes = [], [admin_password_volume(domain)]
    if step == "remove" and not domain.delete_data:
        # The volume outlives the DC (Retain): it is marked, so a DC started on it again joins afresh.
        leaving.append(env("ES4PS_DATA_DIR", DATA_DIR))
        mounts.append(mount("data", DATA_DIR, read_only=False))
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": naming.dc_volume(domain, index)}})
    container = _samba_step(domain, config, step, ["es4ps-samba-dc", step], leaving, mounts)
    container["securityContext"]["runAsUser"] = 0  # the volume's files are root's (Samba's)
    return _job(
        domain,
        naming.dc_job(domain, index, step),
        naming.MAINTENANCE,
        {"containers": [container], "volumes": volumes},
    )


def dbcheck_job(domain: Domain, config: OperatorConfig, image: str, name: str) -> Manifest:
    """`samba-tool dbcheck` of dc0's database with the image the DCs run now, before they get another."""
    container = _samba_step(
        domain,
        config,
        "dbcheck",
        ["es4ps-samba-dc", "dbcheck"],
        [env("ES4PS_JOIN_SERVER", dc_join_server(domain, config))],
        [],
    )
    container["image"] = image
    return _job(
        domain, name, naming.MAINTENANCE, {"containers": [container], "volumes": [admin_password_volume(domain)]}
    )


def join_check_job(domain: Domain, config: OperatorConfig) -> Manifest:
    """`es4ps-samba-dc join-check`: the existing domain read (never written) before any DC joins it."""
    check = [
        env("ES4PS_JOIN_SERVER", domain.directory.join_server),
        env("ES4PS_DC_NAME_TEMPLATE", naming.dc_hostname(domain, "{index}")),
    ]
    container = _samba_step(domain, config, "join-check", ["es4ps-samba-dc", "join-check"], check, [])
    pod = {"containers": [container], "volumes": [admin_password_volume(domain)]}
    job = _job(domain, naming.join_check_job(domain), naming.MAINTENANCE, pod)
    # A refusal is the answer, not a failure to retry (a wrong password again and again could lock accounts):
    # the Job stays until it is deleted, which checks again.
    job["spec"]["backoffLimit"] = 0
    return job


# --- backups and restores --------------------------------------------------------------------------


def _volume_destination(claim: str) -> tuple[list[dict], list[dict], list[dict]]:
    volume = {"name": "backups", "persistentVolumeClaim": {"claimName": claim}}
    variables = [env("ES4PS_BACKUP_VOLUME_DIR", BACKUPS_DIR), env("ES4PS_BACKUP_VOLUME_CLAIM", claim)]
    return variables, [mount("backups", BACKUPS_DIR, read_only=False)], [volume]


def _destination(domain: Domain) -> tuple[list[dict], list[dict], list[dict]]:
    """(variables, mounts, volumes) of the backup destination, for the step that stores or fetches."""
    backup = domain.directory.backup
    assert backup is not None
    if backup.volume is not None:
        return _volume_destination(naming.backups_volume(domain))
    s3 = backup.s3
    assert s3 is not None
    variables = [
        env("ES4PS_BACKUP_S3_ENDPOINT", s3.endpoint),
        env("ES4PS_BACKUP_S3_BUCKET", s3.bucket),
        env("ES4PS_BACKUP_S3_PREFIX", s3.prefix),
        env("ES4PS_BACKUP_S3_REGION", s3.region),
        env("ES4PS_BACKUP_S3_ACCESS_KEY_ID_FILE", f"{S3_CREDENTIALS_DIR}/access-key-id"),
        env("ES4PS_BACKUP_S3_SECRET_ACCESS_KEY_FILE", f"{S3_CREDENTIALS_DIR}/secret-access-key"),
    ]
    keys = {s3.access_key_id_key: "access-key-id", s3.secret_access_key_key: "secret-access-key"}
    return variables, [mount("s3", S3_CREDENTIALS_DIR)], [secret_volume("s3", s3.credentials_secret, keys)]


def _portal_database(domain: Domain) -> tuple[list[dict], list[dict], list[dict], dict | None]:
    """(variables, mounts, volumes, affinity) to reach the portal's database from a Job's portal step."""
    database_url = domain.portal.database_url
    if database_url is not None:
        return [env_from_secret("ES4PS_DATABASE_URL", database_url.name, database_url.key)], [], [], None
    # SQLite on the portal's volume: the step mounts it, on the portal Pod's node (the volume is ReadWriteOnce).
    volume = {"name": "portal-data", "persistentVolumeClaim": {"claimName": naming.portal_volume(domain)}}
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": naming.selector(domain, naming.PORTAL)},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    return (
        [env("ES4PS_DATA_DIR", PORTAL_DATA_DIR)],
        [mount("portal-data", PORTAL_DATA_DIR, read_only=False)],
        [volume],
        affinity,
    )


def _portal_step(domain: Domain, config: OperatorConfig, name: str, command: list[str], variables, mounts) -> dict:
    return {
        "name": name,
        "image": domain.portal.image or config.images.portal,
        "imagePullPolicy": config.images.pull_policy,
        "command": command,
        "env": [
            # Enough of the portal's settings for its management commands (docs/interfaces.md).
            env("ES4PS_PORTAL_HOST", domain.portal.host),
            env("ES4PS_REALM", domain.realm),
            env("ES4PS_ALLOWED_EMAIL_DOMAINS", ",".join(domain.allowed_email_domains)),
            env("DJANGO_SECRET_KEY_FILE", "/etc/es4ps/django/secret-key"),
            *portal_spec_environment(domain),
            *variables,
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": restricted_security_context(PORTAL_UID),
        "volumeMounts": [
            mount("work", WORK_DIR, read_only=False),
            mount("secret-key", "/etc/es4ps/django"),
            mount("tmp", "/tmp", read_only=False),
            *mounts,
        ],
    }


def _work_volumes(domain: Domain) -> list[dict]:
    # The Pod has no fsGroup (it would re-own the DC's volume, which a restore's Job mounts): the Secret's files
    # stay root's, so the portal step, which runs as the portal's user, reads Django's key only if all may.
    secret_key = secret_volume(
        "secret-key", naming.django_secret_key_secret(domain), {"secret-key": "secret-key"}, mode=CONTAINER_READABLE
    )
    return [{"name": "work", "emptyDir": {}}, memory_volume("tmp"), secret_key]


def backup_job(
    domain: Domain, config: OperatorConfig, backup_name: str, owner: dict, delete_locations: list[str]
) -> Manifest:
    """The Job of one ES4PSBackup: copy dc0's directory and the portal database, encrypt, store.

    `delete_locations`: archives of older backups that fall out of `keep` once
    this one is stored (the store step removes them only after it succeeded).
    """
    db_env, db_mounts, db_volumes, affinity = _portal_database(domain)
    dest_env, dest_mounts, dest_volumes = _destination(domain)
    directory = _samba_step(
        domain,
        config,
        "directory",
        ["es4ps-backup", "dump-directory"],
        [env("ES4PS_BACKUP_SERVER", dc_join_server(domain, config)), env("ES4PS_BACKUP_WORK_DIR", WORK_DIR)],
        [mount("work", WORK_DIR, read_only=False)],
    )
    portal = _portal_step(
        domain,
        config,
        "portal",
        ["es4ps-portal", "manage", "dump_database", f"{WORK_DIR}/portal.db"],
        db_env,
        db_mounts,
    )
    store = _samba_step(
        domain,
        config,
        STORE_STEP,
        ["es4ps-backup", "store"],
        [
            env("ES4PS_BACKUP_WORK_DIR", WORK_DIR),
            env("ES4PS_BACKUP_NAME", backup_name),
            env("ES4PS_BACKUP_DOMAIN", domain.name),
            env("ES4PS_BACKUP_RECIPIENT_FILE", f"{BACKUP_KEY_DIR}/recipient"),
            env("ES4PS_BACKUP_SIGNING_KEY_FILE", f"{BACKUP_SIGNING_DIR}/signing-key"),
            env("ES4PS_BACKUP_DELETE", ",".join(delete_locations)),
            *dest_env,
        ],
        [
            mount("work", WORK_DIR, read_only=False),
            mount("backup-key", BACKUP_KEY_DIR),
            mount("backup-signing", BACKUP_SIGNING_DIR),
            *dest_mounts,
        ],
        admin=False,
    )
    # Only the public half of the encryption key: a backup Job can encrypt, never decrypt. The signing key's
    # private half: what makes the archive one of this domain's (a restore checks it with the public half).
    key_volume = secret_volume("backup-key", naming.backup_key_secret(domain), {"recipient": "recipient"})
    signing_volume = secret_volume(
        "backup-signing", naming.backup_signing_secret(domain), {"signing-key": "signing-key"}
    )
    pod: dict[str, Any] = {
        "initContainers": [directory, portal],
        "containers": [store],
        "volumes": [
            admin_password_volume(domain),
            key_volume,
            signing_volume,
            *_work_volumes(domain),
            *db_volumes,
            *dest_volumes,
        ],
    }
    if affinity:
        pod["affinity"] = affinity
    job = _job(domain, backup_name, naming.BACKUP, pod, owner=owner, placement=domain.directory.backup.placement)
    job["metadata"]["labels"][naming.BACKUP_LABEL] = backup_name
    return job


def _restore_source(domain: Domain, location: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Where the fetch step reads the archive: a backup on a volume is read from the claim its location names
    (another domain's of this namespace, when a new domain restores it), one in S3 through this domain's S3."""
    if location.startswith("volume:"):  # volume:<claim>/<path> (es4ps_samba.backup.destinations)
        return _volume_destination(location.removeprefix("volume:").split("/", 1)[0])
    return _destination(domain)


def restore_job(domain: Domain, config: OperatorConfig, backup_status: dict[str, Any]) -> Manifest:
    """Fetch and decrypt the backup, restore dc0's volume from it, then the portal's database."""
    db_env, db_mounts, db_volumes, _affinity = _portal_database(domain)
    source_env, source_mounts, source_volumes = _restore_source(domain, backup_status["location"])
    fetch = _samba_step(
        domain,
        config,
        "fetch",
        ["es4ps-backup", "fetch"],
        [
            env("ES4PS_BACKUP_WORK_DIR", WORK_DIR),
            env("ES4PS_BACKUP_LOCATION", backup_status["location"]),
            env("ES4PS_BACKUP_SHA256", backup_status.get("sha256", "")),
            env("ES4PS_BACKUP_IDENTITY_FILE", f"{BACKUP_KEY_DIR}/identity"),
            # Trusted from this domain's spec, never from the ES4PSBackup's status; the archive must hold that backup.
            env("ES4PS_BACKUP_VERIFY_KEY_FILE", f"{BACKUP_SIGNING_DIR}/verify-key"),
            env("ES4PS_BACKUP_NAME", domain.directory.recovery_backup or ""),
            env("ES4PS_BACKUP_ACCEPT_UNSIGNED", "true" if domain.directory.recovery_accept_unsigned else "false"),
            *source_env,
        ],
        [
            mount("work", WORK_DIR, read_only=False),
            mount("backup-key", BACKUP_KEY_DIR),
            mount("backup-signing", BACKUP_SIGNING_DIR),
            *source_mounts,
        ],
        admin=False,
    )
    directory = _samba_step(
        domain,
        config,
        "directory",
        ["es4ps-backup", "restore-directory"],
        [
            env("ES4PS_BACKUP_WORK_DIR", WORK_DIR),
            env("ES4PS_DC_HOSTNAME", naming.dc_hostname(domain, 0)),
            env("ES4PS_DATA_DIR", DATA_DIR),
        ],
        [mount("work", WORK_DIR, read_only=False), mount("data", DATA_DIR, read_only=False)],
    )
    directory["securityContext"]["runAsUser"] = 0  # writes the DC's volume as Samba does
    portal = _portal_step(
        domain,
        config,
        "portal",
        ["es4ps-portal", "manage", "restore_database", f"{WORK_DIR}/portal.db"],
        db_env,
        db_mounts,
    )
    steps = [fetch, directory]
    if domain.portal.database_url is None:  # SQLite, on the portal's fresh volume
        steps.append(_portal_volume_owner_step(domain, config))
    key_secret = backup_status.get("encryptionKeySecret") or naming.backup_key_secret(domain)
    volumes = [
        admin_password_volume(domain),
        secret_volume("backup-key", key_secret, {"identity": "identity"}),
        secret_volume("backup-signing", naming.backup_trusted_key_secret(domain), {"verify-key": "verify-key"}),
        {"name": "data", "persistentVolumeClaim": {"claimName": naming.dc_volume(domain, 0)}},
        *_work_volumes(domain),
        *db_volumes,
        *source_volumes,
    ]
    return _job(
        domain,
        naming.restore_job(domain),
        naming.BACKUP,
        {"initContainers": steps, "containers": [portal], "volumes": volumes},
    )


def _portal_volume_owner_step(domain: Domain, config: OperatorConfig) -> dict:
    """Give the portal's fresh volume to the portal's user, whom the portal step runs as.

    The portal's own Pod does this with fsGroup; the restore's Pod cannot (fsGroup would re-own the DC's
    volume too), and a provisioner may hand out root's 0755 volumes.
    """
    return {
        "name": "portal-volume",
        "image": samba_image(domain, config),
        "imagePullPolicy": config.images.pull_policy,
        "command": ["chown", f"{PORTAL_UID}:{PORTAL_UID}", PORTAL_DATA_DIR],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
            "runAsUser": 0,
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [mount("portal-data", PORTAL_DATA_DIR, read_only=False)],
    }
