"""The API server refuses bad ES4PSDomains with a message naming the field (the CRD's schema and CEL rules)."""

from __future__ import annotations

import copy

import pytest
import yaml
from es4ps_testkit.domains import EXAMPLE, example_domain

pytestmark = pytest.mark.cluster


def without_netbios(spec):
    spec.pop("netbiosName")


JOIN = {"realm": "AD.ACME.EXAMPLE", "server": "dc1.ad.acme.example", "credentialsSecretRef": {"name": "old-admin"}}
S3 = {"endpoint": "https://s3.example", "bucket": "backups", "credentialsSecretRef": {"name": "s3"}}

# (what is wrong, how to break the example's spec, the field the refusal must name)
INVALID = [
    ("realm with one label", lambda s: s.update(realm="localhost"), "spec.realm"),
    ("realm of digits", lambda s: s.update(realm="ad.123"), "spec.realm"),
    ("realm with a space", lambda s: s.update(realm="AD.ACME EXAMPLE"), "spec.realm"),
    ("NetBIOS name of 16 characters", lambda s: s.update(netbiosName="ABCDEFGHIJKLMNOP"), "spec.netbiosName"),
    ("NetBIOS name with a dot", lambda s: s.update(netbiosName="AC.ME"), "spec.netbiosName"),
    (
        "long first realm label without NetBIOS name",
        lambda s: (without_netbios(s), s.update(realm="averyverylongfirstlabel.example")),
        "spec.netbiosName",
    ),
    ("no allowed e-mail domain", lambda s: s.update(allowedEmailDomains=[]), "spec.allowedEmailDomains"),
    (
        "e-mail domain that is no DNS name",
        lambda s: s.update(allowedEmailDomains=["acme example"]),
        "spec.allowedEmailDomains[0]",
    ),
    ("portal host that is no DNS name", lambda s: s["portal"].update(host="https://accounts"), "spec.portal.host"),
    ("no portal replica", lambda s: s["portal"].update(replicas=0), "spec.portal.replicas"),
    (
        "a breach corpus at no http(s) URL",
        lambda s: s["directory"].update(passwordPolicy={"breachedPasswords": {"rangeURL": "file:///ranges/"}}),
        "spec.directory.passwordPolicy.breachedPasswords.rangeURL",
    ),
    (
        "the admin on the public host",
        lambda s: s["portal"].update(admin={"host": s["portal"]["host"]}),
        "spec.portal.admin.host",
    ),
    (
        "an admin source range that is no CIDR",
        lambda s: s["portal"].update(admin={"allowedSourceRanges": ["192.0.2.0/24", "campus"]}),
        "spec.portal.admin.allowedSourceRanges[1]",
    ),
    ("two portal replicas on SQLite", lambda s: s["portal"].update(replicas=2), "spec.portal.replicas"),
    ("six domain controllers", lambda s: s["directory"].update(replicas=6), "spec.directory.replicas"),
    (
        "storage size that is no quantity",
        lambda s: s["directory"]["storage"].update(size="lots"),
        "spec.directory.storage.size",
    ),
    ("negative storage size", lambda s: s["broker"]["storage"].update(size="-1Gi"), "spec.broker.storage.size"),
    ("unknown network mode", lambda s: s["directory"].update(networkMode="Bridge"), "spec.directory.networkMode"),
    (
        "advertised address that is no IP",
        lambda s: s["directory"].update(advertisedAddresses=["dc0.example"]),
        "spec.directory.advertisedAddresses[0]",
    ),
    (
        "more advertised addresses than DCs",
        lambda s: s["directory"].update(advertisedAddresses=["192.0.2.1", "192.0.2.2"]),
        "spec.directory.advertisedAddresses",
    ),
    ("unknown deletion policy", lambda s: s.update(deletionPolicy="Keep"), "spec.deletionPolicy"),
    (
        "organisation name with a control character",
        lambda s: s.update(organizationName="ACME\u0007 College"),
        "spec.organizationName",
    ),
    (
        "organisation name with an invisible character",
        lambda s: s.update(organizationName="ACME\u200b College"),
        "spec.organizationName",
    ),
    (
        "staff username with a space",
        lambda s: s["portal"]["staffUser"].update(username="it admin"),
        "spec.portal.staffUser.username",
    ),
    (
        "staff username in upper case",
        lambda s: s["portal"]["staffUser"].update(username="Admin"),
        "spec.portal.staffUser.username",
    ),
    (
        "a negative number of trusted proxies",
        lambda s: s["portal"]["ingress"].update(trustedProxies=-1),
        "spec.portal.ingress.trustedProxies",
    ),
    (
        "registrations kept shorter than their mail works",
        lambda s: s["portal"].update(registration={"linkValidityHours": 48, "unconfirmedRetentionHours": 24}),
        "spec.portal.registration.unconfirmedRetentionHours",
    ),
    (
        "links that never work",
        lambda s: s["portal"].update(registration={"linkValidityHours": 0}),
        "spec.portal.registration.linkValidityHours",
    ),
    ("unknown SMTP security", lambda s: s["portal"]["smtp"].update(security="ssl"), "spec.portal.smtp.security"),
    ("no domain controller", lambda s: s["directory"].update(replicas=0), "spec.directory.replicas"),
    (
        "backups to a volume and to S3 at once",
        lambda s: s["directory"].update(backup={"destination": {"volume": {}, "s3": S3}}),
        "spec.directory.backup.destination",
    ),
    (
        "backups to nowhere",
        lambda s: s["directory"].update(backup={"destination": {}}),
        "spec.directory.backup.destination",
    ),
    (
        "a schedule that is no cron expression",
        lambda s: s["directory"].update(backup={"schedule": "daily", "destination": {"volume": {}}}),
        "spec.directory.backup.schedule",
    ),
    (
        "keeping no backup",
        lambda s: s["directory"].update(backup={"keep": 0, "destination": {"volume": {}}}),
        "spec.directory.backup.keep",
    ),
    (
        "an S3 endpoint that is no URL",
        lambda s: s["directory"].update(backup={"destination": {"s3": {**S3, "endpoint": "minio:9000"}}}),
        "spec.directory.backup.destination.s3.endpoint",
    ),
    (
        "a recovery naming no backup",
        lambda s: s["directory"].update(bootstrap={"recovery": {}}),
        "spec.directory.bootstrap.recovery.backup",
    ),
    (
        "a join to another realm than the domain's",
        lambda s: s["directory"].update(bootstrap={"join": {**JOIN, "realm": "OTHER.EXAMPLE"}}),
        "spec.directory.bootstrap.join.realm",
    ),
    (
        "a join and a recovery at once",
        lambda s: s["directory"].update(bootstrap={"join": JOIN, "recovery": {"backup": "acme-1"}}),
        "spec.directory.bootstrap",
    ),
    (
        "a join without credentials",
        lambda s: s["directory"].update(
            bootstrap={"join": {k: v for k, v in JOIN.items() if k != "credentialsSecretRef"}}
        ),
        "spec.directory.bootstrap.join.credentialsSecretRef",
    ),
    (
        "a join server that is no host name",
        lambda s: s["directory"].update(bootstrap={"join": {**JOIN, "server": "ldap://dc1"}}),
        "spec.directory.bootstrap.join.server",
    ),
    ("SMTP port out of range", lambda s: s["portal"]["smtp"].update(port=70000), "spec.portal.smtp.port"),
    (
        "a memory limit that is no quantity",
        lambda s: s["directory"].update(resources={"limits": {"memory": "lots"}}),
        "spec.directory.resources.limits.memory",
    ),
    (
        "a toleration of an unknown operator",
        lambda s: s["portal"].update(tolerations=[{"key": "k", "operator": "Maybe"}]),
        "spec.portal.tolerations[0].operator",
    ),
    (
        "a node affinity term of an unknown operator",
        lambda s: s["broker"].update(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near"}]}]
                    }
                }
            }
        ),
        "spec.broker.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        ".matchExpressions[0].operator",
    ),
    (
        "a pull secret without a name",
        lambda s: s["directory"].update(backup={"destination": {"volume": {}}, "imagePullSecrets": [{}]}),
        "spec.directory.backup.imagePullSecrets[0].name",
    ),
    (
        "a Pod label value too long for a label",
        lambda s: s.update(maintenance={"podLabels": {"team": "x" * 64}}),
        "spec.maintenance.podLabels.team",
    ),
    (
        "a ServiceAccount without annotations",
        lambda s: s["portal"].update(serviceAccount={}),
        "spec.portal.serviceAccount.annotations",
    ),
    (
        "unknown approval",
        lambda s: s["portal"]["registration"].update(approval="Maybe"),
        "spec.portal.registration.approval",
    ),
    ("audit kept no day", lambda s: s["portal"].update(auditRetentionDays=0), "spec.portal.auditRetentionDays"),
    (
        "policy for a domain that may not register",
        lambda s: s["policies"].append({"emailDomain": "evil.example", "ou": "Evil"}),
        "spec.policies",
    ),
    (
        "policy for a look-alike of an allowed domain",
        lambda s: s["policies"].append({"emailDomain": "xacme.org"}),
        "spec.policies",
    ),
    (
        "policy naming a privileged group",
        lambda s: s["policies"][0].update(groups=["students", "Domain Admins"]),
        "spec.policies[0].groups[1]",
    ),
    (
        "policy naming Enterprise Admins in another case",
        lambda s: s["policies"][1].update(groups=["enterprise ADMINS"]),
        "spec.policies[1].groups[0]",
    ),
    ("OU name with DN syntax", lambda s: s["policies"][0].update(ou="OU=Evil,DC=x"), "spec.policies[0].ou"),
    (
        "two policies of one domain",
        lambda s: s["policies"].append({"emailDomain": "students.acme.example"}),
        "spec.policies[2]",
    ),
    (
        "overlapping uid ranges of two policies",
        lambda s: s["policies"][1].update(uidRange={"start": 1500000, "end": 2500000}),
        "spec.policies",
    ),
    (
        "a policy's uid range overlapping the directory's",
        lambda s: s["policies"][0].update(uidRange={"start": 900000, "end": 1100000}),
        "spec.policies",
    ),
    (
        "a policy's uid range without Unix attributes",
        lambda s: s["directory"]["unix"].update(enabled=False),
        "spec.policies",
    ),
    (
        "uid range ending before it starts",
        lambda s: s["directory"]["unix"].update(uidRange={"start": 50000, "end": 40000}),
        "spec.directory.unix.uidRange",
    ),
    (
        "uids of the clients' system accounts",
        lambda s: s["directory"]["unix"].update(uidRange={"start": 0, "end": 40000}),
        "spec.directory.unix.uidRange.start",
    ),
    (
        "relative login shell",
        lambda s: s["directory"]["unix"].update(loginShell="bash"),
        "spec.directory.unix.loginShell",
    ),
    (
        "home directory climbing out",
        lambda s: s["directory"]["unix"].update(homeDirectoryTemplate="/home/../etc/{username}"),
        "spec.directory.unix.homeDirectoryTemplate",
    ),
    ("gid of root", lambda s: s["directory"]["unix"].update(gidNumber=0), "spec.directory.unix.gidNumber"),
    (
        "more computers per person than 100",
        lambda s: s["policies"][0].update(computers={"perPerson": 101}),
        "spec.policies[0].computers.perPerson",
    ),
    (
        "a negative number of computers per person",
        lambda s: s["policies"][1].update(computers={"perPerson": -1}),
        "spec.policies[1].computers.perPerson",
    ),
    (
        "computers per person not a number",
        lambda s: s["policies"][0].update(computers={"perPerson": "2"}),
        "spec.policies[0].computers.perPerson",
    ),
    ("unknown language", lambda s: s["portal"].update(defaultLanguage="fr"), "spec.portal.defaultLanguage"),
    ("language in lower case", lambda s: s["portal"].update(defaultLanguage="pt-br"), "spec.portal.defaultLanguage"),
    (
        "passwords shorter than 8",
        lambda s: s["directory"]["passwordPolicy"].update(minLength=6),
        "spec.directory.passwordPolicy.minLength",
    ),
    (
        "a minimum length Active Directory cannot hold",
        lambda s: s["directory"]["passwordPolicy"].update(minLength=20),
        "spec.directory.passwordPolicy.minLength",
    ),
    (
        "a lockout only an administrator lifts",
        lambda s: s["directory"]["passwordPolicy"].update(lockoutDurationMinutes=0),
        "spec.directory.passwordPolicy.lockoutDurationMinutes",
    ),
    (
        "a minimum age not below the maximum",
        lambda s: s["directory"]["passwordPolicy"].update(maxAgeDays=30, minAgeDays=30),
        "spec.directory.passwordPolicy.minAgeDays",
    ),
    (
        "a reminder not before the password expires",
        lambda s: (
            s["directory"]["passwordPolicy"].update(maxAgeDays=30),
            s["portal"].update(passwordExpiryReminderDays=[30, 3]),
        ),
        "spec.portal.passwordExpiryReminderDays",
    ),
    (
        "a share name that is no SMB share name",
        lambda s: s.update(fileServices={"shares": [{"name": "class notes", "groups": ["students"]}]}),
        "spec.fileServices.shares[0].name",
    ),
    (
        "a share named like smb.conf's own sections",
        lambda s: s.update(fileServices={"shares": [{"name": "homes", "groups": ["students"]}]}),
        "spec.fileServices.shares[0].name",
    ),
    (
        "a share group no policy declares",
        lambda s: s.update(fileServices={"shares": [{"name": "teachers", "groups": ["teachers"]}]}),
        "spec.fileServices.shares",
    ),
    (
        "a homes quota larger than the volume",
        lambda s: s.update(fileServices={"storage": {"size": "10Gi"}, "homes": {"quota": "20Gi"}}),
        "spec.fileServices.homes.quota",
    ),
    (
        "file services without Unix attributes",
        lambda s: (s.update(fileServices={}), s["directory"]["unix"].update(enabled=False)),
        "spec.fileServices",
    ),
    (
        "file services with an external directory",
        lambda s: s.update(
            fileServices={},
            directory=s["directory"]
            | {
                "external": {
                    "url": "ldaps://dc1.ad.acme.example",
                    "caSecretRef": {"name": "ad-ca"},
                    "credentialsSecretRef": {"name": "ad-account"},
                    "ou": "OU=Registered",
                }
            },
        ),
        "spec.fileServices",
    ),
    ("two file servers on one volume", lambda s: s.update(fileServices={"replicas": 2}), "spec.fileServices.replicas"),
]


