"""The portal's database as a whole: a consistent dump for a backup, its restore into a new domain, and the
advisory locks that let replicas sharing a PostgreSQL database take turns (`locks`).

    es4ps-portal manage dump_database <file>      SQLite: the online backup API; PostgreSQL: pg_dump (custom format)
    es4ps-portal manage restore_database <file>   into an empty database only; done once (run again: nothing)

The backup and restore Jobs of the operator run these (docs/operator.md,
"Backups"); the archive around the file is made and encrypted elsewhere
(es4ps_samba.backup).
"""
