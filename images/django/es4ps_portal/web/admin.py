"""Django admin for staff: users with their verification and directory state, their task history, and the
staff actions (docs/portal.md, "Staff actions").

Deleting a person here would leave their directory account behind, enabled
and unmanaged (a registration of the same name could never touch it, see the
contract's tasks): the Delete button is not offered for people with a
directory account. Staff disable, enable, delete, mail, approve or move
accounts with the actions of the user list, each a signed task (or a mail)
for every selected account (`staff`), whose results appear in the account's
task list and in the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from es4ps_portal.accounts.models import User
from es4ps_portal.audit.records import Actor
from es4ps_portal.provisioning.admin import ProvisioningTaskInline
from es4ps_portal.provisioning.models import OPERATION_LABELS, ProvisioningTask

from . import staff

# Reasons a bulk action skipped accounts, shown per account up to this many.
_SKIPPED_SHOWN = 10


def _run_for_selection(modeladmin, request, queryset, name: str, act: Callable[[User, Actor], None]) -> None:
    """Run a staff action for each selected account and say what happened, account by account when it did not."""
    actor = Actor.of(request)
    done, skipped = [], []
    for user in queryset.order_by("username"):
        try:
            act(user, actor)
            done.append(user.username)
        except staff.NotApplicable as exc:
            skipped.append(f"{user.username}: {exc}")
    if done:
        modeladmin.message_user(
            request,
            ngettext("%(action)s: done for %(count)d account.", "%(action)s: done for %(count)d accounts.", len(done))
            % {"action": name, "count": len(done)}
            + " "
            + str(_("Directory tasks show their results in each account's task list.")),
            messages.SUCCESS,
        )
    if skipped:
        shown = "; ".join(skipped[:_SKIPPED_SHOWN]) + ("; …" if len(skipped) > _SKIPPED_SHOWN else "")
        modeladmin.message_user(
            request,
            ngettext(
                "%(action)s: %(count)d account skipped: %(why)s",
                "%(action)s: %(count)d accounts skipped: %(why)s",
                len(skipped),
            )
            % {"action": name, "count": len(skipped), "why": shown},
            messages.WARNING,
        )


def _staff_action(act: Callable[[User, Actor], None], description, permission: str):
    @admin.action(description=description, permissions=[permission])
    def action(modeladmin, request, queryset):
        _run_for_selection(modeladmin, request, queryset, str(description), act)

    action.__name__ = act.__name__
    return action


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = _("e-mail verified")
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", _("yes")), ("no", _("no"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(email_verified_at__isnull=self.value() == "no")
        return queryset


MANAGE = "manage_directory_account"
APPROVE = "approve_registration"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "email_verified",
        "directory_state",
        "approval",
        "directory_ou",
        "last_task",
        "is_staff",
        "date_joined",
    )
    list_filter = (EmailVerifiedFilter, "directory_state", "approval", "directory_ou", "is_staff", "is_active")
    search_fields = ("username", "email", "first_name", "last_name")
    # Newest first along the index user_joined (the id breaks ties, as Django would add anyway).
    ordering = ("-date_joined", "-id")
    # The filtered count is enough: a second count of every user on each page adds nothing staff need.
    show_full_result_count = False
    readonly_fields = ("email_verified_at", "directory_state", "last_login", "date_joined")
    inlines = [ProvisioningTaskInline]
    directory_fieldsets = (
        (None, {"fields": ("username",)}),
        (_("Person"), {"fields": ("first_name", "last_name", "email")}),
        (
            _("State"),
            {"fields": ("email_verified_at", "directory_state", "approval", "is_active", "last_login", "date_joined")},
        ),
        (_("Policy"), {"fields": ("directory_ou", "directory_groups", "directory_unix")}),
        (_("Audit trail"), {"fields": ("audit_trail",)}),
    )
    actions = [
        _staff_action(staff.disable, _("Disable the accounts in the directory"), MANAGE),
        _staff_action(staff.enable, _("Enable the accounts in the directory"), MANAGE),
        _staff_action(staff.delete, _("Delete the accounts from the directory (and then here)"), MANAGE),
        _staff_action(staff.resend_verification_mail, _("Send the verification mail again"), MANAGE),
        _staff_action(staff.send_password_reset_mail, _("Send a password-reset mail"), MANAGE),
        _staff_action(staff.apply_policy, _("Move the accounts to their address's policy"), MANAGE),
        _staff_action(staff.approve, _("Approve the registrations"), APPROVE),
        _staff_action(staff.refuse, _("Refuse the registrations (their accounts are deleted)"), APPROVE),
    ]

    def get_queryset(self, request):
        newest = ProvisioningTask.objects.filter(user=OuterRef("pk")).order_by("-created_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_operation=Subquery(newest.values("operation")[:1]),
                last_state=Subquery(newest.values("state")[:1]),
                last_reason=Subquery(newest.values("reason")[:1]),
            )
        )

    def has_manage_directory_account_permission(self, request) -> bool:
        return request.user.has_perm(f"accounts.{MANAGE}")

    def has_approve_registration_permission(self, request) -> bool:
        return request.user.has_perm(f"accounts.{APPROVE}")

    @admin.display(boolean=True, description=_("e-mail verified"), ordering="email_verified_at")
    def email_verified(self, user: User) -> bool:
        return user.is_email_verified

    @admin.display(description=_("last directory task"))
    def last_task(self, user: User) -> str:
        if not getattr(user, "last_operation", None):
            return ""
        label = OPERATION_LABELS.get(user.last_operation, user.last_operation)
        state = f"{label}: {ProvisioningTask.State(user.last_state).label}"
        return f"{state} ({_(user.last_reason)})" if user.last_reason else state

    @admin.display(description=_("audit trail"))
    def audit_trail(self, user: User) -> str:
        url = reverse("admin:audit_auditrecord_changelist") + "?" + urlencode({"q": user.username})
        return format_html('<a href="{}">{}</a>', url, _("Everything done to this account"))

    def get_fieldsets(self, request, obj=None):
        # People with a directory account have no local password: the directory owns it.
        if obj is not None and obj.directory_state:
            return self.directory_fieldsets
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # Edits here would not reach the directory; people change their data in the portal.
        if obj is not None and obj.directory_state:
            return [field for _name, options in self.directory_fieldsets for field in options["fields"]]
        return super().get_readonly_fields(request, obj)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None and obj.directory_state else []

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.directory_state:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # The bulk delete would bypass has_delete_permission(obj) for people with directory accounts;
        # "Delete the accounts from the directory" is the way for them.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