def test_file_services_from_the_policies_groups_are_accepted(es4ps_crd, domain_namespace):
    domain = example_domain(
        domain_namespace,
        fileServices={
            "storage": {"size": "50Gi"},
            "homes": {"enabled": True, "quota": "2Gi"},
            "shares": [{"name": "students", "groups": ["students"], "access": "readWrite"}],
            "printing": {"enabled": True},
        },
    )
    accepted = es4ps_crd.kubectl("create", "--dry-run=server", "-o", "yaml", "-f", "-", input=yaml.safe_dump(domain))
    assert yaml.safe_load(accepted.stdout)["spec"]["fileServices"]["replicas"] == 1


@pytest.mark.parametrize(("problem", "break_spec", "field"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_spec_is_refused_naming_the_field(es4ps_crd, domain_namespace, problem, break_spec, field):
    domain = example_domain(domain_namespace)
    break_spec(domain["spec"])
    refused = es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain), check=False)
    assert refused.returncode != 0, f"{problem}: accepted"
    assert f"{field}:" in refused.stderr or f"{field} " in refused.stderr, refused.stderr
    assert "is invalid" in refused.stderr


def test_a_too_long_name_is_refused(es4ps_crd, domain_namespace):
    domain = example_domain(domain_namespace)
    domain["metadata"]["name"] = "a" * 41
    refused = es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain), check=False)
    assert refused.returncode != 0
    assert "metadata.name must be at most 40 characters" in refused.stderr


