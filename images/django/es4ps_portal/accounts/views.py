"""Views of the portal: short, with the work done in forms, `provisioning`, `tokens` and `mail`."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from es4ps_portal.broker import PublishError

from . import mail, provisioning, ratelimit, tokens
from .forms import (
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

# The account whose status this browser follows without being signed in (after registering or verifying).
STATUS_SESSION_KEY = "es4ps.status_user"
UNAVAILABLE = "We cannot reach the directory service right now. Nothing was changed; please try again in a few minutes."
PASSWORD_FIELDS = ("new_password1", "new_password2", "current_password", "password")


def _follow(request: HttpRequest, user: User) -> None:
    request.session[STATUS_SESSION_KEY] = user.pk


def _status_user(request: HttpRequest) -> User | None:
    if request.user.is_authenticated and request.user.directory_state:
        return request.user
    pk = request.session.get(STATUS_SESSION_KEY)
    return User.objects.filter(pk=pk).first() if pk else None


def _token_param(request: HttpRequest) -> str:
    """The mailed token: in the link's query string, then in the confirming form's hidden field."""
    source = request.POST if request.method == "POST" else request.GET
    return source.get("token", "")[:100]


def _directory_user_required(view):
    """Signed in, with a directory account (staff-only accounts are managed in the admin)."""

    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.directory_state:
            return redirect("admin:index")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:account" if request.user.is_authenticated else "accounts:register")


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "accounts/register.html", {"form": RegistrationForm()})
    email = request.POST.get("email", "")
    try:
        ratelimit.check("register", request, email)
    except ratelimit.RateLimited as exc:
        # Not validated (that is what the limit saves); what was typed is kept, passwords aside.
        form = RegistrationForm(initial={k: v for k, v in request.POST.items() if k not in PASSWORD_FIELDS})
        return render(request, "accounts/register.html", {"form": form, "rate_limited": exc.message}, status=429)
    ratelimit.hit("register", request, email)
    form = RegistrationForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user = provisioning.register(
                data["username"], data["email"], data["first_name"], data["last_name"], data["new_password1"]
            )
        except PublishError:
            form.add_error(None, UNAVAILABLE)
        except IntegrityError:
            form.add_error(None, "This username or address was taken a moment ago. Please choose another one.")
        else:
            _follow(request, user)
            if not mail.send_token_mail(user, tokens.issue(user, EmailToken.Purpose.VERIFY_EMAIL)):
                messages.warning(request, "We could not send the mail just now. Use “Send the mail again” below.")
            return redirect("accounts:status")
    elif _is_repeated_registration(request):
        return redirect("accounts:status")
    return render(request, "accounts/register.html", {"form": form})


def _is_repeated_registration(request: HttpRequest) -> bool:
    """The form was sent again for the account this browser just registered (a double click, a reload)."""
    followed = _status_user(request)
    return (
        followed is not None
        and request.POST.get("username", "").strip().lower() == followed.username
        and request.POST.get("email", "").strip().lower() == followed.email.lower()
    )


@never_cache
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    user = _status_user(request)
    if user is None:
        messages.info(request, "Sign in to see the status of your account.")
        return redirect("accounts:login")
    context = {"status": provisioning.account_status(user), "account": user, "code_form": CodeForm()}
    return render(request, "accounts/status.html", context)


@never_cache
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    user = _status_user(request)
    if user is None:
        return JsonResponse({"error": "no account to show; sign in first"}, status=404)
    return JsonResponse(provisioning.account_status(user))


def _verify(request: HttpRequest, record: EmailToken) -> str | None:
    """Use a checked verification token: mark the address verified and publish "enable user".

    Returns why that failed, or None when it worked.
    """
    try:
        with transaction.atomic():
            tokens.use(record)
            provisioning.mark_email_verified(record.user)
    except tokens.TokenError as exc:
        return str(exc)
    except PublishError:
        return UNAVAILABLE
    _follow(request, record.user)
    messages.success(request, "Thank you, your e-mail address is confirmed. Your account is being enabled.")
    return None


@never_cache
@require_POST
def verify_code(request: HttpRequest) -> HttpResponse:
    user = _status_user(request)
    if user is None:
        return redirect("accounts:login")
    form = CodeForm(request.POST)
    try:
        ratelimit.check("verify", request, user.username)
    except ratelimit.RateLimited as exc:
        messages.error(request, exc.message)
        return redirect("accounts:status")
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["code"]))
        return redirect("accounts:status")
    try:
        record = tokens.check_code(user, form.cleaned_data["code"], EmailToken.Purpose.VERIFY_EMAIL)
    except tokens.TokenError as exc:
        ratelimit.hit("verify", request, user.username)
        messages.error(request, str(exc))
        return redirect("accounts:status")
    if error := _verify(request, record):
        messages.error(request, error)
    return redirect("accounts:status")


def _mailed_token(
    request: HttpRequest, purpose: EmailToken.Purpose, bucket: str, template: str
) -> tuple[str, EmailToken | None, HttpResponse | None]:
    """The token of a mailed link and its record, or the page refusing it (rate limited, unknown, expired)."""
    token = _token_param(request)
    try:
        ratelimit.check(bucket, request)
    except ratelimit.RateLimited as exc:
        return token, None, render(request, template, {"error": exc.message}, status=429)
    try:
        return token, tokens.peek(token, purpose), None
    except tokens.TokenError as exc:
        ratelimit.hit(bucket, request)
        return token, None, render(request, template, {"error": str(exc)}, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
def verify_link(request: HttpRequest) -> HttpResponse:
    """GET shows a button, POST verifies: mail scanners that fetch links must not use up the token."""
    token, record, refused = _mailed_token(request, EmailToken.Purpose.VERIFY_EMAIL, "verify", "accounts/verify.html")
    if refused:
        return refused
    if request.method == "GET":
        return render(request, "accounts/verify.html", {"account": record.user, "token": token})
    if error := _verify(request, record):
        return render(request, "accounts/verify.html", {"error": error}, status=400)
    return redirect("accounts:status")


@never_cache
@require_POST
def resend(request: HttpRequest) -> HttpResponse:
    user = _status_user(request)
    if user is None:
        return redirect("accounts:login")
    if user.is_email_verified:
        messages.info(request, "Your e-mail address is confirmed already.")
        return redirect("accounts:status")
    sent_at = tokens.latest_sent_at(user, EmailToken.Purpose.VERIFY_EMAIL)
    if sent_at is not None:
        wait = sent_at + timedelta(seconds=settings.RESEND_COOLDOWN_S) - timezone.now()
        if wait.total_seconds() > 0:
            messages.error(
                request, f"We sent a mail a moment ago. You can ask again in {int(wait.total_seconds()) + 1} seconds."
            )
            return redirect("accounts:status")
    if mail.send_token_mail(user, tokens.issue(user, EmailToken.Purpose.VERIFY_EMAIL)):
        messages.success(request, f"We sent a new mail to {user.email}. Earlier links no longer work.")
    else:
        messages.error(request, "We could not send the mail just now. Please try again in a few minutes.")
    return redirect("accounts:status")


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("__all__", RATE_LIMITED):
            response.status_code = 429
        return response


@never_cache
@_directory_user_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None, initial={"first_name": user.first_name, "last_name": user.last_name})
    if request.method == "POST" and form.is_valid():
        first_name, last_name = form.cleaned_data["first_name"], form.cleaned_data["last_name"]
        if (first_name, last_name) == (user.first_name, user.last_name):
            messages.info(request, "Nothing changed.")
            return redirect("accounts:account")
        try:
            provisioning.update_names(user, first_name, last_name)
        except PublishError:
            form.add_error(None, UNAVAILABLE)
        else:
            messages.success(request, "Your name is being updated in the directory.")
            return redirect("accounts:status")
    return render(request, "accounts/account.html", {"form": form, "status": provisioning.account_status(user)})


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@_directory_user_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            provisioning.set_password(request.user, form.cleaned_data["new_password1"])
        except PublishError:
            form.add_error(None, UNAVAILABLE)
        else:
            messages.success(request, "Your new password is being set. It works once the task below is done.")
            return redirect("accounts:status")
    status_code = 429 if form.has_error("__all__", RATE_LIMITED) else 200
    return render(request, "accounts/password_change.html", {"form": form}, status=status_code)


@never_cache
@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "accounts/password_reset.html", {"form": ResetRequestForm()})
    email = request.POST.get("email", "")
    try:
        ratelimit.check("reset", request, email)
    except ratelimit.RateLimited as exc:
        context = {"form": ResetRequestForm(initial={"email": email}), "rate_limited": exc.message}
        return render(request, "accounts/password_reset.html", context, status=429)
    ratelimit.hit("reset", request, email)
    form = ResetRequestForm(request.POST)
    if not form.is_valid():
        return render(request, "accounts/password_reset.html", {"form": form})
    user = User.objects.filter(
        email__iexact=form.cleaned_data["email"],
        email_verified_at__isnull=False,
        directory_state=User.DirectoryState.ENABLED,
    ).first()
    # The same answer whether or not the account exists: the page must not reveal who is registered.
    if user is not None:
        mail.send_token_mail(user, tokens.issue(user, EmailToken.Purpose.RESET_PASSWORD))
    return render(request, "accounts/password_reset_sent.html", {"email": form.cleaned_data["email"]})


@never_cache
@sensitive_post_parameters(*PASSWORD_FIELDS)
@require_http_methods(["GET", "POST"])
def password_reset_confirm(request: HttpRequest) -> HttpResponse:
    token, record, refused = _mailed_token(
        request, EmailToken.Purpose.RESET_PASSWORD, "reset", "accounts/password_reset_confirm.html"
    )
    if refused:
        return refused
    form = ResetPasswordForm(record.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                tokens.use(record)
                provisioning.set_password(record.user, form.cleaned_data["new_password1"])
        except tokens.TokenError as exc:
            return render(request, "accounts/password_reset_confirm.html", {"error": str(exc)}, status=400)
        except PublishError:
            form.add_error(None, UNAVAILABLE)
        else:
            _follow(request, record.user)
            messages.success(request, "Your new password is being set. It works once the task below is done.")
            return redirect("accounts:status")
    context = {"form": form, "account": record.user, "token": token}
    return render(request, "accounts/password_reset_confirm.html", context)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form arrived without a valid CSRF token (e.g. an old tab, or cookies blocked)."""
    return render(request, "403_csrf.html", status=403)
