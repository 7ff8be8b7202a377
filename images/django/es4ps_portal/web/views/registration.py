"""Registering, and confirming the address (by the mailed link or its code), and asking for the mail again."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from es4ps_portal.accounts import mail, tokens
from es4ps_portal.accounts.models import EmailToken, User
from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.client_address import client_address
from es4ps_portal.metrics import REGISTRATIONS, VERIFICATIONS
from es4ps_portal.provisioning import pending, publishing

from .. import approval
from ..forms import CodeForm, RegistrationForm
from ..ratelimit import RateLimited, address_key, rate_limited
from ..status import FOLLOWED_SESSION_KEY, follow, followed_user
from .answers import NOT_SAVED, PASSWORD_FIELDS, mailed_token, posted, refused_page


def _followed_username(request: HttpRequest) -> str | None:
    user = followed_user(request)
    return user.username if user else None


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
    if request.method == "GET":
        return render(request, "web/register.html", {"form": RegistrationForm()})
    form = RegistrationForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        registered_from = address_key(client_address(request))
        if capped := pending.refusal(registered_from, data["email"]):
            REGISTRATIONS.labels("too_many_pending").inc()
            form.add_error(None, capped)
            return render(request, "web/register.html", {"form": form}, status=429)
        try:
            user = publishing.register(
                data["username"],
                data["email"],
                data["first_name"],
                data["last_name"],
                data["new_password1"],
                actor=Actor.of(request, data["username"]),
                language=get_language(),
                registered_from=registered_from,
            )
        except PublishError:
            REGISTRATIONS.labels("failed").inc()
            form.add_error(None, NOT_SAVED)
        except IntegrityError:
            REGISTRATIONS.labels("invalid").inc()
            form.add_error(None, _("This username or address was taken a moment ago. Please choose another one."))
        else:
            REGISTRATIONS.labels("accepted").inc()
            follow(request, user)
            if not mail.send_token_mail(user, tokens.issue(user, EmailToken.Purpose.VERIFY_EMAIL)):
                messages.warning(request, _("We could not send the mail just now. Use “Send the mail again” below."))
            return redirect("web:status")
    elif _is_repeated_registration(request):
        return redirect("web:status")
    else:
        REGISTRATIONS.labels("invalid").inc()
    return render(request, "web/register.html", {"form": form})


def _is_repeated_registration(request: HttpRequest) -> bool:
    """The form was sent again for the account this browser just registered (a double click, a reload)."""
    followed = followed_user(request)
    return (
        followed is not None
        and request.POST.get("username", "").strip().lower() == followed.username
        and request.POST.get("email", "").strip().lower() == followed.email.lower()
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
@rate_limited("verify", _refused_code, account=_followed_username, count_every_attempt=False)
def verify_code(request: HttpRequest) -> HttpResponse:
    user = followed_user(request)
    if user is None:
        return redirect("web:login")
    form = CodeForm(request.POST)
    if not form.is_valid():
        VERIFICATIONS.labels("code", "invalid").inc()
        messages.error(request, " ".join(form.errors["code"]))
        return redirect("web:status")
    try:
        record = tokens.check_code(user, form.cleaned_data["code"], EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError as exc:
        VERIFICATIONS.labels("code", "invalid").inc()
        request.rate_limit.hit()
        messages.error(request, str(exc))
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
    user = followed_user(request)
    if user is None:
        return redirect("web:login")
    if user.is_email_verified:
        messages.info(request, _("Your e-mail address is confirmed already."))
        return redirect("web:status")
    sent_at = tokens.latest_sent_at(user, EmailToken.Purpose.VERIFY_EMAIL)
    if sent_at is not None:
        wait = sent_at + timedelta(seconds=settings.RESEND_COOLDOWN_S) - timezone.now()
        if wait.total_seconds() > 0:
            seconds = int(wait.total_seconds()) + 1
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
    try:
        issued = tokens.issue(user, EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError as exc:
        messages.error(request, str(exc))
        return redirect("web:status")
    if mail.send_token_mail(user, issued):
        messages.success(
            request, _("We sent a new mail to %(email)s. Earlier links no longer work.") % {"email": user.email}
        )
    else:
        messages.error(request, _("We could not send the mail just now. Please try again in a few minutes."))
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
    messages.success(request, _("Your registration was withdrawn. Register again with another username."))
    return redirect("web:register")