@pytest.mark.parametrize("example", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_is_accepted(es4ps_crd, domain_namespace, example):
    domain = yaml.safe_load(example.read_text())
    domain["metadata"]["namespace"] = domain_namespace
    es4ps_crd.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(domain))


IMMUTABLE = [
    ("realm", lambda s: s.update(realm="AD.OTHER.EXAMPLE"), "spec.realm", "realm is immutable"),
    ("NetBIOS name", lambda s: s.update(netbiosName="OTHER"), "spec.netbiosName", "netbiosName is immutable"),
    (
        "directory storage",
        lambda s: s["directory"]["storage"].update(size="10Gi"),
        "spec.directory.storage",
        "directory.storage is immutable",
    ),
    (
        "portal storage class",
        lambda s: s["portal"]["storage"].update(storageClassName="fast"),
        "spec.portal.storage",
        "portal.storage is immutable",
    ),
    (
        "recovery added later",
        lambda s: s["directory"].update(bootstrap={"recovery": {"backup": "acme-1"}}),
        "spec.directory.bootstrap",
        "never added or removed later",
    ),
]
RECOVERED = [
    (
        "recovery backup",
        lambda s: s["directory"]["bootstrap"]["recovery"].update(backup="acme-2"),
        "spec.directory.bootstrap",
        "directory.bootstrap is immutable",
    ),
    (
        "recovery removed",
        lambda s: s["directory"].pop("bootstrap"),
        "spec.directory.bootstrap",
        "never added or removed later",
    ),
]


