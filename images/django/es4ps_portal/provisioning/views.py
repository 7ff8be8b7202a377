"""The status page of an account (and its JSON, which the page polls)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from es4ps_portal.accounts.forms import CodeForm

from .status import account_status, followed_user


@never_cache
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    user = followed_user(request)
    if user is None:
        messages.info(request, _("Sign in to see the status of your account."))
        return redirect("accounts:login")
    context = {"status": account_status(user), "account": user, "code_form": CodeForm()}
    return render(request, "provisioning/status.html", context)


@never_cache
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    user = followed_user(request)
    if user is None:
        return JsonResponse({"error": _("There is no account to show; please sign in first.")}, status=404)
    return JsonResponse(account_status(user))
