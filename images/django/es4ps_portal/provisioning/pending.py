"""Caps on unconfirmed registrations (spec.portal.pendingRegistrations), and the gauge that counts them.

Nothing of an unconfirmed registration is in the directory (its create is
held: `publishing`), but it holds a name and an address in the portal until it
is confirmed or expires. The caps bound that: per domain, per client address
(as the rate limits count one: an IPv6 client by its /64) and per e-mail
domain. They are checked before a registration is written, not under a lock:
registrations sent at the same moment may pass a cap by their number.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from es4ps_portal.accounts.models import User


def unconfirmed() -> QuerySet[User]:
    """Registrations whose address is not proven yet (the partial indexes on email_verified_at serve it)."""
    return User.objects.filter(email_verified_at=None, is_staff=False)


def refusal(registered_from: str, email: str) -> str | None:
    """Why a new registration from `registered_from` for `email` is refused by a cap, or None when it is not."""
    caps = settings.PENDING_REGISTRATION_LIMITS
    email_domain = email.rsplit("@", 1)[-1].lower()
    if unconfirmed().count() >= caps["perDomain"]:
        return _("Too many registrations wait for their address to be confirmed. Please try again in a few hours.")
    if unconfirmed().filter(registered_from=registered_from).count() >= caps["perAddress"]:
        return _(
            "Too many registrations from your network wait for their address to be confirmed. Confirm those"
            " first (follow the link in their mails), or try again in a few hours."
        )
    if unconfirmed().filter(email__iendswith=f"@{email_domain}").count() >= caps["perEmailDomain"]:
        return _(
            "Too many registrations with addresses at %(domain)s wait for their address to be confirmed."
            " Please try again in a few hours."
        ) % {"domain": email_domain}
    return None
