"""Views of the portal: short, with the work done in forms, `tokens`, `mail` and es4ps_portal.provisioning."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.metrics import PASSWORD_RESETS, REGISTRATIONS, VERIFICATIONS
from es4ps_portal.provisioning import publishing
from es4ps_portal.provisioning.status import account_status, follow, followed_user

from . import mail, tokens
from .forms import (
    PASSWORD_EXPIRED,
    RATE_LIMITED,
    CodeForm,
    LoginForm,
    PasswordChangeForm,
    ProfileForm,
    RegistrationForm,
    ResetPasswordForm,
    ResetRequestForm,
)
from .models import EmailToken, User
from .ratelimit import RateLimited, rate_limited

# Only a portal without its signing key says this: a broker that is away delays the change instead (the outbox).
NOT_SAVED = gettext_lazy(
    "The portal cannot send changes to the directory: its setup is incomplete. "
    "Nothing was saved; please tell the staff."
)
UNAVAILABLE = gettext_lazy(
    "We cannot reach the directory service right now. Nothing was changed; please try again in a few minutes."
)
NOT_PROVISIONED = gettext_lazy("Your account is not set up in the directory, so its password cannot be changed here.")
PASSWORD_BEING_SET = gettext_lazy("Your new password is being set. It works once the task below is done.")
PASSWORD_FIELDS = ("new_password1", "new_password2", "current_password", "password")
# Who signed in with a right but expired password, and when (they may choose a new one for a while).
EXPIRED_PASSWORD_SESSION_KEY = "es4ps.expired_password"  # noqa: S105 (a session key)


def _token_param(request: HttpRequest) -> str:
    """The mailed token: in the link's query string, then in the confirming form's hidden field."""
    source = request.POST if request.method == "POST" else request.GET
    return source.get("token", "")[:100]


def _posted(name: str):
    return lambda request: request.POST.get(name, "")


def _followed_username(request: HttpRequest) -> str | None:
    user = followed_user(request)
    return user.username if user else None


def _directory_user_required(view):
    """Signed in, with a directory account (staff-only accounts are managed in the admin)."""

    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.directory_state:
            return redirect("admin:index")
        return view(request, *args, **kwargs)

    return wrapper


# --- what a request over its limit gets -----------------------------------------------------------


def _refused_registration(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    REGISTRATIONS.labels("rate_limited").inc()
    # Not validated (that is what the limit saves); what was typed is kept, passwords aside.
    form = RegistrationForm(initial={k: v for k, v in request.POST.items() if k not in PASSWORD_FIELDS})
    return render(request, "accounts/register.html", {"form": form, "rate_limited": exc.message}, status=429)


def _refused_reset_request(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    PASSWORD_RESETS.labels("request", "rate_limited").inc()
    context = {"form": ResetRequestForm(initial={"email": request.POST.get("email", "")}), "rate_limited": exc.message}
    return render(request, "accounts/password_reset.html", context, status=429)


def _refused_code(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    VERIFICATIONS.labels("code", "rate_limited").inc()
    messages.error(request, exc.message)
    return redirect("provisioning:status")


def _refused_page(template: str, counter):
    """A page saying when to try again; `counter` (a labelled metric) counts the refusal."""

    def refused(request: HttpRequest, exc: RateLimited) -> HttpResponse:
        counter.inc()
        return render(request, template, {"error": exc.message}, status=429)

    return refused


# --- pages ------------------------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:account" if request.user.is_authenticated else "accounts:register")


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
@rate_limited("register", _refused_registration, account=_posted("email"))
def register(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "accounts/register.html", {"form": RegistrationForm()})
    form = RegistrationForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user = publishing.register(
                data["username"],
                data["email"],
                data["first_name"],
                data["last_name"],
                data["new_password1"],
                actor=Actor.of(request, data["username"]),
                language=get_language(),
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
            return redirect("provisioning:status")
    elif _is_repeated_registration(request):
        return redirect("provisioning:status")
    else:
        REGISTRATIONS.labels("invalid").inc()
    return render(request, "accounts/register.html", {"form": form})


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
            tokens.use(record)
            verified = publishing.mark_email_verified(record.user, actor=Actor.of(request, record.user.username))
    except tokens.TokenError as exc:
        VERIFICATIONS.labels(method, "invalid").inc()
        return str(exc)
    except PublishError:
        VERIFICATIONS.labels(method, "failed").inc()
        return NOT_SAVED
    VERIFICATIONS.labels(method, "verified").inc()
    follow(request, record.user)
    if verified is publishing.Verified.ENABLING:
        messages.success(request, _("Thank you, your e-mail address is confirmed. Your account is being enabled."))
    elif verified is publishing.Verified.WAITING_FOR_APPROVAL:
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
        return redirect("accounts:login")
    form = CodeForm(request.POST)
    if not form.is_valid():
        VERIFICATIONS.labels("code", "invalid").inc()
        messages.error(request, " ".join(form.errors["code"]))
        return redirect("provisioning:status")
    try:
        record = tokens.check_code(user, form.cleaned_data["code"], EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError as exc:
        VERIFICATIONS.labels("code", "invalid").inc()
        request.rate_limit.hit()
        messages.error(request, str(exc))
        return redirect("provisioning:status")
    if error := _verify(request, record, "code"):
        messages.error(request, error)
    return redirect("provisioning:status")


def _mailed_token(request: HttpRequest, purpose: EmailToken.Purpose, template: str, invalid):
    """The token of a mailed link and its record, or the page refusing it (unknown, used, expired), counted
    in `invalid` (a labelled metric)."""
    token = _token_param(request)
    try:
        return token, tokens.peek(token, purpose), None
    except tokens.TokenError as exc:
        invalid.inc()
        request.rate_limit.hit()
        return token, None, render(request, template, {"error": str(exc)}, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
@rate_limited(
    "verify",
    _refused_page("accounts/verify.html", VERIFICATIONS.labels("link", "rate_limited")),
    count_every_attempt=False,
    methods=("GET", "POST"),
)
def verify_link(request: HttpRequest) -> HttpResponse:
    """GET shows a button, POST verifies: mail scanners that fetch links must not use up the token."""
    token, record, refused = _mailed_token(
        request, EmailToken.Purpose.VERIFY_EMAIL, "accounts/verify.html", VERIFICATIONS.labels("link", "invalid")
    )
    if refused:
        return refused
    if request.method == "GET":
        return render(request, "accounts/verify.html", {"account": record.user, "token": token})
    if error := _verify(request, record, "link"):
        return render(request, "accounts/verify.html", {"error": error}, status=400)
    return redirect("provisioning:status")


@never_cache
@require_POST
def resend(request: HttpRequest) -> HttpResponse:
    user = followed_user(request)
    if user is None:
        return redirect("accounts:login")
    if user.is_email_verified:
        messages.info(request, _("Your e-mail address is confirmed already."))
        return redirect("provisioning:status")
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
            return redirect("provisioning:status")
    try:
        issued = tokens.issue(user, EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError as exc:
        messages.error(request, str(exc))
        return redirect("provisioning:status")
    if mail.send_token_mail(user, issued):
        messages.success(
            request, _("We sent a new mail to %(email)s. Earlier links no longer work.") % {"email": user.email}
        )
    else:
        messages.error(request, _("We could not send the mail just now. Please try again in a few minutes."))
    return redirect("provisioning:status")


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
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
            return redirect("accounts:password-expired")
        response = super().form_invalid(form)
        if form.has_error("__all__", RATE_LIMITED):
            response.status_code = 429
        return response


def remember_language(user: User | None) -> None:
    """The language of this request becomes the one the person's mails are written in."""
    if user is not None and user.is_authenticated and user.language != get_language():
        User.objects.filter(pk=user.pk).update(language=get_language())


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch (a cookie), also remembered for the mails of the person this browser follows."""
    response = i18n.set_language(request)
    language = request.POST.get("language", "")
    user = followed_user(request)
    if user is not None and language in dict(settings.LANGUAGES):
        User.objects.filter(pk=user.pk).update(language=language)
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
        return redirect("accounts:login")
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
            return redirect("provisioning:status")
    return render(request, "accounts/password_expired.html", {"form": form, "account": user})


@never_cache
@_directory_user_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None, initial={"first_name": user.first_name, "last_name": user.last_name})
    if request.method == "POST" and form.is_valid():
        first_name, last_name = form.cleaned_data["first_name"], form.cleaned_data["last_name"]
        if (first_name, last_name) == (user.first_name, user.last_name):
            messages.info(request, _("Nothing changed."))
            return redirect("accounts:account")
        try:
            publishing.update_names(user, first_name, last_name, actor=Actor.of(request))
        except PublishError:
            form.add_error(None, NOT_SAVED)
        else:
            messages.success(request, _("Your name is being updated in the directory."))
            return redirect("provisioning:status")
    return render(request, "accounts/account.html", {"form": form, "status": account_status(user)})


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@_directory_user_required
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
            return redirect("provisioning:status")
    status_code = 429 if form.has_error("__all__", RATE_LIMITED) else 200
    return render(request, "accounts/password_change.html", {"form": form}, status=status_code)


@never_cache
@require_http_methods(["GET", "POST"])
@rate_limited("reset", _refused_reset_request, account=_posted("email"))
def password_reset(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "accounts/password_reset.html", {"form": ResetRequestForm()})
    form = ResetRequestForm(request.POST)
    if not form.is_valid():
        PASSWORD_RESETS.labels("request", "invalid").inc()
        return render(request, "accounts/password_reset.html", {"form": form})
    user = (
        User.objects.with_address(form.cleaned_data["email"])
        .filter(
            email_verified_at__isnull=False,
            directory_state=User.DirectoryState.ENABLED,
            is_staff=False,
        )
        .first()
    )
    # The same answer whether or not the account exists: the page must not reveal who is registered.
    if user is not None:
        mail.send_token_mail(user, tokens.issue(user, EmailToken.Purpose.RESET_PASSWORD))
    PASSWORD_RESETS.labels("request", "mailed" if user is not None else "no_account").inc()
    return render(request, "accounts/password_reset_sent.html", {"email": form.cleaned_data["email"]})


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
@rate_limited(
    "reset",
    _refused_page("accounts/password_reset_confirm.html", PASSWORD_RESETS.labels("confirm", "rate_limited")),
    count_every_attempt=False,
    methods=("GET", "POST"),
)
def password_reset_confirm(request: HttpRequest) -> HttpResponse:
    token, record, refused = _mailed_token(
        request,
        EmailToken.Purpose.RESET_PASSWORD,
        "accounts/password_reset_confirm.html",
        PASSWORD_RESETS.labels("confirm", "invalid"),
    )
    if refused:
        return refused
    form = ResetPasswordForm(record.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                tokens.use(record)
                publishing.change_password(
                    record.user,
                    form.cleaned_data["new_password1"],
                    actor=Actor.of(request, record.user.username),
                    reset=True,
                )
        except tokens.TokenError as exc:
            PASSWORD_RESETS.labels("confirm", "invalid").inc()
            return render(request, "accounts/password_reset_confirm.html", {"error": str(exc)}, status=400)
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
            return redirect("provisioning:status")
    context = {"form": form, "account": record.user, "token": token}
    return render(request, "accounts/password_reset_confirm.html", context)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form arrived without a valid CSRF token (e.g. an old tab, or cookies blocked)."""
    return render(request, "403_csrf.html", status=403)
