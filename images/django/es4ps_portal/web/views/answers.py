"""What the portal's views share: the sentences of a failed change, the mailed token, and the pages of a refusal."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy

from es4ps_portal.accounts import tokens
from es4ps_portal.accounts.models import EmailToken

from ..ratelimit import RateLimited

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


def posted(name: str):
    """The rate limits' account of a request: the form field `name`."""
    return lambda request: request.POST.get(name, "")


def directory_user_required(view):
    """Signed in, with a directory account (staff-only accounts are managed in the admin)."""

    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.directory_state:
            return redirect("admin:index")
        return view(request, *args, **kwargs)

    return wrapper


def refused_page(template: str, counter):
    """A page saying when to try again; `counter` (a labelled metric) counts the refusal."""

    def refused(request: HttpRequest, exc: RateLimited) -> HttpResponse:
        counter.inc()
        return render(request, template, {"error": exc.message}, status=429)

    return refused


def _token_param(request: HttpRequest) -> str:
    """The mailed token: in the link's query string, then in the confirming form's hidden field."""
    source = request.POST if request.method == "POST" else request.GET
    return source.get("token", "")[:100]


def mailed_token(request: HttpRequest, purpose: EmailToken.Purpose, template: str, invalid):
    """The token of a mailed link and its record, or the page refusing it (unknown, used, expired), counted
    in `invalid` (a labelled metric)."""
    token = _token_param(request)
    try:
        return token, tokens.peek(token, purpose), None
    except tokens.TokenError as exc:
        invalid.inc()
        request.rate_limit.hit()
        return token, None, render(request, template, {"error": str(exc)}, status=400)
