"""Fixtures `deployment` and `multi_deployment`: the product deployed for the e2e tests (es4ps_testkit.e2e).

Each is deployed once per session, as `make demo` does it: images, Traefik as
the ingress controller, charts, the example domain Ready and its Ingress
served, the test's own SMTP server catching the portal's mail. `deployment`
runs on the real node (or kind); `multi_deployment` on the multi-node cluster,
in the default topology with two DCs, three broker members and two portal
replicas (es4ps_testkit.multinode).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..e2e import Deployment, deploy, platform
from ..multinode import NodesDeployment, deploy_on_nodes


@pytest.fixture(scope="session")
def deployment(request, tmp_path_factory) -> Iterator[Deployment]:
    kube, where = platform(lambda: request.getfixturevalue("real_cluster"))
    deployed = deploy(kube, where, tmp_path_factory.mktemp("e2e"))
    yield deployed
    deployed.close()


@pytest.fixture(scope="session")
def multi_deployment(multi_cluster, local_cluster, tmp_path_factory) -> Iterator[NodesDeployment]:
    deployed = deploy_on_nodes(multi_cluster, local_cluster, tmp_path_factory.mktemp("e2e-nodes"))
    yield deployed
    deployed.close()
