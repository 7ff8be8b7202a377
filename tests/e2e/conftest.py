"""The product deployed as a platform team would, for the end-to-end tests.

The same steps as `make demo` (es4ps_localcluster.demo): images on the node, the
es4ps-crds and es4ps charts with the example domain from values, wait for
Ready, the portal behind a local HTTPS entry with its cert-manager
certificate. The test's own SMTP server catches the portal's mail.

On the local real node by default; `ES4PS_E2E_PLATFORM=kind` (set by
`make e2e-kind`) runs the same tests on a kind cluster.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
from es4ps_localcluster import demo
from platforms import Kind, LocalNode
from support.cluster import KubeCluster
from support.mail import MailCatcher
from support.portal_client import PortalClient


@dataclass
class Deployment:
    """The deployed domain, as a person and an operator of the platform reach it."""

    kube: KubeCluster
    platform: LocalNode | Kind
    mail: MailCatcher
    portal_url: str
    ingress_address: str
    portal_ca: Path
    realm: str
    directory_ca: Path
    directory_name: str

    def person(self) -> PortalClient:
        """A new browser session at the portal's public address, through the HTTPS entry."""
        return PortalClient(self.portal_url, connect_to=self.ingress_address, ca_file=str(self.portal_ca))

    def password_authenticates(self, username: str, password: str) -> bool:
        """A simple LDAP bind as the user over LDAPS to the DC in its pod: the directory's own answer."""
        tls = ldap3.Tls(
            ca_certs_file=str(self.directory_ca), validate=ssl.CERT_REQUIRED, valid_names=[self.directory_name]
        )
        server = ldap3.Server(f"ldaps://{self.platform.dc_address}:636", tls=tls, connect_timeout=10)
        connection = ldap3.Connection(server, user=f"{username}@{self.realm.lower()}", password=password)
        try:
            return connection.bind()
        finally:
            connection.unbind()

    def install(self, **spec_changes) -> None:
        """helm upgrade --install with the local values (plus `spec_changes`, dotted paths)."""
        demo.install(
            demo.local_domain_values(
                self.platform.smtp_host, self.mail.port, **{**self.platform.spec_changes(), **spec_changes}
            )
        )


def _platform(real_cluster_factory) -> tuple[KubeCluster, LocalNode | Kind]:
    if os.environ.get("ES4PS_E2E_PLATFORM") == "kind":
        kube = KubeCluster(Path(os.environ["KUBECONFIG"]))
        return kube, Kind(kube, os.environ.get("ES4PS_KIND_CLUSTER", "es4ps-e2e"))
    kube = real_cluster_factory()
    return kube, LocalNode(kube)


@pytest.fixture(scope="session")
def deployment(request, tmp_path_factory) -> Iterator[Deployment]:
    kube, platform = _platform(lambda: request.getfixturevalue("real_cluster"))
    demo.kubeconfig = kube.kubeconfig
    start = time.monotonic()
    platform.load_images()
    mail = MailCatcher(host=platform.smtp_host)
    mail.start()
    directory = tmp_path_factory.mktemp("e2e")
    demo.prepare_namespaces("Staff-" + base64.urlsafe_b64encode(os.urandom(9)).decode())
    deployment = Deployment(kube, platform, mail, "", "", directory / "portal-ca.crt", "", directory / "dc-ca.crt", "")
    deployment.install()
    domain = demo.wait_ready(timeout_s=900)
    print(f"\nthe domain was Ready {time.monotonic() - start:.0f} s after the e2e began", file=sys.stderr)
    cert, key, ca = demo.portal_tls_files(directory / "portal-tls")
    deployment.portal_ca = ca
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ingress = demo.start_ingress(f"127.0.0.1:{port}", cert, key, directory / "ingress.log")
    deployment.portal_url = f"https://{demo.PORTAL_HOST}:{port}"
    deployment.ingress_address = "127.0.0.1"
    deployment.realm = domain["spec"]["realm"]
    deployment.directory_name = f"dc0.{deployment.realm.lower()}"
    ldaps = demo.certificate_secret(deployment.directory_name)
    deployment.directory_ca.write_bytes(base64.b64decode(ldaps["data"]["ca.crt"]))
    yield deployment
    ingress.terminate()
    mail.stop()
    platform.close()
