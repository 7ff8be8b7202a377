"""`make demo`: the whole product on a real local Kubernetes node, as a platform team would run it.

    python -m es4ps_devtools demo up     cluster with a real node, images, Traefik as the ingress controller,
                                         the Helm charts with the example domain and a mail catcher; prints
                                         where to go next, read from the domain it deployed
    python -m es4ps_devtools demo mail   print the newest mail the portal sent (verification link and code)
    python -m es4ps_devtools demo down   stop everything `up` started (the cluster too)

The deployment steps are `deployment`'s, shared with the end-to-end tests.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import mailbox
import secrets
import subprocess
import sys
import time

from es4ps_contract.passwords import PasswordPolicy
from es4ps_localcluster import Cluster, ingress, tools
from es4ps_localcluster import images as cluster_images
from es4ps_localcluster.components.node import host_ip
from es4ps_localcluster.paths import LOCAL
from es4ps_localcluster.processes import Supervisor

from . import deployment
from .images import IMAGES

STATE = LOCAL / "demo"
# The demo's own background process (the mail catcher): STATE/<name>.pid and .log.
BACKGROUND = Supervisor(STATE, STATE)
SMTP_PORT = 2525
# The product's images the demo runs (rabbitmq: this machine cannot pull the stock one).
PRODUCT_IMAGES = [IMAGES["operator"], IMAGES["portal"], IMAGES["samba"], IMAGES["rabbitmq"]]
# Passwords the instructions may suggest; the first the domain's policy accepts is shown.
EXAMPLE_PASSWORDS = ("correct horse battery staple", "Correct-Horse-Battery-Staple-42")
EXAMPLE_PERSON = "ada"


def log(step: str) -> None:
    print(f"==> {step}", flush=True)


def _start_mail_catcher(listen: str) -> None:
    """aiosmtpd keeping every mail in a Maildir (`demo mail` reads it)."""
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", listen, "-c", "aiosmtpd.handlers.Mailbox"]
    STATE.mkdir(parents=True, exist_ok=True)
    BACKGROUND.stop("mail")
    BACKGROUND.start("mail", [*argv, str(STATE / "mailbox")])


def instructions(domain: dict, ca: str, staff_file: str, node_ip: str, elapsed_s: float) -> str:
    """What to do next, from the deployed domain: its portal, e-mail domains, password policy, realm, staff user."""
    spec, status = domain["spec"], domain.get("status", {})
    url = f"https://{spec['portal']['host']}/"
    email_domain = spec["allowedEmailDomains"][0]
    policy = PasswordPolicy.from_json(json.dumps(spec.get("directory", {}).get("passwordPolicy", {})))
    example = next((p for p in EXAMPLE_PASSWORDS if not policy.problems(p, EXAMPLE_PERSON)), None)
    rules = " ".join(str(rule) for rule in policy.rules())
    suggestion = f'a password\n     like "{example}"' if example else "a password"
    name, namespace = domain["metadata"]["name"], domain["metadata"]["namespace"]
    return f"""
The ES4PS demo is up ({elapsed_s:.0f} s). KUBECONFIG={deployment.kubeconfig}

  kubectl get es4psdomains -A    ({status.get("phase", "")}, DCs {status.get("domainControllers")})

