"""Forms of the portal. Field rules and the password policy come from the task contract (the policy in force is
settings.PASSWORD_POLICY, the domain's); only the allowed domains are the portal's own."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy, ngettext
from es4ps_contract.passwords import BREACHED_PASSWORD
from es4ps_contract.passwords import MAX_LENGTH as PASSWORD_MAX_LENGTH
from es4ps_contract.texts import Text
from es4ps_contract.validation import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    InvalidField,
    normalize_computer_name,
    normalize_email,
    normalize_name,
    normalize_username,
)

from es4ps_portal.accounts import directory
from es4ps_portal.accounts.backends import DIRECTORY_BACKEND, DirectoryBackend
from es4ps_portal.accounts.breached_passwords import is_breached
from es4ps_portal.accounts.email_domains import InvalidDomain, canonical_domain, display_domain, is_allowed
from es4ps_portal.accounts.models import User
from es4ps_portal.accounts.tokens import CODE_DIGITS
from es4ps_portal.metrics import LOGINS

from . import ratelimit

RATE_LIMITED = "rate_limited"
# The sign-in failed because the (right) password has expired: the view offers to choose a new one.
PASSWORD_EXPIRED = "password_expired"  # noqa: S105 (an error code)
DIRECTORY_AWAY = gettext_lazy("The directory cannot be reached right now. Please try again in a minute.")


def translated(text: Text) -> str:
    """A sentence of the contract in the active language."""
    return text.translated(gettext, ngettext)


def password_help() -> str:
    """The domain's password rules, as the person reads them next to the field."""
    return " ".join(translated(rule) for rule in settings.PASSWORD_POLICY.rules())


