"""The audit trail: an append-only record of every staff action and every change a person makes to the directory.

records.py    `record()` and `Actor` (who acted, from which address), called where the change is made
models.py     AuditRecord, its append-only manager, and the retention prune
admin.py      the read-only list with filters (no add, change or delete, superusers included)
management/commands/export_audit.py   `es4ps-portal manage export_audit --since ...` (JSON lines)
"""
