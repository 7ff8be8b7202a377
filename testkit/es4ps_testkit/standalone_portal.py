"""A live portal with a real broker and mail catcher and no directory: what the portal's benchmarks measure."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ca import ThrowawayCA
from .live_portal import LivePortal
from .mail import MailCatcher
from .rabbitmq import RabbitMQ
from .worker import ContractKeys


@dataclass(frozen=True)
class StandalonePortal:
    portal: LivePortal
    mail: MailCatcher
    broker: RabbitMQ


@contextlib.contextmanager
def standalone_portal(prefix: str, workers: int) -> Iterator[StandalonePortal]:
    """Start a broker, a mail catcher and a portal with `workers` gunicorn workers in a scratch directory; stop
    them and remove the directory when the block ends."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    broker = RabbitMQ(directory / "rabbitmq", ThrowawayCA(directory / "ca"))
    mail = MailCatcher()
    portal = None
    try:
        broker.start()
        mail.start()
        keys = ContractKeys(directory / "keys")
        env = {**broker.portal_env, **keys.portal_env, **mail.portal_env, "ES4PS_REALM": "BENCH.TEST"}
        portal = LivePortal(directory / "portal", env, workers=workers)
        portal.start()
        yield StandalonePortal(portal, mail, broker)
    finally:
        if portal is not None:
            portal.stop()
        mail.stop()
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)