@pytest.mark.parametrize(
    ("what", "change", "field", "message"), IMMUTABLE + RECOVERED, ids=[case[0] for case in IMMUTABLE + RECOVERED]
)
def test_immutable_fields_cannot_change(es4ps_crd, domain_namespace, what, change, field, message):
    # No operator serves this namespace: the object is only stored.
    domain = example_domain(domain_namespace)
    if (what, change, field, message) in RECOVERED:
        domain["spec"]["directory"]["bootstrap"] = {"recovery": {"backup": "acme-1"}}
    es4ps_crd.apply(yaml.safe_dump(domain))
    changed = copy.deepcopy(domain)
    change(changed["spec"])
    refused = es4ps_crd.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(changed), check=False)
    assert refused.returncode != 0, f"changing the {what} was accepted"
    assert field in refused.stderr and message in refused.stderr, refused.stderr


def backup(namespace: str, **spec) -> dict:
    return {
        "apiVersion": "es4ps.io/v1alpha1",
        "kind": "ES4PSBackup",
        "metadata": {"name": "acme-manual", "namespace": namespace},
        "spec": {"domain": "acme", **spec},
    }


def test_an_es4psbackup_names_a_domain_and_never_changes(es4ps_crd, domain_namespace):
    refused = es4ps_crd.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(backup(domain_namespace, domain="Acme!")),
        check=False,
    )
    assert refused.returncode != 0 and "spec.domain" in refused.stderr, refused.stderr

    es4ps_crd.apply(yaml.safe_dump(backup(domain_namespace)))
    changed = es4ps_crd.kubectl(
        "apply", "--server-side", "-f", "-", input=yaml.safe_dump(backup(domain_namespace, domain="beta")), check=False
    )
    assert changed.returncode != 0 and "an ES4PSBackup's spec is immutable" in changed.stderr, changed.stderr
