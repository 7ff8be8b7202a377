"""The provisioning worker beside each DC (`es4ps-worker`): applies signed tasks to the accounts of the managed OU.

In external mode the same worker runs alone and binds over LDAPS to a directory the organisation runs
(docs/external-directory.md).

config      the worker's settings from the environment (docs/interfaces.md)
cli         the process: the Celery app, one task per operation, the metrics server
handler     one task's life: open, look up, apply, retry, record, report
applied     the record of tasks this DC's worker applied (on the DC's volume)
directory   the operations on accounts (create, enable, disable, password, attributes, policy, delete)
binding     what an account carries about the registration that owns it, and its tasks' order
managed_ou  one connection scoped to the managed OU: lookups, a policy's OUs, groups and Unix ids
errors      the directory errors the worker retries or reports
privilege   the check at start: no right beyond the managed OU (an external directory's account too)
metrics     the worker's Prometheus metrics, summed over its pool
"""
