"""The audit trail in the admin: read-only for everybody, superusers included (no add, change or delete)."""

from __future__ import annotations

from django.contrib import admin

from .models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "actor_kind", "action", "subject", "outcome", "address", "detail", "registration")
    list_filter = ("action", "outcome", "actor_kind", "at")
    search_fields = ("subject", "actor", "detail")
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditRecord._meta.fields]
    actions = None
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
