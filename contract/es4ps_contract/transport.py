"""How both sides reach the broker: AMQPS with mutual TLS and EXTERNAL login.

The operator mounts the component's client certificate (from cert-manager)
and sets the variables of `VARIABLES`; the broker maps the certificate's
common name to a RabbitMQ user, so no component holds a broker password.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from .environment import Environment, SettingError, Variable
from .tasks import PROVISIONING_QUEUE, RESULT_TASK_NAME, RESULTS_QUEUE, TASK_NAME_PREFIX

QUEUE_TYPES = ("classic", "quorum")


def broker_queue(name: str, queue_type: str = "classic") -> Queue:
    """One of the two queues, bound to a direct exchange of the same name.

    The broker's definitions create both (see docs/interfaces.md); clients
    never declare them (`no_declare`), so neither side needs RabbitMQ's
    configure permission, nor the read permission on the other side's queue
    that binding a queue would take. The queue type (quorum on a clustered
    broker) is only stated so that Celery consumes a quorum queue with
    per-consumer prefetch, which is all such a queue supports.
    """
    arguments = {"x-queue-type": queue_type} if queue_type == "quorum" else None
    exchange = Exchange(name, type="direct", durable=True)
    return Queue(name, exchange, routing_key=name, durable=True, no_declare=True, queue_arguments=arguments)


def _least_privilege_consumer() -> type:
    """Celery's task consumer without its native delayed delivery step.

    That step (taken when the queues are quorum queues) declares exchanges and
    binds the queues to them, which needs the configure right no client has
    here; a retry's countdown waits in the worker instead, as with classic queues.
    """
    from celery.worker.consumer import Consumer

    class LeastPrivilegeConsumer(Consumer):
        class Blueprint(Consumer.Blueprint):
            default_steps = [step for step in Consumer.Blueprint.default_steps if not step.endswith(":DelayedDelivery")]

    return LeastPrivilegeConsumer


LeastPrivilegeConsumer = _least_privilege_consumer()


def _route(queue: str) -> dict[str, str]:
    return {"queue": queue, "exchange": queue, "routing_key": queue}


VARIABLES = (
    Variable("ES4PS_BROKER_URL", "`amqps://<host>:5671/<vhost>`, no credentials: the certificate logs in"),
    Variable("ES4PS_BROKER_CA_FILE", "the CA that signed the broker's certificate (`ca.crt`)"),
    Variable("ES4PS_BROKER_CERT_FILE", "this component's client certificate (`tls.crt`); its CN is the user"),
    Variable("ES4PS_BROKER_KEY_FILE", "its key (`tls.key`)"),
    Variable("ES4PS_BROKER_SERVER_NAME", "the name checked in the broker's certificate (empty: the URL's host)", ""),
    Variable(
        "ES4PS_BROKER_QUEUE_TYPE", "`classic`, or `quorum` for a clustered broker (as its definitions say)", "classic"
    ),
)


def celery_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Celery settings shared by the portal and the workers, from the environment."""
    env = Environment(VARIABLES, environ)
    url = env.text("ES4PS_BROKER_URL")
    ca_file = env.text("ES4PS_BROKER_CA_FILE")
    cert_file = env.text("ES4PS_BROKER_CERT_FILE")
    key_file = env.text("ES4PS_BROKER_KEY_FILE")
    queue_type = env.choice("ES4PS_BROKER_QUEUE_TYPE", QUEUE_TYPES)
    parts = urlsplit(url)
    if parts.scheme != "amqps" or not parts.hostname:
        raise SettingError("ES4PS_BROKER_URL must be an amqps:// URL with a host")
    if parts.username or parts.password:
        raise SettingError("ES4PS_BROKER_URL must not carry credentials: the client certificate logs in")
    return {
        "broker_url": url,
        "broker_login_method": "EXTERNAL",
        "broker_use_ssl": {
            "ca_certs": ca_file,
            "certfile": cert_file,
            "keyfile": key_file,
            "cert_reqs": ssl.CERT_REQUIRED,
            # py-amqp checks the broker's host name only when this is given.
            "server_hostname": env.text("ES4PS_BROKER_SERVER_NAME") or parts.hostname,
        },
        "broker_connection_retry_on_startup": True,
        "broker_heartbeat": 30,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_queues": (broker_queue(PROVISIONING_QUEUE, queue_type), broker_queue(RESULTS_QUEUE, queue_type)),
        "task_create_missing_queues": False,
        "task_default_queue": PROVISIONING_QUEUE,
        # Every task goes through the exchange named after its queue. Naming the exchange also keeps
        # Celery from publishing to the default exchange, which would need write access to it (and
        # with it to every queue of the vhost).
        "task_routes": {
            RESULT_TASK_NAME: _route(RESULTS_QUEUE),
            f"{TASK_NAME_PREFIX}*": _route(PROVISIONING_QUEUE),
        },
        "worker_consumer": f"{__name__}:LeastPrivilegeConsumer",
        # Least privilege on the broker: no pidbox or event exchanges to declare.
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "enable_utc": True,
    }
