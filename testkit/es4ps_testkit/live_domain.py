"""A domain of the real-node e2e tests as its people and its directory administrator reach it (`LiveDomain`).

Beside the deployment's `acme`, a test applies domains of its own (the day-2
tests' `beta`, the upgrade test's `campus`); each is served by the same
ingress controller and mail catcher. `LiveDomain` is what every such test does
with one: wait for Ready, reach the portal through the ingress controller,
register people and confirm them by mail, find each DC's Pod, and check a
password against one DC alone (an LDAPS bind and a Kerberos login).
"""

from __future__ import annotations

import base64
import copy
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from es4ps_devtools import deployment as steps
from es4ps_devtools.paths import EXAMPLE

from .directory_checks import kerberos_login, ldap_bind
from .portal_client import PortalClient
from .registration import GOOD_PASSWORD


def example_domain_as(
    deployment,
    name: str,
    *,
    realm: str,
    netbios_name: str,
    organization: str,
    mail_domain: str,
    host: str,
    staff_secret: str,
    directory: dict,
) -> dict:
    """examples/acme.yaml made into another domain beside `acme`: its own names, the deployment's ingress and
    mail catcher, a staff user whose password is in `staff_secret`, `directory` as given, data deleted with it."""
    spec = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    spec.update(realm=realm, netbiosName=netbios_name, organizationName=organization, allowedEmailDomains=[mail_domain])
    spec.pop("policies", None)  # acme's policies name acme's e-mail domains
    spec["portal"]["host"] = host
    spec["portal"]["ingress"] = steps.domain_ingress()
    spec["portal"]["smtp"] = {
        "host": deployment.platform.smtp_host,
        "port": deployment.mail.port,
        "security": "none",
        "from": f"accounts@{mail_domain}",
    }
    spec["portal"]["staffUser"] = {
        "username": "it-admin",
        "email": f"it@{mail_domain}",
        "passwordSecretRef": {"name": staff_secret},
    }
    spec["directory"] = directory
    spec["deletionPolicy"] = "Delete"
    return {"apiVersion": "es4ps.io/v1alpha1", "kind": "ES4PSDomain", "metadata": {"name": name}, "spec": spec}


