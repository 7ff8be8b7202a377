"""The pages around the forms: home, the account (with the person's own computers, when their policy gives them
any), its status page (and the JSON it polls), the language switch."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.provisioning import computers, publishing
from es4ps_portal.provisioning.policies import computers_per_person
from es4ps_portal.provisioning.publishing import NotProvisioned

from ..forms import CodeForm, ComputerNameForm, ProfileForm
from ..status import account_status, followed_user, pending, waiting_status
from .answers import NOT_SAVED, directory_user_required


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("web:account" if request.user.is_authenticated else "web:register")


@never_cache
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    shown = _shown_status(request)
    if shown is None:
        messages.info(request, _("Sign in to see the status of your account."))
        return redirect("web:login")
    return render(request, "web/status.html", {"status": shown, "code_form": CodeForm()})


@never_cache
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    shown = _shown_status(request)
    if shown is None:
        return JsonResponse({"error": _("There is no account to show; please sign in first.")}, status=404)
    return JsonResponse(shown)


def _shown_status(request: HttpRequest) -> dict | None:
    """The followed account's status, else the waiting status of what this browser registered (made or not)."""
    user = followed_user(request)
    if user is not None:
        return account_status(user)
    marker = pending(request)
    return waiting_status(marker["email"]) if marker else None


@never_cache
@directory_user_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None, initial={"first_name": user.first_name, "last_name": user.last_name})
    if request.method == "POST" and form.is_valid():
        first_name, last_name = form.cleaned_data["first_name"], form.cleaned_data["last_name"]
        if (first_name, last_name) == (user.first_name, user.last_name):
            messages.info(request, _("Nothing changed."))
            return redirect("web:account")
        try:
            publishing.update_names(user, first_name, last_name, actor=Actor.of(request))
        except PublishError:
            form.add_error(None, NOT_SAVED)
        else:
            messages.success(request, _("Your name is being updated in the directory."))
            return redirect("web:status")
    return _account_page(request, form, ComputerNameForm())


def _account_page(request: HttpRequest, form, computer_form, shown: tuple[str, str] | None = None) -> HttpResponse:
    """The account page; its computers section only when the person's policy lets them pre-stage any."""
    user = request.user
    context = {"form": form, "status": account_status(user)}
    allowed = computers_per_person(user.email)
    if allowed:
        context.update(computers=user.computers.all(), computer_form=computer_form, allowed=allowed, shown=shown)
    return render(request, "web/account.html", context)


@never_cache
@directory_user_required
@require_POST
def prestage_computer(request: HttpRequest) -> HttpResponse:
    """Pre-stage a computer of the person's own; the answer shows its one-time join password, once."""
    user = request.user
    if not computers_per_person(user.email):
        return render(request, "403.html", status=403)  # as the page offers no such form: nothing to log
    form = ComputerNameForm(request.POST)
    profile = ProfileForm(initial={"first_name": user.first_name, "last_name": user.last_name})
    if form.is_valid():
        try:
            computer, password = computers.prestage(form.cleaned_data["name"], "", actor=Actor.of(request), owner=user)
        except NotProvisioned as exc:
            form.add_error("name", str(exc))
        except PublishError:
            form.add_error(None, NOT_SAVED)
        else:
            return _account_page(request, profile, ComputerNameForm(), shown=(computer.name, password))
    return _account_page(request, profile, form)


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


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form arrived without a valid CSRF token (e.g. an old tab, or cookies blocked)."""
    return render(request, "403_csrf.html", status=403)
