"""Forms of the portal. Field rules come from the task contract; only the allowed domains are the portal's own."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from es4ps_contract import passwords
from es4ps_contract.validation import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    InvalidField,
    normalize_email,
    normalize_name,
    normalize_username,
)

from es4ps_portal.metrics import LOGINS

from . import directory, ratelimit
from .email_domains import InvalidDomain, canonical_domain, display_domain, is_allowed
from .models import User
from .tokens import CODE_DIGITS

PASSWORD_HELP = (
    f"At least {passwords.MIN_LENGTH} characters, from three of: upper case, lower case, digits, symbols. "
    "Must not contain your username or a part of your name."
)
RATE_LIMITED = "rate_limited"


def _contract(normalize, value, *args):
    """Run a contract rule and turn its InvalidField into a form error."""
    try:
        return normalize(value, *args)
    except InvalidField as exc:
        raise ValidationError(exc.message[:1].upper() + exc.message[1:] + ".") from None


def _password_field(label: str, autocomplete: str = "new-password", help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        max_length=passwords.MAX_LENGTH,
        help_text=help_text,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


def allowed_domains_text() -> str:
    return ", ".join(display_domain(d) for d in settings.ALLOWED_EMAIL_DOMAINS)


class NewPasswordForm(forms.Form):
    """A new password typed twice, checked against the domain's complexity rules."""

    new_password1 = _password_field("Password", help_text=PASSWORD_HELP)
    new_password2 = _password_field("Password again")

    def check_new_password(self, username: str, full_name: str) -> None:
        """Add the complexity and match errors of the new password to its fields."""
        password = self.cleaned_data.get("new_password1")
        repeated = self.cleaned_data.get("new_password2")
        if password is None:
            return
        for problem in passwords.password_problems(password, username, full_name):
            self.add_error("new_password1", problem)
        if repeated is not None and password != repeated:
            self.add_error("new_password2", "The two passwords differ.")


class RegistrationForm(NewPasswordForm):
    username = forms.CharField(
        max_length=USERNAME_MAX_LENGTH,
        help_text="Your sign-in name for domain computers: letters a-z, digits, '.', '-' and '_'.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    email = forms.EmailField(
        label="E-mail address",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    first_name = forms.CharField(
        label="First name", max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label="Last name", max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    field_order = ["username", "email", "first_name", "last_name", "new_password1", "new_password2"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].help_text = f"An address of {allowed_domains_text()} (or a subdomain)."

    def clean_username(self) -> str:
        username = _contract(normalize_username, self.cleaned_data["username"])
        # Staff names are reserved, also the configured one before its user exists: a person who took it
        # would otherwise share a name with the admin.
        if username == settings.SUPERUSER_USERNAME or User.objects.named(username).exists():
            raise ValidationError("This username is taken. Please choose another one.")
        return username

    def clean_email(self) -> str:
        email = _contract(normalize_email, self.cleaned_data["email"])
        local, _, domain = email.rpartition("@")
        try:
            domain = canonical_domain(domain)
        except InvalidDomain:
            raise ValidationError("The domain of this address is not a valid name.") from None
        if not is_allowed(domain, settings.ALLOWED_EMAIL_DOMAINS):
            raise ValidationError(f"Registration is open to addresses of {allowed_domains_text()} only.")
        # Store exactly the name that was compared, in the form people read.
        email = f"{local}@{display_domain(domain)}"
        if User.objects.with_address(email).exists():
            raise ValidationError("An account with this address exists already. Sign in or reset its password.")
        return email

    def clean_first_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["first_name"], "first name")

    def clean_last_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["last_name"], "last name")

    def clean(self):
        data = super().clean()
        full_name = f"{data.get('first_name', '')} {data.get('last_name', '')}"
        self.check_new_password(data.get("username", self.data.get("username", "")), full_name)
        return data


class RateLimitedLoginMixin:
    """Login with per-address and per-account limits, and clear words when the directory is away."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        limit = ratelimit.Limit("login", self.request, username)
        try:
            limit.check()
        except ratelimit.RateLimited as exc:
            LOGINS.labels("rate_limited").inc()
            raise ValidationError(exc.message, code=RATE_LIMITED) from None
        try:
            cleaned = super().clean()
        except directory.DirectoryUnavailable:
            LOGINS.labels("unavailable").inc()
            raise ValidationError(
                "The directory cannot be reached right now. Please try again in a minute.", code="unavailable"
            ) from None
        except ValidationError:
            limit.hit()
            user = User.objects.named(username.strip()).filter(is_staff=False).first()
            if user is not None and not user.is_email_verified:
                LOGINS.labels("unverified").inc()
                raise ValidationError(
                    "Confirm your e-mail address first: follow the link in the mail we sent you.", code="unverified"
                ) from None
            LOGINS.labels("failed").inc()
            raise
        LOGINS.labels("succeeded").inc()
        return cleaned


class LoginForm(RateLimitedLoginMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "The username or password is not right.",
    }


class AdminLoginForm(RateLimitedLoginMixin, AdminAuthenticationForm):
    pass


class ProfileForm(forms.Form):
    first_name = forms.CharField(label="First name", max_length=NAME_MAX_LENGTH)
    last_name = forms.CharField(label="Last name", max_length=NAME_MAX_LENGTH)

    def clean_first_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["first_name"], "first name")

    def clean_last_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["last_name"], "last name")


class PasswordChangeForm(NewPasswordForm):
    """The current password (checked against the directory) and a new one."""

    current_password = _password_field("Current password", autocomplete="current-password")
    field_order = ["current_password", "new_password1", "new_password2"]

    def __init__(self, user: User, request, *args, **kwargs) -> None:
        self.user = user
        self.request = request
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = "New password"
        self.fields["new_password2"].label = "New password again"

    def clean(self):
        data = super().clean()
        self.check_new_password(self.user.username, self.user.get_full_name())
        current = data.get("current_password")
        if current is None or self.errors:
            return data
        limit = ratelimit.Limit("login", self.request, self.user.username)
        try:
            limit.check()
            if not directory.check_password(self.user.username, current):
                limit.hit()
                self.add_error("current_password", "This is not your current password.")
        except ratelimit.RateLimited as exc:
            raise ValidationError(exc.message, code=RATE_LIMITED) from None
        except directory.DirectoryUnavailable:
            raise ValidationError("The directory cannot be reached right now. Please try again in a minute.") from None
        return data


class ResetPasswordForm(NewPasswordForm):
    """A new password for the account a reset link belongs to."""

    def __init__(self, user: User, *args, **kwargs) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        self.check_new_password(self.user.username, self.user.get_full_name())
        return data


class ResetRequestForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address", max_length=EMAIL_MAX_LENGTH, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def clean_email(self) -> str:
        return _contract(normalize_email, self.cleaned_data["email"])


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from the mail",
        min_length=CODE_DIGITS,
        max_length=CODE_DIGITS + 2,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not code.isdigit() or len(code) != CODE_DIGITS:
            raise ValidationError(f"The code has {CODE_DIGITS} digits.")
        return code
