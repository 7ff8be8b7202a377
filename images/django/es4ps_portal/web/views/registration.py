"""Registering, and confirming the address (by the mailed link or its code), and asking for the mail again."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from es4ps_portal.accounts import mail, tokens
from es4ps_portal.accounts.models import EmailToken, QueuedMail, User
from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.client_address import client_address
from es4ps_portal.metrics import REGISTRATIONS, VERIFICATIONS
from es4ps_portal.provisioning import pending as pending_caps
from es4ps_portal.provisioning import publishing

from .. import approval, registrations
from ..forms import CodeForm, RegistrationForm
from ..ratelimit import RateLimited, address_key, rate_limited
from ..status import FOLLOWED_SESSION_KEY, PENDING_SESSION_KEY, follow, followed_user, note_mail_asked, pend, pending
from .answers import NOT_SAVED, PASSWORD_FIELDS, mailed_token, posted, refused_page

# Every code that does not confirm the address gets this answer, whether or not there is a registration.
CODE_REFUSED = gettext_lazy(
    "That code does not confirm your address: it is not right, or no longer valid. Check the newest mail, or use its"
    " link."
)


def _waiting_address(request: HttpRequest) -> str | None:
    """The address this browser waits to confirm: the rate limits' account for codes."""
    marker = pending(request)
    if marker is not None:
        return marker["email"]
    user = followed_user(request)
    return user.email if user else None


