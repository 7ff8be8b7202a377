"""Fixtures shared by every test folder.

tests/ is on sys.path (it has no __init__.py), so `support.*` modules import
directly. Each fixture that needs a service starts it and fails the test
loudly when it cannot; nothing is skipped.
"""

from support.cluster import _cluster_session, cluster, namespace, real_cluster, real_namespace  # noqa: F401
from support.mail import *  # noqa: F403 - the mail_catcher fixture, by name
from support.service_fixtures import *  # noqa: F403 - test CA, RabbitMQ, Samba DC, keys, worker


def pytest_collection_modifyitems(items):
    """Run the tests on the real node (marked e2e) last: switching the cluster's node mode happens once."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
