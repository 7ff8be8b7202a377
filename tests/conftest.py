"""Fixtures shared by every test folder.

tests/ is on sys.path (it has no __init__.py), so `support.*` modules import
directly. Each fixture that needs a service starts it and fails the test
loudly when it cannot; nothing is skipped.
"""

from support.cluster import cluster, namespace  # noqa: F401