Register an account:
  1. open {url}  (Traefik on 127.0.0.1:{ingress.HTTPS_PORT} serves the portal's Ingress; its
     certificate comes from the domain's CA: {ca};
     trust it, or accept the browser's warning; curl: --cacert {ca})
  2. register with an address @{email_domain}, e.g. {EXAMPLE_PERSON}@{email_domain}, and {suggestion}
     ({name}'s password policy: {rules})
  3. `make demo-mail` prints the verification mail: open its link or type its code
  4. the status page turns "ready"; sign in with your password

See the account in the Active Directory:
  kubectl -n {namespace} exec {name}-dc0-0 -c dc -- samba-tool user show <username>
  and log in to the DC with your password (the DC runs on this host's network):
  ldbsearch -H ldap://{node_ip} -U '<username>@{spec["realm"]}%<password>' -b '' -s base dnsHostName
Staff admin: {url}admin/ as {spec["portal"]["staffUser"]["username"]}, password in {staff_file}

Stop everything: make demo-down
"""


def up() -> int:
    start = time.monotonic()
    # The cluster's tools compile (CPU) while the product's images build (mostly downloads): a first
    # run on a fresh machine waits for the longer of the two, not for both. Both are cached afterwards.
    log("the cluster's tools (Go, built once, then cached) and, meanwhile, the product's images")
    host = cluster_images.docker_host()
    building = tools.Build()
    try:
        cluster_images.build(PRODUCT_IMAGES, host)
    finally:
        building.wait()  # a failed image build does not leave the tools' build running behind
    log("local cluster with a real node (containerd, kubelet, kube-proxy, CoreDNS)")
    cluster = Cluster()
    if cluster.healthy() and cluster.mode != "real":
        cluster.down()
    cluster.up(node="real")
    images = [*PRODUCT_IMAGES, cluster_images.TRAEFIK]
    log(f"container images on the node: {', '.join(i.name for i in images)}")
    cluster_images.build([cluster_images.TRAEFIK], host)
    cluster_images.load(cluster.node.containerd_socket, images, host)
    log(f"Traefik as the ingress controller (namespace {ingress.NAMESPACE}, IngressClass {ingress.INGRESS_CLASS})")
    deployment.install_ingress_controller()
    node_ip = host_ip()
    log(f"mail catcher on {node_ip}:{SMTP_PORT} (the portal's SMTP server; `make demo-mail` shows the newest mail)")
    _start_mail_catcher(f"{node_ip}:{SMTP_PORT}")
    staff_file = STATE / "staff-password"
    if not staff_file.exists():
        staff_file.write_text("Staff-" + secrets.token_urlsafe(12) + "\n")
        staff_file.chmod(0o600)
    deployment.prepare_namespaces(staff_file.read_text().strip())
    log(
        f"helm upgrade --install {deployment.CRD_RELEASE} charts/es4ps-crds; helm upgrade --install "
        f"{deployment.RELEASE} charts/es4ps -n {deployment.OPERATOR_NAMESPACE} (operator + the example domain)"
    )
    # the broker admits 5671 from the DC's node only (and from the portal's and DCs' Pods)
    deployment.install(deployment.local_domain_values(node_ip, SMTP_PORT, **{"directory.nodeCIDRs": [f"{node_ip}/32"]}))
    log("waiting for the domain to become Ready (certificates, broker, Samba DC provisioning, portal)")
    seen: set[str] = set()

    def progress(domain: dict) -> None:
        for condition in domain.get("status", {}).get("conditions", []):
            line = f"{condition['type']}={condition['status']} ({condition.get('reason', '')})"
            if line not in seen:
                seen.add(line)
                print(f"    {line}", flush=True)

    domain = deployment.wait_ready(progress=progress)
    ca = deployment.portal_ca_file(STATE / "portal-ca.crt")
    deployment.wait_ingress_served(ingress.HOST_ADDRESS, ingress.HTTPS_PORT, ca)
    print(instructions(domain, str(ca), str(staff_file), node_ip, time.monotonic() - start))
    return 0


def down() -> int:
    BACKGROUND.stop("mail")
    Cluster().down()
    cluster_images.stop_dockerd()
    print("demo stopped")
    return 0


def show_mail() -> int:
    box = mailbox.Maildir(STATE / "mailbox", create=False)
    messages = sorted(box, key=lambda m: m.get_date())
    if not messages:
        print("no mail yet")
        return 1
    message = email.message_from_bytes(messages[-1].as_bytes(), policy=email.policy.default)
    print(f"To: {message['To']}\nSubject: {message['Subject']}\n")
    print(message.get_body(preferencelist=("plain",)).get_content())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m es4ps_devtools demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "mail"))
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "mail": show_mail}[args.command]()
    # ClusterError, ImageError and ToolError are RuntimeErrors: each says which step failed and why
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
