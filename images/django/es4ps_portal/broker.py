"""The portal's transport: the Celery app that publishes tasks (with confirms) and runs the consumer.

Transport only: what is published and what a result means belong to
es4ps_portal.provisioning (its `outbox` relay publishes, its `tasks` module
holds the consumer's task). Only the consumer talks to the broker; the web
processes write to the outbox.
The broker settings (ES4PS_BROKER_* in Django's settings) become Celery
settings through the task contract (`es4ps_contract.transport`) the first
time they are needed, so commands that do not talk to the broker (`migrate`,
`collectstatic`) run without them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery
from django.conf import settings
from es4ps_contract.environment import SettingError
from es4ps_contract.tasks import PROVISIONING_QUEUE
from es4ps_contract.transport import celery_settings
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)

app = Celery("es4ps_portal", set_as_current=False)

_PORTAL_CELERY_SETTINGS = {
    # The relay marks a task published only once the broker has taken it:
    # with publisher confirms a refused or lost publish raises instead of vanishing.
    "broker_transport_options": {"confirm_publish": True},
    "broker_connection_timeout": 5,
    "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    "worker_prefetch_multiplier": 8,
    "worker_hijack_root_logger": False,
}


class PublishError(RuntimeError):
    """A task could not be handed to the broker. The message never carries task content."""


@functools.cache
def configured_app() -> Celery:
    """The Celery app with the broker settings applied; raises SettingError when they are missing."""
    app.conf.update(celery_settings(settings.BROKER_ENVIRON))
    app.conf.update(_PORTAL_CELERY_SETTINGS)
    return app


def publish(task_name: str, envelope: dict[str, Any], task_id: str) -> None:
    """Publish one signed task envelope to the provisioning queue and wait for the broker's confirmation."""
    try:
        configured_app().send_task(task_name, args=[envelope], task_id=task_id, queue=PROVISIONING_QUEUE)
    except SettingError as exc:
        raise PublishError(f"the broker is not configured: {exc}") from None
    except (KombuError, OSError) as exc:
        logger.error("publishing task %s (%s) failed: %s", task_id, task_name, type(exc).__name__)
        raise PublishError("the broker did not take the task") from None
