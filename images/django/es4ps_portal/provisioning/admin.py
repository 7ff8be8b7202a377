"""The task history in the admin (an account's, a computer's, the reports'): read-only, as the workers reported it."""

from __future__ import annotations

from django.contrib import admin

from .models import ProvisioningTask


class ProvisioningTaskInline(admin.TabularInline):
    model = ProvisioningTask
    fields = ("operation", "state", "reason", "worker", "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at",)
    show_change_link = True


@admin.register(ProvisioningTask)
class ProvisioningTaskAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "computer", "operation", "state", "reason", "worker", "finished_at")
    list_filter = ("state", "operation", "created_at")
    search_fields = ("user__username", "user__email", "computer__name", "task_id", "reason")
    list_select_related = ("user", "computer")
    date_hierarchy = "created_at"
    readonly_fields = (
        "task_id",
        "user",
        "computer",
        "operation",
        "state",
        "reason",
        "worker",
        "created_at",
        "finished_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
