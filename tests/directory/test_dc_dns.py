"""The DC's DNS serves the domain, not the cluster, to outsiders; the DC's Pod still resolves both.

Everything here is configured the way the operator writes it for a domain
with no `directory.dnsForwarder`, in a cluster whose DNS (a stand-in that
knows `kubernetes.default.svc.cluster.local`) the operator found: the DC
runs with the builder's `ES4PS_DNS_FORWARDER` (none), the resolver with the
builder's dnsmasq command line (its loopback addresses moved to this test's).
An outsider asking the DC gets the AD zone and no cluster name; the Pod's
resolver gives the realm from Samba and the cluster's names from the cluster.
While the DC's Samba is not up (a DC joining), the Pod's own lookups of the
realm end at once, with glibc and the Pod's resolv.conf as built. Last, the DC
restarts with the variables for a spec that names an upstream DNS: outsiders
get that upstream's names through the DC, still no cluster's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.resolver import RESOLVER_ADDRESS, SAMBA_DNS
from es4ps_operator.config import Images, OperatorConfig
from es4ps_testkit.dns import NameServer, ask
from es4ps_testkit.domains import make_domain
from es4ps_testkit.manifests import containers, env_of, statefulset
from es4ps_testkit.samba import SambaDC, claim_loopback_address

pytestmark = pytest.mark.services

CLUSTER_NAME = "kubernetes.default.svc.cluster.local"
CLUSTER_ADDRESS = "10.96.0.1"
REALM = "DNS.ES4PS.TEST"


def pod_as_built(cluster_dns: NameServer, domain) -> dict:
    """dc0's containers as the operator writes them for `domain`, in a cluster whose DNS is `cluster_dns`."""
    return containers(dc0_statefulset(cluster_dns, domain))


def dc0_statefulset(cluster_dns: NameServer, domain) -> dict:
    config = OperatorConfig(
        images=Images(samba="samba", portal="portal", broker="broker"), cluster_dns_ip=cluster_dns.address
    )
    return statefulset(build_desired_state(domain, config), "acme-dc0")


def resolver_command(dc_pod: dict, realm_server: str) -> list[str]:
    """The operator's resolver command, on a test loopback address, sending the realm to `realm_server`."""
    moved = {
        f"--listen-address={RESOLVER_ADDRESS}": "--listen-address={address}",
        f"--server=/{REALM.lower()}/{SAMBA_DNS}": f"--server=/{REALM.lower()}/{realm_server}",
    }
    command = dc_pod["resolver"]["command"]
    assert set(moved) <= set(command)
    return [moved.get(argument, argument) for argument in command]


@pytest.fixture(scope="module")
def cluster_dns(tmp_path_factory) -> Iterator[NameServer]:
    server = NameServer(tmp_path_factory.mktemp("cluster-dns"), {CLUSTER_NAME: CLUSTER_ADDRESS})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dc_pod(cluster_dns) -> dict:
    """The DC Pod's containers as the operator writes them, in a cluster whose DNS is `cluster_dns`."""
    return pod_as_built(cluster_dns, make_domain(realm=REALM))


@pytest.fixture(scope="module")
def dns_dc(tmp_path_factory, test_ca, dc_pod) -> Iterator[SambaDC]:
    dc = SambaDC(
        tmp_path_factory.mktemp("dns-dc"),
        test_ca,
        realm=REALM,
        netbios_name="DNSTEST",
        dns_forwarder=env_of(dc_pod["dc"]).get("ES4PS_DNS_FORWARDER", ""),
    )
    dc.start()
    yield dc
    dc.stop()


@pytest.fixture(scope="module")
def pod_resolver(tmp_path_factory, dc_pod, dns_dc) -> Iterator[NameServer]:
    """The Pod's resolver: the operator's command, on this test's loopback address, the realm at this DC."""
    resolver = NameServer(tmp_path_factory.mktemp("pod-resolver"), arguments=resolver_command(dc_pod, dns_dc.address))
    resolver.start()
    yield resolver
    resolver.stop()


