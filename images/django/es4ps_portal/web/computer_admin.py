"""The domain's computers in the admin: the list the workers report, and what staff do to a selection.

Staff with `manage_computers` pre-stage a computer (the add page: a name and
an OU under the computers OU) and disable, enable, reset, move or delete the
selected computers the portal pre-staged, each a signed task with its audit
record (es4ps_portal.provisioning.computers). A one-time join password (a
pre-stage's, a reset's) is shown once, on the page that answers the action,
which no cache keeps; it is in no message, session, log or table. Computers
someone else joined are listed and never acted on.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from es4ps_contract.policies import normalize_computer_ou
from es4ps_contract.validation import InvalidField

from es4ps_portal.audit.records import Actor
from es4ps_portal.broker import PublishError
from es4ps_portal.provisioning import computers
from es4ps_portal.provisioning.admin import ProvisioningTaskInline
from es4ps_portal.provisioning.models import Computer
from es4ps_portal.provisioning.publishing import NotProvisioned

from .forms import ComputerNameForm, translated

MANAGE = "manage_computers"
_SKIPPED_SHOWN = 10


def _field(normalize: Callable[[object, str], str], value: object, field: str) -> str:
    try:
        return normalize(value, field)
    except InvalidField as exc:
        raise forms.ValidationError(translated(exc.text)) from None


class PrestageForm(ComputerNameForm):
    ou = forms.CharField(
        label=_("OU"),
        max_length=64,
        required=False,
        help_text=_("Under the computers OU; empty: the computers OU itself."),
    )

    def clean_ou(self) -> str:
        return _field(normalize_computer_ou, self.cleaned_data["ou"], "ou")


class ComputerActionForm(ActionForm):
    """The action bar with the OU a move goes to."""

    ou = forms.CharField(label=_("to the OU"), max_length=64, required=False)


def _passwords_page(request, admin_site, shown: list[tuple[str, str]], title: str) -> TemplateResponse:
    """The one page that shows one-time join passwords: never cached, never stored."""
    context = {**admin_site.each_context(request), "title": title, "passwords": shown, "opts": Computer._meta}
    response = TemplateResponse(request, "web/admin/computer_join_passwords.html", context)
    add_never_cache_headers(response)
    return response


def _run(modeladmin, request, queryset, name: str, act: Callable[[Computer, Actor], object]) -> list:
    """Run a staff action for each selected computer; say what was done and, computer by computer, what was not."""
    actor = Actor.of(request)
    done, skipped = [], []
    for computer in queryset.order_by("name"):
        try:
            done.append((computer.name, act(computer, actor)))
        except (NotProvisioned, PublishError) as exc:
            skipped.append(f"{computer.name}: {exc}")
    if done:
        message = ngettext(
            "%(action)s: done for %(count)d computer.", "%(action)s: done for %(count)d computers.", len(done)
        )
        modeladmin.message_user(request, message % {"action": name, "count": len(done)}, messages.SUCCESS)
    if skipped:
        shown = "; ".join(skipped[:_SKIPPED_SHOWN]) + ("; …" if len(skipped) > _SKIPPED_SHOWN else "")
        message = ngettext(
            "%(action)s: %(count)d computer skipped: %(why)s", "%(action)s: %(count)d computers skipped: %(why)s",
            len(skipped),
        )  # fmt: skip
        modeladmin.message_user(
            request, message % {"action": name, "count": len(skipped), "why": shown}, messages.WARNING
        )
    return done


def _action(change: Callable[..., object], description):
    """An admin action running `change(computer, actor=...)` for each selected computer (named as `change`)."""

    @admin.action(description=description, permissions=[MANAGE])
    def action(modeladmin, request, queryset):
        _run(modeladmin, request, queryset, str(description), lambda computer, actor: change(computer, actor=actor))

    action.__name__ = change.__name__
    return action


@admin.action(description=_("Reset the computers (new one-time join passwords)"), permissions=[MANAGE])
def reset(modeladmin, request, queryset):
    done = _run(modeladmin, request, queryset, str(_("Reset")), lambda c, actor: computers.reset(c, actor=actor))
    if done:
        return _passwords_page(request, modeladmin.admin_site, done, str(_("One-time join passwords")))
    return None


@admin.action(description=_("Move the computers to the OU named beside"), permissions=[MANAGE])
def move(modeladmin, request, queryset):
    try:
        ou = normalize_computer_ou(request.POST.get("ou", ""), "ou")
    except InvalidField as exc:
        modeladmin.message_user(request, f"{_('Nothing moved')}: {translated(exc.text)}", messages.ERROR)
        return
    _run(modeladmin, request, queryset, str(_("Move")), lambda c, actor: computers.move(c, ou, actor=actor))


@admin.register(Computer)
class ComputerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "operating_system",
        "os_version",
        "last_logon",
        "container",
        "enabled",
        "joined",
        "managed",
        "owner",
        "state",
    )
    list_filter = ("enabled", "joined", "state")
    list_select_related = ("owner",)
    search_fields = ("name", "container", "operating_system", "owner__username")
    readonly_fields = ("name", "state", "ou", "container", "operating_system", "os_version", "last_logon", "enabled",
                       "joined", "record_id", "owner", "reported_at")  # fmt: skip
    fields = readonly_fields
    inlines = [ProvisioningTaskInline]
    action_form = ComputerActionForm
    change_list_template = "admin/provisioning/computer/change_list.html"
    actions = [
        _action(computers.disable, _("Disable the computers (they log nobody in)")),
        _action(computers.enable, _("Enable the computers (then reset and join)")),
        reset,
        move,
        _action(computers.delete, _("Delete the computers from the directory")),
    ]

    @admin.display(boolean=True, description=_("pre-staged here"))
    def managed(self, computer: Computer) -> bool:
        return computer.record_id is not None

    def has_manage_computers_permission(self, request) -> bool:
        return request.user.has_perm(f"provisioning.{MANAGE}")

    def has_add_permission(self, request) -> bool:
        return self.has_manage_computers_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # every change is a signed task: the actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # "Delete the computers from the directory" is the way

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self):
        refresh = self.admin_site.admin_view(require_POST(self.refresh_view))
        return [path("refresh/", refresh, name="provisioning_computer_refresh"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_manage_computers": self.has_manage_computers_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def refresh_view(self, request):
        """Ask a worker for the domain's computers now (the relay asks every few minutes anyway)."""
        if not self.has_manage_computers_permission(request):
            raise PermissionDenied
        computers.request_report()
        self.message_user(
            request, _("A worker was asked for the domain's computers; reload in a moment."), messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:provisioning_computer_changelist"))

    def add_view(self, request, form_url="", extra_context=None):
        """Pre-stage a computer: the form, then the page with its one-time join password (shown once)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PrestageForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            name, ou = form.cleaned_data["name"], form.cleaned_data["ou"]
            try:
                computer, password = computers.prestage(name, ou, actor=Actor.of(request))
            except (NotProvisioned, PublishError) as exc:
                form.add_error("name", str(exc))
            else:
                return _passwords_page(request, self.admin_site, [(computer.name, password)], str(_("Pre-staged")))
        context = {**self.admin_site.each_context(request), "form": form, "opts": Computer._meta,
                   "title": _("Pre-stage a computer")}  # fmt: skip
        return TemplateResponse(request, "web/admin/computer_prestage.html", context)
