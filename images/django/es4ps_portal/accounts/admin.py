"""Django admin for staff: users with their verification and directory state and their task history.

Deleting a person here would leave their directory account behind, enabled
and unmanaged (a registration of the same name could never touch it, see the
contract's tasks): the Delete button is not offered for people with a
directory account. Staff disable or delete accounts with the directory
following (docs/portal.md, "Staff").
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from es4ps_portal.provisioning.admin import ProvisioningTaskInline

from .models import User


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "e-mail verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(email_verified_at__isnull=self.value() == "no")
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "email_verified",
        "directory_state",
        "is_staff",
        "date_joined",
    )
    list_filter = (EmailVerifiedFilter, "directory_state", "is_staff", "is_active")
    search_fields = ("username", "email", "first_name", "last_name")
    # Newest first along the index user_joined (the id breaks ties, as Django would add anyway).
    ordering = ("-date_joined", "-id")
    # The filtered count is enough: a second count of every user on each page adds nothing staff need.
    show_full_result_count = False
    readonly_fields = ("email_verified_at", "directory_state", "last_login", "date_joined")
    inlines = [ProvisioningTaskInline]
    directory_fieldsets = (
        (None, {"fields": ("username",)}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("State", {"fields": ("email_verified_at", "directory_state", "is_active", "last_login", "date_joined")}),
    )

    @admin.display(boolean=True, description="e-mail verified", ordering="email_verified_at")
    def email_verified(self, user: User) -> bool:
        return user.is_email_verified

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
        # The bulk delete would bypass has_delete_permission(obj) for people with directory accounts.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
