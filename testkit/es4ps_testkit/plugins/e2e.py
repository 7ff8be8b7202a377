"""Fixture `deployment`: the product deployed on the real node (or kind) for the e2e tests (es4ps_testkit.e2e).

Deployed once per session, as `make demo` does it: images, Traefik as the
ingress controller, charts, the example domain Ready and its Ingress served,
the test's own SMTP server catching the portal's mail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..e2e import Deployment, deploy, platform


@pytest.fixture(scope="session")
def deployment(request, tmp_path_factory) -> Iterator[Deployment]:
    kube, where = platform(lambda: request.getfixturevalue("real_cluster"))
    deployed = deploy(kube, where, tmp_path_factory.mktemp("e2e"))
    yield deployed
    deployed.close()
