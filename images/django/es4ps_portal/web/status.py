"""What the status page shows for an account, and whose status a browser follows without signing in.

Until its address is confirmed, a registration's page shows nothing but
"confirm your address" (`waiting_status`): the same page a browser gets
after registering with a name or an address that is taken (`pend`), where
no account is made and the address's owner is mailed instead. So the page,
its JSON and its forms answer alike whether a name or address exists; what
differs travels by mail, to the address.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from es4ps_contract.events import REASON_USERNAME_TAKEN
from es4ps_contract.tasks import Operation

from es4ps_portal.accounts.models import User
from es4ps_portal.provisioning.models import ProvisioningTask

# The account whose status this browser follows without being signed in (after registering or verifying).
FOLLOWED_SESSION_KEY = "es4ps.status_user"
# What this browser registered last: {"username", "email", "sent_at"} (when its last mail was asked for).
PENDING_SESSION_KEY = "es4ps.pending"


def pend(request: HttpRequest, username: str, email: str) -> None:
    """Remember the registration this browser sent, made or not (the name or address may be taken)."""
    request.session[PENDING_SESSION_KEY] = {"username": username, "email": email, "sent_at": time.time()}


def pending(request: HttpRequest) -> dict | None:
    """The registration this browser sent last, if any."""
    return request.session.get(PENDING_SESSION_KEY)


def note_mail_asked(request: HttpRequest) -> None:
    """A new mail was asked for the pending registration: the next may be asked RESEND_COOLDOWN_S later."""
    if marker := pending(request):
        request.session[PENDING_SESSION_KEY] = {**marker, "sent_at": time.time()}


def waiting_status(email: str) -> dict:
    """The status of a registration whose address is not confirmed: nothing but that, whoever asks."""
    return {
        "username": "",
        "realm": settings.REALM,
        "email_verified": False,
        "state": "waiting_for_verification",
        "message": _("Confirm your e-mail address: follow the link in the mail we sent to %(email)s, or type its code.")
        % {"email": email},
        "can_withdraw": False,
        "tasks": [],
    }


def follow(request: HttpRequest, registration: User | uuid.UUID) -> None:
    """This browser follows the registration (a person's, or the id of one the consumer may still make)."""
    registration_id = registration.registration_id if isinstance(registration, User) else registration
    request.session[FOLLOWED_SESSION_KEY] = str(registration_id)


def followed_user(request: HttpRequest) -> User | None:
    """The signed-in person with a directory account, else the account this browser registered or verified."""
    if request.user.is_authenticated and request.user.directory_state:
        return request.user
    registration_id = request.session.get(FOLLOWED_SESSION_KEY)
    try:
        return User.objects.filter(registration_id=uuid.UUID(str(registration_id))).first() if registration_id else None
    except ValueError:  # a session from before registrations were followed by their id
        return None


def _name_taken(tasks: list[ProvisioningTask]) -> bool:
    """The directory refused the account's create because another object holds its name, and no create worked."""
    creates = [t for t in tasks if t.operation == Operation.CREATE_USER.value]
    return bool(creates) and all(
        t.state == ProvisioningTask.State.FAILED and t.reason == REASON_USERNAME_TAKEN for t in creates
    )


def account_status(user: User) -> dict:
    """What the status page shows: the overall state, a sentence, and the recent tasks."""
    user.refresh_from_db(fields=["email_verified_at", "directory_state", "approval"])
    if not user.is_email_verified:
        return waiting_status(user.email)
    # The ten newest tasks, oldest first (the order they happened in).
    tasks = list(reversed(user.provisioning_tasks.all()[:10]))
    can_withdraw = False
    if user.directory_state == User.DirectoryState.FAILED:
        failed = next((t for t in reversed(tasks) if t.state == ProvisioningTask.State.FAILED), None)
        state = "failed"
        if _name_taken(tasks) and user.imported_at is not None:
            # An imported person's claim before the administrator moved the account (docs/migration.md).
            message = _(
                "Your account cannot be claimed yet: your IT staff have not made it ready. Please ask them,"
                " then ask for a new mail and set your password again."
            )
        elif _name_taken(tasks):
            # Refused at confirmation: nothing of it is in the directory, so it can go and free the address.
            state, can_withdraw = "name_taken", True
            message = _(
                "The username %(name)s is already used in the directory, so your account could not be created."
                " Withdraw this registration below, then register again with another username."
            ) % {"name": user.username}
        elif failed and failed.reason:
            message = _("Setting up your account failed: %(reason)s") % {"reason": _(failed.reason)}
        else:
            message = _("Setting up your account failed.")
    elif user.approval == User.Approval.REFUSED:
        state = "refused"
        message = _("Your registration was not approved. Its account is being deleted.")
    elif user.approval == User.Approval.WAITING:
        state = "waiting_for_approval"
        message = _(
            "Your e-mail address is confirmed. Your account is waiting for approval by staff:"
            " we will send you a mail when they have decided."
        )
    elif user.directory_state == User.DirectoryState.DISABLED:
        state = "disabled"
        message = _("Your account is disabled. Please ask your IT staff.")
    elif user.directory_state == User.DirectoryState.ENABLED:
        state = "ready"
        message = _("Your account is ready. Sign in as %(name)s.") % {"name": f"{user.username}@{settings.REALM}"}
    else:
        state = "in_progress"
        message = _("Your account is being set up. This page updates by itself.")
    return {
        "username": user.username,
        "realm": settings.REALM,
        "email_verified": user.is_email_verified,
        "state": state,
        "message": message,
        "can_withdraw": can_withdraw,
        "tasks": [
            {
                "operation": t.operation,
                "label": str(t.label),
                "state": t.state,
                "state_label": t.get_state_display(),
                # The workers' reasons are the contract's sentences: shown translated when the catalogue has them.
                "reason": _(t.reason) if t.reason else "",
                "created_at": t.created_at.isoformat(),
                "finished_at": t.finished_at.isoformat() if t.finished_at else None,
            }
            for t in tasks
        ],
    }