@dataclass
class LiveDomain:
    """One ES4PSDomain on the cluster of `deployment` (es4ps_testkit.e2e.Deployment)."""

    deployment: object
    directory: Path
    name: str
    namespace: str
    host: str
    realm: str
    mail_domain: str
    portal_url: str = ""
    portal_ca: Path | None = None
    accounts: list[str] = field(default_factory=list)

    @property
    def kube(self):
        return self.deployment.kube

    def get(self) -> dict:
        return self.kube.get("es4psdomain", self.name, self.namespace)

    def condition(self, kind: str) -> dict:
        conditions = self.get().get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind), {})

    def ready(self) -> dict | None:
        """The domain when its status is current and Ready is True, else None."""
        domain = self.get()
        current = domain.get("status", {}).get("observedGeneration") == domain["metadata"]["generation"]
        conditions = {c["type"]: c["status"] for c in domain.get("status", {}).get("conditions", [])}
        return domain if current and conditions.get("Ready") == "True" else None

    def wait_ready(self, timeout: float = 900) -> dict:
        return self.kube.eventually(self.ready, timeout=timeout, interval=3, message=f"the {self.name} domain Ready")

    def open_portal(self) -> None:
        """The portal through the deployment's ingress controller (its Ingress served, its certificate's CA)."""
        ca = steps.portal_ca_file(self.directory / f"{self.name}-portal-ca.crt", self.host, self.namespace)
        address, port = self.deployment.ingress_address, urlsplit(self.deployment.portal_url).port or 443
        steps.wait_ingress_served(address, port, ca, domain=self.name, namespace=self.namespace, host=self.host)
        self.portal_url, self.portal_ca = f"https://{self.host}" + ("" if port == 443 else f":{port}"), ca

    def portal_answers(self) -> bool:
        """Whether the portal's registration page answers 200 through the ingress controller right now."""
        port = urlsplit(self.portal_url).port or 443
        status = steps.portal_page_through(self.deployment.ingress_address, port, self.portal_ca, self.host)
        return status == 200

    def person(self) -> PortalClient:
        return PortalClient(self.portal_url, connect_to=self.deployment.ingress_address, ca_file=str(self.portal_ca))

    def register(self, prefix: str, timeout_s: float = 300) -> str:
        """A person registers and confirms; returns the username once the portal says ready."""
        username = f"{prefix}{uuid.uuid4().hex[:5]}"
        person = self.person()
        email = f"{username}@{self.mail_domain}"
        registered = person.register(username, email)
        assert registered.status_code == 200 and "/status/" in registered.url, registered.text[:500]
        person.confirm_link(self.deployment.mail.wait_for(email, timeout_s=120).link("/verify/"))
        status = person.wait_for_status(lambda s: s["state"] in ("ready", "failed"), timeout_s=timeout_s)
        assert status["state"] == "ready", status
        self.accounts.append(username)
        return username

    def logs_in(self, username: str, password: str = GOOD_PASSWORD) -> bool:
        """Whether the person signs in to the portal (which binds to the directory with the password)."""
        signed_in = self.person().login(username, password)
        return signed_in.status_code == 200 and "/login/" not in signed_in.url

    # --- the DCs, each in its own Pod

    def dc_pods(self) -> dict[int, dict]:
        """DC index -> its Pod (the first Pod of each DC's StatefulSet)."""
        found = {}
        for pod in self.kube.get("pods", namespace=self.namespace)["items"]:
            labels = pod["metadata"].get("labels", {})
            name = pod["metadata"]["name"]
            if (
                labels.get("app.kubernetes.io/instance") == self.name
                and labels.get("app.kubernetes.io/component") == "directory"
                and name.endswith("-0")
            ):
                found[int(name.split("-dc")[1].split("-")[0])] = pod
        return found

    def dc(self, index: int) -> tuple[str, str, Path]:
        """(Pod address, TLS name, CA file) of DC `index`."""
        pod = self.dc_pods()[index]
        dc = next(c for c in pod["spec"]["containers"] if c["name"] == "dc")
        hostname = next(e["value"] for e in dc["env"] if e["name"] == "ES4PS_DC_HOSTNAME")  # dc0, or dc0-1a2b
        tls_name = f"{hostname}.{self.realm.lower()}"
        ca = self.directory / f"{self.name}-dc{index}-ca.crt"
        ca.write_bytes(base64.b64decode(steps.certificate_secret(tls_name, self.namespace)["data"]["ca.crt"]))
        return pod["status"]["podIP"], tls_name, ca

    def authenticates(self, index: int, username: str, password: str = GOOD_PASSWORD) -> bool:
        """LDAP bind and Kerberos login against DC `index` alone."""
        address, tls_name, ca = self.dc(index)
        return ldap_bind(address, ca, tls_name, f"{username}@{self.realm.lower()}", password) and kerberos_login(
            address, self.realm, username, password
        )

    def wait_authenticates(self, indexes, username: str, timeout: float = 300) -> float:
        """Seconds until `username` authenticates on every DC of `indexes`.

        Right after a DC joins, the others start pulling from it when their KCC and replication service
        come round (every minute on the DCs: docs/operations.md); after that, changes follow in seconds.
        """
        start = time.monotonic()
        for index in indexes:
            self.kube.eventually(
                lambda index=index: self.authenticates(index, username),
                timeout=timeout,
                interval=2,
                message=f"{username} authenticating on dc{index}",
            )
        return time.monotonic() - start

    def admin_password(self) -> str:
        secret = self.kube.get("secret", f"{self.name}-samba-admin", self.namespace)
        return base64.b64decode(secret["data"]["password"]).decode()
