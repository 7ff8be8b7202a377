"""Caps on unconfirmed registrations (spec.portal.pendingRegistrations), and the gauge that counts them.

Nothing of an unconfirmed registration is in the directory (its create is
held: `publishing`), but it holds a name and an address in the portal until it
is confirmed or expires. The caps bound that: per domain, per client address
(as the rate limits count one: an IPv6 client by its /64) and per e-mail
domain. They are checked before a registration is written, not under a lock:
registrations sent at the same moment may pass a cap by their number. A
registration form counts from the moment it is sent, made or not (a taken
name or address makes none: its form is kept for as long), so the caps do
not tell either whether a name or an address is taken.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from es4ps_portal.accounts.models import RegistrationRequest, User


def unconfirmed() -> QuerySet[User]:
    """Registrations whose address is not proven yet (the partial indexes on email_verified_at serve it); imported
    people waiting to claim their accounts are not registrations (an import must not fill the caps)."""
    return User.objects.filter(email_verified_at=None, is_staff=False, imported_at=None)


def _held(**lookup) -> int:
    """Unconfirmed registrations and registration forms not made into one (waiting, or taken) matching `lookup`."""
    return unconfirmed().filter(**lookup).count() + RegistrationRequest.objects.filter(**lookup).count()


def refusal(registered_from: str, email: str) -> str | None:
    """Why a new registration from `registered_from` for `email` is refused by a cap, or None when it is not."""
    caps = settings.PENDING_REGISTRATION_LIMITS
    email_domain = email.rsplit("@", 1)[-1].lower()
    if _held() >= caps["perDomain"]:
        return _("Too many registrations wait for their address to be confirmed. Please try again in a few hours.")
    if _held(registered_from=registered_from) >= caps["perAddress"]:
        return _(
            "Too many registrations from your network wait for their address to be confirmed. Confirm those"
            " first (follow the link in their mails), or try again in a few hours."
        )
    if _held(email__iendswith=f"@{email_domain}") >= caps["perEmailDomain"]:
        return _(
            "Too many registrations with addresses at %(domain)s wait for their address to be confirmed."
            " Please try again in a few hours."
        ) % {"domain": email_domain}
    return None
