"""What the consumer's threads do, run in the test's own process for the in-process portal tests.

The live portal's `es4ps-portal consume` makes the registrations the forms
left (es4ps_portal.web.registrations) and sends the queued mails
(es4ps_portal.accounts.mail_outbox) in threads of its own; a test using
Django's test client runs the same rounds, in its own transaction, when it
wants to see what they did.
"""

from __future__ import annotations


def consumer_round() -> None:
    """Make every waiting registration, then send every due mail."""
    from es4ps_portal.accounts.mail_outbox import relay_round
    from es4ps_portal.web.registrations import process_round

    while process_round():
        pass
    while relay_round():
        pass
