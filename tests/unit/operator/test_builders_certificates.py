"""The certificates builder: the CA chain, the broker's, the clients' and the DCs' certificates, the portal's."""

from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_testkit.domains import make_domain
from es4ps_testkit.manifests import by_kind_name

# --- certificates -------------------------------------------------------------------


def test_the_ca_chain_is_self_signed_issuer_then_ca_certificate_then_ca_issuer(acme, config):
    certificates = build_desired_state(acme, config).applied["certificates"]
    selfsigned, ca_certificate, ca_issuer = certificates[:3]
    assert selfsigned["kind"] == "Issuer" and selfsigned["spec"] == {"selfSigned": {}}
    assert ca_certificate["kind"] == "Certificate" and ca_certificate["spec"]["isCA"] is True
    assert ca_certificate["spec"]["issuerRef"]["name"] == selfsigned["metadata"]["name"]
    assert ca_issuer["kind"] == "Issuer"
    assert ca_issuer["spec"] == {"ca": {"secretName": ca_certificate["spec"]["secretName"]}}
    for leaf in certificates[3:]:
        if leaf["metadata"]["name"] != "acme-portal-https-tls":
            assert leaf["spec"]["issuerRef"] == {"name": "acme-ca", "kind": "Issuer", "group": "cert-manager.io"}
        assert leaf["spec"]["secretName"] == leaf["metadata"]["name"]
        assert leaf["spec"]["secretTemplate"]["labels"]["app.kubernetes.io/instance"] == "acme"


def certificate(domain, config, name):
    return by_kind_name(build_desired_state(domain, config))[("Certificate", name)]["spec"]


def test_broker_certificate_names_the_service_as_clients_reach_it(acme, config):
    spec = certificate(acme, config, "acme-broker-tls")
    assert "acme-broker.acme.svc.cluster.local" in spec["dnsNames"]
    assert "acme-broker" in spec["dnsNames"]
    assert spec["usages"] == ["digital signature", "server auth"]
    # The URL both sides use must name a host the certificate covers.
    assert naming.broker_host(acme, config.cluster_domain) in spec["dnsNames"]


def test_client_certificates_carry_the_broker_users_as_common_names(config):
    domain = make_domain(directory={"replicas": 3})
    assert certificate(domain, config, "acme-portal-broker-tls")["commonName"] == "portal"
    for index in range(3):
        worker = certificate(domain, config, f"acme-dc{index}-worker-tls")
        assert worker["commonName"] == "worker"
        assert worker["usages"] == ["digital signature", "client auth"]


def test_ldaps_certificates_cover_the_dc_the_realm_and_the_directory_service(config):
    domain = make_domain(directory={"replicas": 2, "networkMode": "Service", "advertisedAddresses": ["192.0.2.7"]})
    dc0 = certificate(domain, config, "acme-dc0-ldaps-tls")
    assert dc0["commonName"] == "dc0.ad.acme.example"
    assert {
        "dc0.ad.acme.example",
        "ad.acme.example",
        "acme-directory.acme.svc.cluster.local",
        "acme-dc0-external.acme.svc",
        "acme-dc0.acme.svc.cluster.local",  # the portal asks each DC by that name
    } <= set(dc0["dnsNames"])
    assert dc0["ipAddresses"] == ["192.0.2.7"]
    assert "ipAddresses" not in certificate(domain, config, "acme-dc1-ldaps-tls")


def test_portal_https_certificate_uses_the_given_issuer_or_the_domain_ca(minimal, config):
    assert certificate(minimal, config, "acme-portal-https-tls")["issuerRef"]["name"] == "acme-ca"
    public = make_domain(
        portal={"host": "accounts.acme.example", "tls": {"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}}
    )
    spec = certificate(public, config, "acme-portal-https-tls")
    assert spec["issuerRef"] == {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert spec["dnsNames"] == ["accounts.acme.example"]
