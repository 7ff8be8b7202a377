"""A registration's way from the form to an account, off the request path, so its answer tells nobody anything.

The request (`submit`) seals the password for the workers and writes a
RegistrationRequest, whatever the name and address: the same work, the same
page, the same time, whether or not they are taken. The consumer's thread
(`process_forever`) then makes the registration (the portal user, its
"create user" task, its verification mail), or, when the address has an
account or the name is taken (a person's, or reserved for staff), mails the
address why none was made. Only the address's owner learns which. A taken
form's row stays (its password dropped) until the unconfirmed retention
ends, so the caps on unconfirmed registrations (`provisioning.pending`)
count it as they count a made one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language
from prometheus_client import Counter

from es4ps_portal.accounts import mail
from es4ps_portal.accounts.models import QueuedMail, RegistrationRequest, User
from es4ps_portal.audit.models import AuditRecord
from es4ps_portal.audit.records import Actor
from es4ps_portal.database.rounds import run_rounds_forever
from es4ps_portal.provisioning import publishing

logger = logging.getLogger(__name__)

REGISTRATIONS_HANDLED = Counter(
    "es4ps_portal_registration_requests",
    "Registration forms the consumer handled, by outcome: made (the account and its verification mail), taken"
    " (the name or the address was: the address was mailed why).",
    ["outcome"],
)
BATCH = 50
IDLE_POLL_S = 0.5


def submit(request: HttpRequest, data: dict, registered_from: str) -> uuid.UUID:
    """Leave a checked registration form for the consumer; its registration id (the browser follows it).
    `registered_from`: the client address as the caps count it. Raises PublishError when the password cannot be
    sealed (the portal's keys are missing)."""
    registration_id = uuid.uuid4()
    RegistrationRequest.objects.create(
        registration_id=registration_id,
        username=data["username"],
        email=data["email"],
        first_name=data["first_name"],
        last_name=data["last_name"],
        sealed_password=publishing.seal(data["username"], data["new_password1"]),
        language=get_language() or "",
        address=Actor.of(request, data["username"]).address,
        registered_from=registered_from,
    )
    return registration_id


def _taken(username: str, email: str) -> str | None:
    """The notice the address gets instead of a registration (its address or its name is taken), or None."""
    if User.objects.with_address(email).exists():
        return "web/mail/address_taken"
    if username == settings.SUPERUSER_USERNAME or User.objects.named(username).exists():
        return "web/mail/username_taken"
    return None


def _make(pending: RegistrationRequest) -> bool:
    """Make the registration of `pending`, or mail why not; True when it was made."""
    notice = _taken(pending.username, pending.email)
    if notice is None:
        actor = Actor(pending.username, AuditRecord.ActorKind.PERSON, pending.address)
        try:
            with transaction.atomic():
                user = publishing.register(
                    pending.username, pending.email, pending.first_name, pending.last_name, pending.sealed_password,
                    actor=actor, language=pending.language, registered_from=pending.registered_from,
                    registration_id=pending.registration_id,
                )  # fmt: skip
        except IntegrityError:  # made a moment ago by another replica's consumer
            notice = "web/mail/username_taken"
        else:
            mail.queue_token_mail(user, QueuedMail.Kind.VERIFY, language=pending.language)
            return True
    links = {
        "login_link": mail.page_url("web:login"),
        "reset_link": mail.page_url("web:password-reset"),
        "register_link": mail.page_url("web:register"),
    }
    mail.queue_notice(notice, address=pending.email, context=links, language=pending.language)
    return False


def process_round(limit: int = BATCH) -> int:
    """Handle up to `limit` waiting registration forms, oldest first, and forget the taken ones whose retention
    ended; returns how many forms were handled."""
    handled = 0
    for pending in RegistrationRequest.objects.filter(handled_at=None).order_by("id")[:limit]:
        with transaction.atomic():
            # Whoever marks the row handles it: two replicas' consumers never make one registration twice.
            claimed = RegistrationRequest.objects.filter(pk=pending.pk, handled_at=None)
            if not claimed.update(handled_at=timezone.now(), sealed_password=""):
                continue
            made = _make(pending)
            if made:  # the user counts from now on
                RegistrationRequest.objects.filter(pk=pending.pk).delete()
        REGISTRATIONS_HANDLED.labels("made" if made else "taken").inc()
        handled += 1
    if settings.UNVERIFIED_RETENTION_HOURS:
        ended = timezone.now() - timedelta(hours=settings.UNVERIFIED_RETENTION_HOURS)
        RegistrationRequest.objects.filter(handled_at__lt=ended).delete()
    return handled


def process_forever() -> None:
    """Run rounds until the process ends: at once after a full round, every IDLE_POLL_S otherwise."""
    run_rounds_forever(process_round, batch=BATCH, idle_s=IDLE_POLL_S, what="handling the registration forms")
