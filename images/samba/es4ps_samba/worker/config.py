"""The worker's settings: the variables the operator sets (docs/interfaces.md), read and checked once."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from es4ps_contract import transport
from es4ps_contract.directory import MANAGED_OU, WORKER_ACCOUNT
from es4ps_contract.environment import Environment, SettingError, Variable
from es4ps_contract.keys import KeyFileError, load_sealing_private_key, load_signing_key, load_verify_key
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

VARIABLES = (
    *transport.VARIABLES,
    Variable("ES4PS_SEALING_PRIVATE_KEY_FILE", "X25519 private key: opens the sealed passwords"),
    Variable("ES4PS_SIGNING_PUBLIC_KEY_FILE", "Ed25519 public key: verifies the tasks"),
    Variable(
        "ES4PS_RESULT_SIGNING_KEY_FILE",
        "Ed25519 private key of this DC: signs its result events (the portal verifies them with the public half"
        " named after `ES4PS_WORKER_NAME`)",
    ),
    Variable(
        "ES4PS_LDAP_URL",
        "the DC beside the worker, or `ldaps://host:636` of a directory outside the Pod (external mode; plain"
        " `ldap://` is refused for any address but the Pod's own)",
        "ldap://127.0.0.1",
    ),
    Variable("ES4PS_LDAP_CA_FILE", "the CA of that directory's certificate (required with `ldaps://`)", ""),
    Variable("ES4PS_REALM", "the realm, e.g. `AD.ACME.EXAMPLE`"),
    Variable("ES4PS_NETBIOS_NAME", "the domain's NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_WORKER_ACCOUNT", "the directory account the worker binds as", WORKER_ACCOUNT),
    Variable("ES4PS_WORKER_PASSWORD_FILE", "its password", secret_file=True),
    Variable("ES4PS_USERS_OU", "the OU of the accounts it manages (it never touches others)", MANAGED_OU),
    Variable(
        "ES4PS_WORKER_CREATES_CONTAINERS",
        "`1`: it creates the OUs and groups policies name when missing; `0`: it waits for them to replicate"
        " (with several DCs only one worker creates them, so two DCs never make the same group)",
        "1",
    ),
    Variable("ES4PS_WORKER_STATE_DIR", "where the record of applied tasks lives (on the DC's volume)"),
    Variable(
        "ES4PS_WORKER_NAME",
        "the name reported in result events, which names its result key for the portal (empty: the host name)",
        "",
    ),
    Variable("ES4PS_WORKER_CONCURRENCY", "worker processes, each with one LDAP connection", "3"),
    Variable(
        "ES4PS_WORKER_MAX_RETRIES",
        "retries of a task whose account is not there yet, 1, 2, 4 ... 60 s apart (a task whose directory does not"
        " answer is retried without a limit: it waits, and those waits do not count here)",
        "15",
    ),
    Variable("ES4PS_WORKER_METRICS_PORT", "port of the worker's Prometheus metrics (`/metrics`); 0: off", "9932"),
    Variable(
        "ES4PS_WORKER_METRICS_ADDRESS",
        "the address the metrics port binds (the operator gives the Pod's IP; with host networking the node's)",
        "0.0.0.0",  # noqa: S104 - every address of a plain container; the operator narrows it
    ),
)


def check_ldap_url(url: str, ca_file: str) -> None:
    """Passwords travel only inside TLS, or to the DC in the same Pod: a plain `ldap://` URL must name a
    loopback address, an `ldaps://` one needs the CA its certificate is checked against."""
    parsed = urlsplit(url)
    if parsed.scheme == "ldaps":
        if not ca_file:
            raise SettingError("ES4PS_LDAP_URL is ldaps://: ES4PS_LDAP_CA_FILE must name the directory's CA")
        return
    host = parsed.hostname or ""
    loopback = host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)
    if parsed.scheme != "ldap" or not loopback:
        raise SettingError(
            f"ES4PS_LDAP_URL {url!r}: a directory outside the Pod is reached with ldaps:// only (passwords cross it)"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs besides the broker settings (read by `from_env`)."""

    ldap_url: str
    ldap_ca_file: str
    realm: str
    netbios_name: str
    account: str
    password: str
    users_ou: str
    creates_containers: bool
    state_dir: Path
    worker_name: str
    max_retries: int
    concurrency: int
    sealing_key: PrivateKey
    verify_key: VerifyKey
    result_key: SigningKey
    metrics_port: int
    metrics_address: str

    @property
    def external(self) -> bool:
        """Whether the directory is outside the Pod (external mode: LDAPS, an OU the administrators made)."""
        return urlsplit(self.ldap_url).scheme == "ldaps"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        env = Environment(VARIABLES, environ)
        realm = env.text("ES4PS_REALM").upper()
        try:
            sealing_key = load_sealing_private_key(env.text("ES4PS_SEALING_PRIVATE_KEY_FILE"))
            verify_key = load_verify_key(env.text("ES4PS_SIGNING_PUBLIC_KEY_FILE"))
            result_key = load_signing_key(env.text("ES4PS_RESULT_SIGNING_KEY_FILE"))
        except KeyFileError as exc:
            raise SettingError(str(exc)) from None
        ldap_url, ldap_ca_file = env.text("ES4PS_LDAP_URL"), env.text("ES4PS_LDAP_CA_FILE")
        check_ldap_url(ldap_url, ldap_ca_file)
        return cls(
            ldap_url=ldap_url,
            ldap_ca_file=ldap_ca_file,
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            account=env.text("ES4PS_WORKER_ACCOUNT"),
            password=env.file_text("ES4PS_WORKER_PASSWORD_FILE"),
            users_ou=env.text("ES4PS_USERS_OU"),
            creates_containers=env.flag("ES4PS_WORKER_CREATES_CONTAINERS"),
            state_dir=Path(env.text("ES4PS_WORKER_STATE_DIR")),
            worker_name=env.text("ES4PS_WORKER_NAME") or socket.gethostname(),
            max_retries=env.integer("ES4PS_WORKER_MAX_RETRIES", minimum=0),
            concurrency=env.integer("ES4PS_WORKER_CONCURRENCY", minimum=1),
            sealing_key=sealing_key,
            verify_key=verify_key,
            result_key=result_key,
            metrics_port=env.integer("ES4PS_WORKER_METRICS_PORT", minimum=0, maximum=65535),
            metrics_address=env.text("ES4PS_WORKER_METRICS_ADDRESS"),
        )
