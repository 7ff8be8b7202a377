"""The file server's own resolver (es4ps_samba.files.resolver): the realm to the DC, the rest to the Pod's DNS."""

from __future__ import annotations

from es4ps_contract.resolver import dnsmasq_forwarder
from es4ps_samba.files.resolver import LISTEN, pod_nameservers, with_resolver_first

POD_RESOLV_CONF = "search acme.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"


def test_the_realm_goes_to_the_dc_and_every_other_name_to_the_pods_dns():
    command = dnsmasq_forwarder(LISTEN, "AD.ACME.EXAMPLE", "10.0.0.7", pod_nameservers(POD_RESOLV_CONF))
    assert "--server=/ad.acme.example/10.0.0.7" in command
    assert command[-1] == "--server=10.96.0.10"
    assert "--listen-address=127.0.0.1" in command and "--cache-size=0" in command


def test_resolv_conf_rewritten_again_comes_out_the_same_and_never_forwards_to_itself():
    # A restarted container finds the file as the last start left it.
    once = with_resolver_first(POD_RESOLV_CONF)
    assert once.splitlines()[0] == "nameserver 127.0.0.1"
    assert "nameserver 10.96.0.10" in once and "options ndots:5" in once
    assert with_resolver_first(once) == once
    assert pod_nameservers(once) == ["10.96.0.10"]
