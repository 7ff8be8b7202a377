"""Backups of a domain, apart from the domain's own reconciliation (CloudNativePG's model).

    rules       pure decisions: summaries, the due slot, retention, what a Job's end means, BackupsHealthy
    reconcile   one ES4PSBackup moved a step on: its Job written, its end recorded, retention applied
    schedule    the ES4PSBackup of a due schedule slot created once

The kopf handlers only call `reconcile_backup` and `reconcile_schedule` and
post what they return; the manifests come from builders (builders.backups,
builders.jobs.backup_job).
"""
