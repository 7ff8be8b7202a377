"""Debian's RabbitMQ as a private node for one test session or benchmark: TLS only, client certificates, EXTERNAL login.

Its topology is the operator's own (`broker_definitions`), so tests run against
the queues and permissions a deployed broker has. It listens on a port picked
per session, with its own epmd, so two sessions can run at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from es4ps_contract.tasks import RESULTS_QUEUE
from es4ps_localcluster.processes import free_port, start_process, stop_process_group, wait_until
from es4ps_operator.builders.broker import (  # as the operator writes them
    ENABLED_PLUGINS,
    broker_definitions,
    inter_node_tls_config,
    rabbitmq_conf,
    tls_distribution_args,
)
from es4ps_operator.naming import BROKER_VHOST
from es4ps_operator.naming import PORTAL_BROKER_USER as PORTAL_USER
from es4ps_operator.naming import WORKER_BROKER_USER as WORKER_USER

from . import ServiceError
from .ca import ThrowawayCA

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"


class RabbitMQ:
    """Debian's RabbitMQ as a private node: one TLS listener, client certificates required, EXTERNAL login."""

    def __init__(
        self, directory: Path, ca: ThrowawayCA, queue_type: str = "classic", inter_node_tls: bool = False
    ) -> None:
        """`queue_type`: quorum makes the two queues quorum queues, as on a clustered broker.

        `inter_node_tls`: the node's Erlang distribution (on `dist_port`) speaks TLS with the operator's
        options, as the nodes of a clustered broker do with each other, its certificate serving both ways.
        """
        self.directory = directory
        self.queue_type = queue_type
        self.inter_node_tls = inter_node_tls
        self.ca = ca
        self.host = "127.0.0.1"
        self.port = 0
        self.metrics_port = 0
        self.dist_port = 0
        self.node_name = f"es4ps-test-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.log = directory / "rabbitmq.log"
        self.server_cert = ca.issue(
            f"rabbitmq-server-{directory.name}",
            "rabbitmq",
            server_names=("localhost", "127.0.0.1"),
            client=inter_node_tls,
        )
        self.client_certs = {user: ca.issue(f"broker-{user}", user, client=True) for user in (PORTAL_USER, WORKER_USER)}
        self._server: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        self._env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"amqps://{self.host}:{self.port}/{BROKER_VHOST}"

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against this node (its own epmd and cookie); the output."""
        result = subprocess.run(
            [RABBITMQCTL, "-n", self.node_name, *args], env=self._env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise ServiceError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()[-500:]}")
        return result.stdout

    @property
    def metrics_url(self) -> str:
        """rabbitmq_prometheus's per-object metrics, as the domain's PodMonitor scrapes them."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def env_for(self, user: str) -> dict[str, str]:
        """The ES4PS_BROKER_* variables of a component logging in as `user`."""
        certs = self.client_certs[user]
        return {
            "ES4PS_BROKER_URL": self.url,
            "ES4PS_BROKER_CA_FILE": str(certs.ca_file),
            "ES4PS_BROKER_CERT_FILE": str(certs.cert_file),
            "ES4PS_BROKER_KEY_FILE": str(certs.key_file),
            "ES4PS_BROKER_SERVER_NAME": "localhost",
            "ES4PS_BROKER_QUEUE_TYPE": self.queue_type,
        }

    @property
    def portal_env(self) -> dict[str, str]:
        return self.env_for(PORTAL_USER)

    @property
    def worker_env(self) -> dict[str, str]:
        return self.env_for(WORKER_USER)

    def _write_config(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        (d / "definitions.json").write_text(json.dumps(broker_definitions(self.queue_type), indent=1))
        (d / "enabled_plugins").write_text(ENABLED_PLUGINS)
        (d / "rabbitmq-env.conf").write_text("")
        # The operator's configuration, with this node's port, files and logging.
        (d / "rabbitmq.conf").write_text(
            rabbitmq_conf(
                listener=f"{self.host}:{self.port}",
                tls_dir=str(self.server_cert.directory),
                definitions_file=str(d / "definitions.json"),
                extra={
                    "log.console": "false",
                    "log.file.level": "info",
                    # The test machine's disk may be fuller than RabbitMQ's default alarm allows.
                    "disk_free_limit.absolute": "50MB",
                    # rabbitmq_prometheus on a port of this node's own (its default, 15692, is host-wide).
                    "prometheus.tcp.port": str(self.metrics_port),
                    "prometheus.tcp.ip": self.host,
                },
            )
        )

    def start(self, timeout_s: float = 60) -> None:
        """Start the node (or restart it on its old port, keeping its queues) and wait until a client logs in."""
        first_start = not self.port
        if first_start:
            self.port = free_port()
            self.metrics_port = free_port()
            epmd_port = free_port()
            self.dist_port = free_port()
            self._write_config()
            d = self.directory
            self._env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(d),
                "LANG": "C.UTF-8",
                "ERL_EPMD_PORT": str(epmd_port),
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_LOGS": str(d / "log" / "node.log"),
                "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            }
            if self.inter_node_tls:
                optfile = d / "inter_node_tls.config"
                optfile.write_text(inter_node_tls_config(str(self.server_cert.directory)))
                self._env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = tls_distribution_args(str(optfile))
                self._env["RABBITMQ_CTL_ERL_ARGS"] = tls_distribution_args(str(optfile))
        # Our own epmd in the foreground, so stopping the broker stops it too (a daemonised one would linger).
        self._epmd = start_process([EPMD, "-port", self._env["ERL_EPMD_PORT"]], self.directory / "epmd.log", self._env)
        self._server = start_process([RABBITMQ_SERVER], self.log, self._env, cwd=self.directory)
        try:
            wait_until(
                self._client_logs_in,
                timeout_s,
                "RabbitMQ",
                self.directory / "log" / "node.log",
                self._server,
                error=ServiceError,
            )
        except ServiceError:
            self.stop()
            raise

    def _client_logs_in(self) -> bool:
        from es4ps_contract.transport import celery_settings
        from kombu import Connection

        settings = celery_settings(self.portal_env)
        connection = Connection(self.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"], connect_timeout=2)
        try:
            connection.connect()
            return True
        except Exception:  # anything short of a login means "not yet"
            return False
        finally:
            connection.release()

    def process_groups(self) -> list[int]:
        """The process groups of the running node (for CPU accounting in benchmarks)."""
        assert self._server is not None
        return [self._server.pid]

    def stop(self) -> None:
        """Stop the node and its epmd; its data stays, so `start` brings the same queues back."""
        stop_process_group(self._server, timeout_s=30)
        stop_process_group(self._epmd)
        self._server = self._epmd = None

    def queue_depth(self, queue: str) -> int:
        """Messages ready in `queue` (a passive declare as the portal or worker)."""
        from es4ps_contract.transport import celery_settings
        from kombu import Connection

        user = PORTAL_USER if queue == RESULTS_QUEUE else WORKER_USER
        settings = celery_settings(self.env_for(user))
        with Connection(self.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"]) as connection:
            return connection.default_channel.queue_declare(queue, passive=True).message_count
