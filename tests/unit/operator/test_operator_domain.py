"""Reading an ES4PSDomain: the CRD's defaults and the values derived from them."""

import re

import pytest
from es4ps_contract.environment import SettingError
from es4ps_contract.policies import PRIVILEGED_GROUPS
from es4ps_localcluster.paths import ROOT
from es4ps_operator.config import OperatorConfig, operator_version
from es4ps_operator.domain import Domain, SpecError
from es4ps_testkit.domains import MINIMAL_SPEC, crd_schema, domain_body, make_domain


def test_minimal_spec_gets_every_default(minimal):
    assert minimal.realm == "AD.ACME.EXAMPLE"
    assert minimal.netbios_name == "AD"
    assert minimal.organization_name == "AD"
    assert minimal.portal.replicas == 1
    assert minimal.portal.storage.size == "1Gi"
    assert minimal.portal.ingress_enabled is True
    assert minimal.portal.ingress_namespace_labels == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert minimal.portal.tls_issuer is None
    smtp = minimal.portal.smtp
    assert (smtp.port, smtp.security, smtp.password) == (587, "starttls", None)
    assert minimal.directory.replicas == 1
    assert minimal.directory.host_network is True
    assert minimal.directory.storage.size == "5Gi"
    assert minimal.broker.storage.size == "1Gi"
    assert minimal.delete_data is False
    assert minimal.paused is False
    assert minimal.portal_url == "https://accounts.acme.example/"


def test_netbios_name_defaults_to_the_first_label_upper_case():
    assert make_domain(realm="corp.example.org").netbios_name == "CORP"
    assert make_domain(realm="corp.example.org", netbiosName="Acme-1").netbios_name == "ACME-1"


def test_example_is_read_completely(acme):
    assert acme.organization_name == "ACME Corporation"
    assert acme.allowed_email_domains == ("acme.example", "acme.org")
    assert acme.portal.smtp.password.name == "acme-smtp"
    assert acme.portal.smtp.password.key == "password"
    assert acme.portal.staff_user.username == "it-admin"
    assert acme.portal.ingress_class == "nginx"


def test_a_body_without_defaults_is_refused_with_a_hint():
    body = domain_body(MINIMAL_SPEC)
    del body["spec"]["directory"]
    with pytest.raises(SpecError, match="CRD up to date"):
        Domain.from_body(body)


def test_config_defaults_come_from_the_version_file():
    config = OperatorConfig.from_env({})
    version = (ROOT / "VERSION").read_text().strip()
    assert operator_version() == version
    assert config.images.samba == f"es4ps/samba:{version}"
    assert config.images.portal == f"es4ps/portal:{version}"
    assert config.images.pull_policy == "IfNotPresent"


def test_config_refuses_bad_values_naming_the_variable():
    with pytest.raises(SettingError, match="ES4PS_IMAGE_PULL_POLICY"):
        OperatorConfig.from_env({"ES4PS_IMAGE_PULL_POLICY": "Sometimes"})
    with pytest.raises(SettingError, match="ES4PS_RESYNC_SECONDS"):
        OperatorConfig.from_env({"ES4PS_RESYNC_SECONDS": "soon"})
    with pytest.raises(SettingError, match="ES4PS_LEADER_ELECTION"):
        OperatorConfig.from_env({"ES4PS_LEADER_ELECTION": "maybe"})


def test_config_overrides():
    config = OperatorConfig.from_env(
        {
            "ES4PS_SAMBA_IMAGE": "local/samba:dev",
            "ES4PS_IMAGE_PULL_POLICY": "Never",
            "ES4PS_LEADER_ELECTION": "false",
            "ES4PS_CLUSTER_DNS_IP": "10.0.0.10",
        }
    )
    assert config.images.samba == "local/samba:dev"
    assert config.images.pull_policy == "Never"
    assert config.leader_election is False
    assert config.cluster_dns_ip == "10.0.0.10"


def test_policies_unix_approval_and_audit_retention_are_read_with_their_defaults(minimal, acme):
    assert minimal.policies == ()
    assert minimal.directory.unix is None
    assert (minimal.portal.approval, minimal.portal.audit_retention_days) == ("Automatic", 365)
    students, partners = acme.policies
    assert (students.email_domain, students.ou, students.groups, students.uid_range) == (
        "students.acme.example",
        "Students",
        ("students", "wifi"),
        (1000000, 1999999),
    )
    assert (partners.ou, partners.groups, partners.uid_range) == ("Partners", ("wifi",), None)
    assert (students.computers_per_person, partners.computers_per_person) == (2, 0)
    assert (students.as_spec()["computers"], partners.as_spec()["computers"]) == ({"perPerson": 2}, {"perPerson": 0})
    assert acme.directory.unix.uid_range == (10000, 999999)
    assert acme.directory.unix.gid_number is None
    # Turned on with nothing else: the CRD's defaults.
    unix = make_domain(directory={"unix": {"enabled": True}}).directory.unix
    assert (unix.login_shell, unix.home_directory_template, unix.uid_range) == (
        "/bin/bash",
        "/home/{username}",
        (10000, 999999),
    )


def test_the_crd_refuses_the_same_privileged_groups_as_the_contract():
    """One list, kept in two places only because CEL cannot import Python: this test keeps them equal."""
    items = crd_schema()["properties"]["spec"]["properties"]["policies"]["items"]["properties"]["groups"]["items"]
    (rule,) = [check["rule"] for check in items["x-kubernetes-validations"] if "lowerAscii" in check["rule"]]
    assert set(re.findall(r"'([^']+)'", rule)) == PRIVILEGED_GROUPS