def test_an_outsider_gets_the_ad_zone_from_the_dc_and_no_cluster_name(dns_dc, cluster_dns):
    assert ask(cluster_dns.address, CLUSTER_NAME) == ("NOERROR", [CLUSTER_ADDRESS])  # the name exists
    assert ask(dns_dc.address, f"{dns_dc.hostname}.{dns_dc.dns_domain}") == ("NOERROR", [dns_dc.address])
    code, records = ask(dns_dc.address, f"_ldap._tcp.{dns_dc.dns_domain}", "SRV")
    assert code == "NOERROR" and records and all(f"{dns_dc.hostname}.{dns_dc.dns_domain}." in r for r in records)
    code, records = ask(dns_dc.address, CLUSTER_NAME)
    assert records == [], f"the DC's DNS told an outsider {CLUSTER_NAME} ({code}: {records})"


def test_the_dcs_pod_resolves_the_realm_through_samba_and_the_cluster_through_its_dns(pod_resolver, dns_dc):
    assert ask(pod_resolver.address, f"{dns_dc.hostname}.{dns_dc.dns_domain}") == ("NOERROR", [dns_dc.address])
    assert ask(pod_resolver.address, CLUSTER_NAME) == ("NOERROR", [CLUSTER_ADDRESS])


def glibc_lookup(resolv_conf: Path, name: str, timeout_s: int) -> subprocess.CompletedProcess:
    """`getent hosts name` as the Pod's processes look it up: glibc reading `resolv_conf` (own mount namespace)."""
    script = 'mount --bind "$1" /etc/resolv.conf && exec timeout "$2" getent hosts "$3"'
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "-"]
    return subprocess.run([*command, str(resolv_conf), str(timeout_s), name], capture_output=True, text=True)


def test_while_the_dcs_samba_is_not_up_the_pods_realm_lookups_end_at_once(tmp_path_factory, cluster_dns):
    """A joining DC's Samba is not up yet: looking a realm name up must fail at once, not wait out glibc's timeouts.

    Through the resolver over UDP each such lookup took 40 s, and the joining
    DC's startup probe killed it before the join ended. The cluster's names
    resolve all the while.
    """
    built = dc0_statefulset(cluster_dns, make_domain(realm=REALM))
    silent_samba, claim = claim_loopback_address()  # nothing listens there: Samba is not up
    directory = tmp_path_factory.mktemp("joining-resolver")
    resolver = NameServer(directory, arguments=resolver_command(containers(built), silent_samba))
    resolver.start()
    try:
        moved = {RESOLVER_ADDRESS: resolver.address, SAMBA_DNS: silent_samba}
        dns_config = built["spec"]["template"]["spec"]["dnsConfig"]
        resolv_conf = "".join(f"nameserver {moved[server]}\n" for server in dns_config["nameservers"])
        resolv_conf += f"search {' '.join(dns_config['searches'])}\n"
        options = [
            option["name"] + (f":{option['value']}" if "value" in option else "")
            for option in dns_config.get("options", [])
        ]
        resolv_conf += f"options {' '.join(options)}\n" if options else ""
        (directory / "resolv.conf").write_text(resolv_conf)
        realm_name = glibc_lookup(directory / "resolv.conf", f"dc0.{REALM.lower()}", timeout_s=10)
        assert realm_name.returncode == 2, (
            f"a realm name's lookup while Samba is down did not end within 10 s: {realm_name}"
        )
        cluster_name = glibc_lookup(directory / "resolv.conf", CLUSTER_NAME, timeout_s=10)
        assert cluster_name.stdout.split()[:1] == [CLUSTER_ADDRESS], cluster_name
    finally:
        resolver.stop()
        os.close(claim)


def test_with_a_forwarder_in_the_spec_outsiders_get_its_names_and_still_no_cluster_name(
    tmp_path_factory, dns_dc, cluster_dns
):
    """Restarts the module's DC with the builder's variables for a spec naming an upstream DNS (runs last)."""
    upstream = NameServer(tmp_path_factory.mktemp("upstream-dns"), {"www.example.test": "192.0.2.80"})
    upstream.start()
    try:
        pod = pod_as_built(cluster_dns, make_domain(realm=REALM, directory={"dnsForwarder": upstream.address}))
        dns_dc.stop()
        dns_dc.dns_forwarder = env_of(pod["dc"])["ES4PS_DNS_FORWARDER"]
        dns_dc.start()
        assert ask(dns_dc.address, "www.example.test") == ("NOERROR", ["192.0.2.80"])
        code, records = ask(dns_dc.address, CLUSTER_NAME)
        assert records == [], f"the DC's DNS told an outsider {CLUSTER_NAME} ({code}: {records})"
    finally:
        upstream.stop()
