"""Fixture `deployment`: the product deployed on the real node (or kind) for the e2e tests (es4ps_testkit.e2e).

Deployed once per session, as `make demo` does it: images, Traefik as the
ingress controller, charts, the example domain Ready and its Ingress served,
the test's own SMTP server catching the portal's mail.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Iterator

import pytest
from es4ps_localcluster import demo

from ..e2e import Deployment, platform
from ..mail import MailCatcher


@pytest.fixture(scope="session")
def deployment(request, tmp_path_factory) -> Iterator[Deployment]:
    kube, where = platform(lambda: request.getfixturevalue("real_cluster"))
    demo.kubeconfig = kube.kubeconfig
    start = time.monotonic()
    where.load_images()
    demo.install_ingress_controller()
    mail = MailCatcher(host=where.smtp_host)
    mail.start()
    directory = tmp_path_factory.mktemp("e2e")
    demo.prepare_namespaces("Staff-" + base64.urlsafe_b64encode(os.urandom(9)).decode())
    deployment = Deployment(kube, where, mail, "", "", directory / "portal-ca.crt", "", directory / "dc-ca.crt", "")
    deployment.install()
    domain = demo.wait_ready(timeout_s=900)
    print(f"\nthe domain was Ready {time.monotonic() - start:.0f} s after the e2e began", file=sys.stderr)
    demo.portal_ca_file(deployment.portal_ca)
    address, port = where.ingress_entry()
    demo.wait_ingress_served(address, port, deployment.portal_ca)
    deployment.portal_url = f"https://{demo.PORTAL_HOST}" + ("" if port == 443 else f":{port}")
    deployment.ingress_address = address
    deployment.realm = domain["spec"]["realm"]
    deployment.directory_name = f"dc0.{deployment.realm.lower()}"
    ldaps = demo.certificate_secret(deployment.directory_name)
    deployment.directory_ca.write_bytes(base64.b64decode(ldaps["data"]["ca.crt"]))
    yield deployment
    mail.stop()
    where.close()