def locked_message() -> str:
    minutes = settings.PASSWORD_POLICY.lockout_duration_minutes
    return ngettext(
        "This account is locked after too many wrong passwords. Please try again in %(minutes)d minute.",
        "This account is locked after too many wrong passwords. Please try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


def _contract(normalize, value, *args):
    """Run a contract rule and turn its InvalidField into a form error, in the active language."""
    try:
        return normalize(value, *args)
    except InvalidField as exc:
        message = translated(exc.text)
        raise ValidationError(message[:1].upper() + message[1:] + ".") from None


def _password_field(label, autocomplete: str = "new-password") -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        max_length=PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


def allowed_domains_text() -> str:
    return ", ".join(display_domain(d) for d in settings.ALLOWED_EMAIL_DOMAINS)


class NewPasswordForm(forms.Form):
    """A new password typed twice, checked against the domain's password policy."""

    new_password1 = _password_field(gettext_lazy("Password"))
    new_password2 = _password_field(gettext_lazy("Password again"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = password_help()

    def check_new_password(self, username: str, full_name: str) -> None:
        """Add the policy's and the match's errors of the new password to its fields."""
        password = self.cleaned_data.get("new_password1")
        repeated = self.cleaned_data.get("new_password2")
        if password is None:
            return
        problems = settings.PASSWORD_POLICY.problems(password, username, full_name)
        # Only a password the policy takes otherwise is looked up: the corpus is asked once it could matter.
        if not problems and is_breached(password):
            problems = [Text(BREACHED_PASSWORD)]
        for problem in problems:
            self.add_error("new_password1", translated(problem))
        if repeated is not None and password != repeated:
            self.add_error("new_password2", gettext("The two passwords differ."))


class RegistrationForm(NewPasswordForm):
    username = forms.CharField(
        label=gettext_lazy("Username"),
        max_length=USERNAME_MAX_LENGTH,
        help_text=gettext_lazy("Your sign-in name for domain computers: letters a-z, digits, '.', '-' and '_'."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    email = forms.EmailField(
        label=gettext_lazy("E-mail address"),
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    first_name = forms.CharField(
        label=gettext_lazy("First name"),
        max_length=NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=gettext_lazy("Last name"),
        max_length=NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    field_order = ["username", "email", "first_name", "last_name", "new_password1", "new_password2"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].help_text = gettext("An address of %(domains)s (or a subdomain).") % {
            "domains": allowed_domains_text()
        }

    def clean_username(self) -> str:
        # Whether the name is taken is not the form's to say (web.views.registration mails the address instead).
        return _contract(normalize_username, self.cleaned_data["username"])

    def clean_email(self) -> str:
        email = _contract(normalize_email, self.cleaned_data["email"])
        local, _, domain = email.rpartition("@")
        try:
            domain = canonical_domain(domain)
        except InvalidDomain:
            raise ValidationError(gettext("The domain of this address is not a valid name.")) from None
        if not is_allowed(domain, settings.ALLOWED_EMAIL_DOMAINS):
            raise ValidationError(
                gettext("Registration is open to addresses of %(domains)s only.") % {"domains": allowed_domains_text()}
            )
        # Store exactly the name that was compared, in the form people read.
        return f"{local}@{display_domain(domain)}"

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
    """Login with per-address and per-account limits, and clear words when the directory says more than "no"."""

    # The account whose right but expired password was given (the view offers to choose a new one).
    expired_user: User | None = None

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
            raise ValidationError(DIRECTORY_AWAY, code="unavailable") from None
        except directory.PasswordExpired as exc:
            self.expired_user = exc.user
            LOGINS.labels("password_expired").inc()
            raise ValidationError(
                gettext("Your password has expired. Choose a new one to sign in."), code=PASSWORD_EXPIRED
            ) from None
        except directory.AccountLocked:
            limit.hit()
            LOGINS.labels("locked").inc()
            raise ValidationError(locked_message(), code="locked") from None
        except ValidationError:
            # One answer for a wrong password, an unknown name and an unconfirmed registration.
            limit.hit()
            LOGINS.labels("failed").inc()
            raise
        LOGINS.labels("succeeded").inc()
        return cleaned


class DirectoryAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, checked by the directory alone (DirectoryBackend): no local password hash is computed
    for anybody, so the answer's time is the directory's, for a person's name or nobody's."""

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = DirectoryBackend().authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.user_cache.backend = DIRECTORY_BACKEND
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class LoginForm(RateLimitedLoginMixin, DirectoryAuthenticationForm):
    """People's sign-in. Staff sign in to the admin only, with a second factor (staff_sign_in): here a staff name
    is refused like a wrong password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": gettext_lazy("The username or password is not right."),
    }


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=gettext_lazy("First name"), max_length=NAME_MAX_LENGTH)
    last_name = forms.CharField(label=gettext_lazy("Last name"), max_length=NAME_MAX_LENGTH)

    def clean_first_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["first_name"], "first name")

    def clean_last_name(self) -> str:
        return _contract(normalize_name, self.cleaned_data["last_name"], "last name")


class ComputerNameForm(forms.Form):
    """A computer to pre-stage: its name (staff's form adds the OU)."""

    name = forms.CharField(
        label=gettext_lazy("Computer name"),
        max_length=64,
        help_text=gettext_lazy("Its NetBIOS name: up to 15 letters, digits and '-'."),
    )

    def clean_name(self) -> str:
        try:
            return normalize_computer_name(self.cleaned_data["name"], "name")
        except InvalidField as exc:
            raise ValidationError(gettext("The computer name %(rule)s.") % {"rule": translated(exc.text)}) from None


class PasswordChangeForm(NewPasswordForm):
    """The current password (checked against the directory) and a new one."""

    current_password = _password_field(gettext_lazy("Current password"), autocomplete="current-password")
    field_order = ["current_password", "new_password1", "new_password2"]

    def __init__(self, user: User, request, *args, **kwargs) -> None:
        self.user = user
        self.request = request
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = gettext("New password")
        self.fields["new_password2"].label = gettext("New password again")

    def clean(self):
        data = super().clean()
        self.check_new_password(self.user.username, self.user.get_full_name())
        current = data.get("current_password")
        if current is None or self.errors:
            return data
        limit = ratelimit.Limit("login", self.request, self.user.username)
        try:
            limit.check()
            outcome = directory.bind(self.user.username, current).outcome
        except ratelimit.RateLimited as exc:
            raise ValidationError(exc.message, code=RATE_LIMITED) from None
        except directory.DirectoryUnavailable:
            raise ValidationError(DIRECTORY_AWAY) from None
        # An expired password is still the person's: it proves who they are as well.
        if outcome is directory.Outcome.LOCKED:
            limit.hit()
            raise ValidationError(locked_message())
        if outcome is directory.Outcome.WRONG:
            limit.hit()
            self.add_error("current_password", gettext("This is not your current password."))
        return data


class ResetPasswordForm(NewPasswordForm):
    """A new password for the account a reset link (or a sign-in with an expired password) belongs to."""

    def __init__(self, user: User, *args, **kwargs) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        self.check_new_password(self.user.username, self.user.get_full_name())
        return data


class ResetRequestForm(forms.Form):
    email = forms.EmailField(
        label=gettext_lazy("E-mail address"),
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def clean_email(self) -> str:
        return _contract(normalize_email, self.cleaned_data["email"])


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code from the mail"),
        min_length=CODE_DIGITS,
        max_length=CODE_DIGITS + 2,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not code.isdigit() or len(code) != CODE_DIGITS:
            raise ValidationError(gettext("The code has %(digits)d digits.") % {"digits": CODE_DIGITS})
        return code