def _refused_registration(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    REGISTRATIONS.labels("rate_limited").inc()
    # Not validated (that is what the limit saves); what was typed is kept, passwords aside.
    form = RegistrationForm(initial={k: v for k, v in request.POST.items() if k not in PASSWORD_FIELDS})
    return render(request, "web/register.html", {"form": form, "rate_limited": exc.message}, status=429)


def _refused_code(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    VERIFICATIONS.labels("code", "rate_limited").inc()
    messages.error(request, exc.message)
    return redirect("web:status")


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
@rate_limited("register", _refused_registration, account=posted("email"))
def register(request: HttpRequest) -> HttpResponse:
    """The same answer, and the same work, whether or not the name or address is taken (web.registrations): the
    page that asks to confirm the address."""
    if request.method == "GET":
        return render(request, "web/register.html", {"form": RegistrationForm()})
    if _is_repeated_registration(request):
        return redirect("web:status")
    form = RegistrationForm(request.POST)
    if not form.is_valid():
        REGISTRATIONS.labels("invalid").inc()
        return render(request, "web/register.html", {"form": form})
    registered_from = address_key(client_address(request))
    if capped := pending_caps.refusal(registered_from, form.cleaned_data["email"]):
        REGISTRATIONS.labels("too_many_pending").inc()
        form.add_error(None, capped)
        return render(request, "web/register.html", {"form": form}, status=429)
    try:
        registration_id = registrations.submit(request, form.cleaned_data, registered_from)
    except PublishError:
        REGISTRATIONS.labels("failed").inc()
        form.add_error(None, NOT_SAVED)
        return render(request, "web/register.html", {"form": form})
    REGISTRATIONS.labels("accepted").inc()
    # The browser follows the registration that may be made (the consumer decides), and remembers what it sent.
    follow(request, registration_id)
    pend(request, form.cleaned_data["username"], form.cleaned_data["email"])
    return redirect("web:status")


def _is_repeated_registration(request: HttpRequest) -> bool:
    """The form was sent again for what this browser just registered (a double click, a reload)."""
    marker = pending(request)
    return (
        marker is not None
        and request.POST.get("username", "").strip().lower() == marker["username"]
        and request.POST.get("email", "").strip().lower() == marker["email"].lower()
    )


def _verify(request: HttpRequest, record: EmailToken, method: str) -> str | None:
    """Use a checked verification token (`method`: link or code): mark the address verified, publish "enable user".

    Returns why that failed, or None when it worked.
    """
    try:
        with transaction.atomic():
            # The registration's row is locked before its token (as expiry locks it before dropping both).
            verified = approval.mark_email_verified(record.user, actor=Actor.of(request, record.user.username))
            tokens.use(record)
    except User.DoesNotExist:
        VERIFICATIONS.labels(method, "invalid").inc()
        return _("This registration has expired. Please register again.")
    except tokens.TokenError as exc:
        VERIFICATIONS.labels(method, "invalid").inc()
        return str(exc)
    except PublishError:
        VERIFICATIONS.labels(method, "failed").inc()
        return NOT_SAVED
    VERIFICATIONS.labels(method, "verified").inc()
    follow(request, record.user)
    if verified is approval.Verified.ENABLING:
        messages.success(request, _("Thank you, your e-mail address is confirmed. Your account is being enabled."))
    elif verified is approval.Verified.WAITING_FOR_APPROVAL:
        messages.info(
            request,
            _("Thank you, your e-mail address is confirmed. Staff approve new accounts; we will mail you."),
        )
    else:
        messages.info(request, _("Thank you, your e-mail address is confirmed."))
    return None


@never_cache
@require_POST
@rate_limited("verify", _refused_code, account=_waiting_address, count_every_attempt=False)
def verify_code(request: HttpRequest) -> HttpResponse:
    """A code typed on the page: one answer for every code that does not confirm the address (wrong, used up,
    of a mail not sent yet, or of a registration that was never made)."""
    user = followed_user(request)
    if user is None and pending(request) is None:
        return redirect("web:login")
    form = CodeForm(request.POST)
    if not form.is_valid():
        VERIFICATIONS.labels("code", "invalid").inc()
        messages.error(request, " ".join(form.errors["code"]))
        return redirect("web:status")
    try:
        if user is None:
            raise tokens.TokenError(CODE_REFUSED)
        record = tokens.check_code(user, form.cleaned_data["code"], EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError:
        VERIFICATIONS.labels("code", "invalid").inc()
        request.rate_limit.hit()
        messages.error(request, CODE_REFUSED)
        return redirect("web:status")
    if error := _verify(request, record, "code"):
        messages.error(request, error)
    return redirect("web:status")


@never_cache
@require_http_methods(["GET", "POST"])
@rate_limited(
    "verify",
    refused_page("web/verify.html", VERIFICATIONS.labels("link", "rate_limited")),
    count_every_attempt=False,
    methods=("GET", "POST"),
)
def verify_link(request: HttpRequest) -> HttpResponse:
    """GET shows a button, POST verifies: mail scanners that fetch links must not use up the token."""
    token, record, refused = mailed_token(
        request, EmailToken.Purpose.VERIFY_EMAIL, "web/verify.html", VERIFICATIONS.labels("link", "invalid")
    )
    if refused:
        return refused
    if request.method == "GET":
        return render(request, "web/verify.html", {"account": record.user, "token": token})
    if error := _verify(request, record, "link"):
        return render(request, "web/verify.html", {"error": error}, status=400)
    return redirect("web:status")


@never_cache
@require_POST
def resend(request: HttpRequest) -> HttpResponse:
    """Another verification mail, answered alike for a registration and for one that was never made: the wait
    between mails is the browser's own, and a registration's limit of mails holds silently."""
    marker, user = pending(request), followed_user(request)
    if marker is None and user is None:
        return redirect("web:login")
    if user is not None and user.is_email_verified:
        messages.info(request, _("Your e-mail address is confirmed already."))
        return redirect("web:status")
    email = marker["email"] if marker else user.email
    wait = (marker or {}).get("sent_at", 0) + settings.RESEND_COOLDOWN_S - time.time()
    if wait > 0:
        seconds = int(wait) + 1
        messages.error(
            request,
            ngettext(
                "We sent a mail a moment ago. You can ask again in %(seconds)d second.",
                "We sent a mail a moment ago. You can ask again in %(seconds)d seconds.",
                seconds,
            )
            % {"seconds": seconds},
        )
        return redirect("web:status")
    if user is not None and tokens.verification_mails_left(user):
        mail.queue_token_mail(user, QueuedMail.Kind.VERIFY)
    note_mail_asked(request)
    messages.success(request, _("We sent a new mail to %(email)s. Earlier links no longer work.") % {"email": email})
    return redirect("web:status")


@never_cache
@require_POST
def withdraw(request: HttpRequest) -> HttpResponse:
    """Withdraw the followed registration whose name the directory refused (nothing of it is there), so the person
    can register again with another username and the same address."""
    user = followed_user(request)
    if user is None:
        return redirect("web:register")
    if not publishing.withdraw_failed_registration(user, actor=Actor.of(request, user.username)):
        messages.error(request, _("This registration cannot be withdrawn here. Please ask your IT staff."))
        return redirect("web:status")
    request.session.pop(FOLLOWED_SESSION_KEY, None)
    request.session.pop(PENDING_SESSION_KEY, None)
    messages.success(request, _("Your registration was withdrawn. Register again with another username."))
    return redirect("web:register")
