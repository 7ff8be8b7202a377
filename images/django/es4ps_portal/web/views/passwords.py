"""Signing in, and the password: changed by its owner, chosen anew when it expired, reset through a mailed link."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from es4ps_portal.accounts import mail, tokens
from es4ps_portal.accounts.models import EmailToken, User
from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.metrics import PASSWORD_RESETS
from es4ps_portal.provisioning import publishing

from ..forms import PASSWORD_EXPIRED, RATE_LIMITED, LoginForm, PasswordChangeForm, ResetPasswordForm, ResetRequestForm
from ..ratelimit import RateLimited, rate_limited
from ..status import follow
from .answers import (
    NOT_PROVISIONED,
    NOT_SAVED,
    PASSWORD_BEING_SET,
    PASSWORD_FIELDS,
    UNAVAILABLE,
    directory_user_required,
    mailed_token,
    posted,
    refused_page,
)
from .pages import remember_language

# Who signed in with a right but expired password, and when (they may choose a new one for a while).
EXPIRED_PASSWORD_SESSION_KEY = "es4ps.expired_password"  # noqa: S105 (a session key)


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "web/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        remember_language(self.request.user)
        return response

    def form_invalid(self, form):
        if form.has_error("__all__", PASSWORD_EXPIRED):
            self.request.session[EXPIRED_PASSWORD_SESSION_KEY] = {
                "user": form.expired_user.pk,
                "at": timezone.now().timestamp(),
            }
            return redirect("web:password-expired")
        response = super().form_invalid(form)
        if form.has_error("__all__", RATE_LIMITED):
            response.status_code = 429
        return response


def _expired_password_user(request: HttpRequest) -> User | None:
    """The person who just signed in with their right but expired password, while they may choose a new one."""
    marker = request.session.get(EXPIRED_PASSWORD_SESSION_KEY) or {}
    if timezone.now().timestamp() - marker.get("at", 0) > settings.EXPIRED_PASSWORD_CHANGE_S:
        return None
    return User.objects.filter(pk=marker.get("user"), is_staff=False).first()


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
def password_expired(request: HttpRequest) -> HttpResponse:
    """A new password for an expired one: the sign-in with the old one proved who this is, minutes ago."""
    user = _expired_password_user(request)
    if user is None:
        request.session.pop(EXPIRED_PASSWORD_SESSION_KEY, None)
        messages.info(request, _("Please sign in again with your current password."))
        return redirect("web:login")
    form = ResetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            publishing.change_password(user, form.cleaned_data["new_password1"], actor=Actor.of(request, user.username))
        except publishing.NotProvisioned:
            form.add_error(None, NOT_PROVISIONED)
        except PublishError:
            form.add_error(None, UNAVAILABLE)
        else:
            request.session.pop(EXPIRED_PASSWORD_SESSION_KEY, None)
            follow(request, user)
            messages.success(request, PASSWORD_BEING_SET)
            return redirect("web:status")
    return render(request, "web/password_expired.html", {"form": form, "account": user})


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@directory_user_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            publishing.change_password(request.user, form.cleaned_data["new_password1"], actor=Actor.of(request))
        except publishing.NotProvisioned:
            form.add_error(None, NOT_PROVISIONED)
        except PublishError:
            form.add_error(None, NOT_SAVED)
        else:
            update_session_auth_hash(request, request.user)  # this session stays; the others end
            messages.success(request, PASSWORD_BEING_SET)
            return redirect("web:status")
    status_code = 429 if form.has_error("__all__", RATE_LIMITED) else 200
    return render(request, "web/password_change.html", {"form": form}, status=status_code)


def _refused_reset_request(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    PASSWORD_RESETS.labels("request", "rate_limited").inc()
    context = {"form": ResetRequestForm(initial={"email": request.POST.get("email", "")}), "rate_limited": exc.message}
    return render(request, "web/password_reset.html", context, status=429)


@never_cache
@require_http_methods(["GET", "POST"])
@rate_limited("reset", _refused_reset_request, account=posted("email"))
def password_reset(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "web/password_reset.html", {"form": ResetRequestForm()})
    form = ResetRequestForm(request.POST)
    if not form.is_valid():
        PASSWORD_RESETS.labels("request", "invalid").inc()
        return render(request, "web/password_reset.html", {"form": form})
    # The same answer, and the same work, whether or not the address has an account: the mail relay finds out.
    mail.queue_reset_by_address(form.cleaned_data["email"])
    PASSWORD_RESETS.labels("request", "queued").inc()
    return render(request, "web/password_reset_sent.html", {"email": form.cleaned_data["email"]})


def _reset_or_claim(user: User, password: str, actor: Actor) -> None:
    """A mailed link proved the address: the new password of an enabled account, or the claim of an imported
    person's account (the same mail, the same page: docs/migration.md)."""
    if user.is_claimable:
        publishing.claim_imported(user, password, actor=actor)
    else:
        publishing.change_password(user, password, actor=actor, reset=True)


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
@rate_limited(
    "reset",
    refused_page("web/password_reset_confirm.html", PASSWORD_RESETS.labels("confirm", "rate_limited")),
    count_every_attempt=False,
    methods=("GET", "POST"),
)
def password_reset_confirm(request: HttpRequest) -> HttpResponse:
    token, record, refused = mailed_token(
        request,
        EmailToken.Purpose.RESET_PASSWORD,
        "web/password_reset_confirm.html",
        PASSWORD_RESETS.labels("confirm", "invalid"),
    )
    if refused:
        return refused
    form = ResetPasswordForm(record.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                tokens.use(record)
                _reset_or_claim(
                    record.user, form.cleaned_data["new_password1"], Actor.of(request, record.user.username)
                )
        except tokens.TokenError as exc:
            PASSWORD_RESETS.labels("confirm", "invalid").inc()
            return render(request, "web/password_reset_confirm.html", {"error": str(exc)}, status=400)
        except publishing.NotProvisioned:
            PASSWORD_RESETS.labels("confirm", "failed").inc()
            form.add_error(None, NOT_PROVISIONED)
        except PublishError:
            PASSWORD_RESETS.labels("confirm", "failed").inc()
            form.add_error(None, NOT_SAVED)
        else:
            PASSWORD_RESETS.labels("confirm", "accepted").inc()
            follow(request, record.user)
            messages.success(request, PASSWORD_BEING_SET)
            return redirect("web:status")
    context = {"form": form, "account": record.user, "token": token}
    return render(request, "web/password_reset_confirm.html", context)
