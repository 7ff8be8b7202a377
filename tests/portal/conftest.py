"""Every portal test here may render templates in-process: they need the static files' manifest.

The portal's fixtures (smtp, broker, live_portal) and Django's configuration
live in es4ps_testkit.plugins.portal.
"""

import pytest


@pytest.fixture(autouse=True)
def _static_files(portal_static_files) -> None:
    """Collected once per session, before the first portal test."""
