"""Fixture `mail_catcher`: a real SMTP server for the session (plain SMTP on 127.0.0.1), es4ps_testkit.mail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..mail import MailCatcher


@pytest.fixture(scope="session")
def mail_catcher() -> Iterator[MailCatcher]:
    """A real SMTP server for the session (plain SMTP on 127.0.0.1)."""
    catcher = MailCatcher()
    try:
        catcher.start()
    except Exception as exc:  # noqa: BLE001 - report whatever stopped the server from starting
        pytest.fail(f"the SMTP server did not start: {exc}", pytrace=False)
    yield catcher
    catcher.stop()
