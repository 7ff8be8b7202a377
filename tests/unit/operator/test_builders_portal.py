"""The portal builder: its environment (limits, policy, language), metrics ports, Ingress."""

import json

import yaml
from es4ps_contract.passwords import SETTINGS, PasswordPolicy
from es4ps_localcluster.paths import ROOT
from es4ps_operator.builders import build_desired_state
from es4ps_testkit.domains import default_password_policy, make_domain
from es4ps_testkit.manifests import by_kind_name, containers, env_of, ports_of, statefulset

# --- portal ------------------------------------------------------------------------------


def test_portal_environment(acme, config):
    sts = statefulset(build_desired_state(acme, config), "acme-portal")
    portal, consumer = containers(sts)["portal"], containers(sts)["consumer"]
    assert portal["command"] == ["es4ps-portal", "serve"]
    assert consumer["command"] == ["es4ps-portal", "consume"]
    variables = env_of(portal)
    assert env_of(consumer) == variables
    assert variables["ES4PS_PORTAL_HOST"] == "accounts.acme.example"
    assert variables["ES4PS_ALLOWED_EMAIL_DOMAINS"] == "acme.example,acme.org"
    assert variables["ES4PS_ORGANIZATION_NAME"] == "ACME Corporation"
    assert variables["ES4PS_LDAP_URL"] == "ldaps://acme-directory.acme.svc.cluster.local:636"
    assert variables["ES4PS_LDAP_DC_URLS"] == ",".join(
        f"ldaps://acme-dc{index}.acme.svc.cluster.local:636" for index in range(acme.directory.replicas)
    )
    assert variables["ES4PS_EMAIL_BACKEND"] == "smtp"
    assert variables["ES4PS_SMTP_HOST"] == "smtp.acme.example"
    assert variables["ES4PS_SMTP_PASSWORD_FILE"] == "/etc/es4ps/smtp/password"  # noqa: S105 (a path)
    assert variables["ES4PS_SUPERUSER_USERNAME"] == "it-admin"
    keys = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "portal-keys")["secret"]
    assert {item["key"] for item in keys["items"]} == {"sealing-public.key", "signing-private.key"}


def test_portal_and_consumer_serve_metrics_on_ports_of_their_own_that_the_service_does_not_route(acme, config):
    desired = build_desired_state(acme, config)
    sts = statefulset(desired, "acme-portal")
    portal, consumer = containers(sts)["portal"], containers(sts)["consumer"]
    assert ports_of(portal) == {"http": (8000, "TCP"), "metrics": (9933, "TCP")}
    assert ports_of(consumer) == {"consumer-metric": (9934, "TCP")}
    variables = env_of(portal)
    assert (variables["ES4PS_PORTAL_METRICS_PORT"], variables["ES4PS_CONSUMER_METRICS_PORT"]) == ("9933", "9934")
    # The Service (and through it the Ingress) leads to the public port only.
    service = by_kind_name(desired)[("Service", "acme-portal")]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_portal_without_smtp_gets_no_mail_settings_and_with_a_database_url_reads_it_from_a_secret(config):
    domain = make_domain(
        portal={"host": "accounts.acme.example", "replicas": 2, "databaseURLSecretRef": {"name": "acme-db"}}
    )
    sts = statefulset(build_desired_state(domain, config), "acme-portal")
    variables = env_of(containers(sts)["portal"])
    # Never the console backend (mails and their links in the log): no server, no mail.
    assert not {"ES4PS_EMAIL_BACKEND", "ES4PS_SMTP_HOST", "ES4PS_MAIL_FROM"} & set(variables)
    assert variables["ES4PS_DATABASE_URL"] == {"secretKeyRef": {"name": "acme-db", "key": "url"}}
    assert sts["spec"]["replicas"] == 2


def test_registration_times_default_from_the_crd_and_reach_the_portal(minimal, config):
    defaults = env_of(containers(statefulset(build_desired_state(minimal, config), "acme-portal"))["portal"])
    assert (defaults["ES4PS_TOKEN_TTL_HOURS"], defaults["ES4PS_UNVERIFIED_RETENTION_HOURS"]) == ("24", "168")

    registration = {"linkValidityHours": 48, "unconfirmedRetentionHours": 0}
    domain = make_domain(portal={"host": "accounts.acme.example", "registration": registration})
    changed = env_of(containers(statefulset(build_desired_state(domain, config), "acme-portal"))["portal"])
    assert (changed["ES4PS_TOKEN_TTL_HOURS"], changed["ES4PS_UNVERIFIED_RETENTION_HOURS"]) == ("48", "0")


def test_ingress_routes_the_host_with_the_https_certificate(acme, config):
    desired = by_kind_name(build_desired_state(acme, config))
    ingress = desired[("Ingress", "acme-portal")]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["accounts.acme.example"], "secretName": "acme-portal-https-tls"}]
    assert ingress["spec"]["rules"][0]["host"] == "accounts.acme.example"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "1m"
    disabled = make_domain(portal={"host": "accounts.acme.example", "ingress": {"enabled": False}})
    assert ("Ingress", "acme-portal") not in by_kind_name(build_desired_state(disabled, config))


def test_the_admin_on_its_own_host_and_from_named_ranges_only(minimal, config):
    portal = {
        "host": "accounts.acme.example",
        "admin": {"host": "staff.acme.example", "allowedSourceRanges": ["192.0.2.0/24", "2001:db8:1::/48"]},
    }
    desired = by_kind_name(build_desired_state(make_domain(portal=portal), config))
    variables = env_of(containers(desired[("StatefulSet", "acme-portal")])["portal"])
    assert variables["ES4PS_ADMIN_HOST"] == "staff.acme.example"
    assert variables["ES4PS_ADMIN_SOURCE_RANGES"] == "192.0.2.0/24,2001:db8:1::/48"
    ingress = desired[("Ingress", "acme-portal")]["spec"]
    assert [rule["host"] for rule in ingress["rules"]] == ["accounts.acme.example", "staff.acme.example"]
    assert ingress["tls"][0]["hosts"] == ["accounts.acme.example", "staff.acme.example"]
    certificate = desired[("Certificate", "acme-portal-https-tls")]["spec"]
    assert certificate["dnsNames"] == ["accounts.acme.example", "staff.acme.example"]
    # By default: the public host, every address (the portal still asks staff for a second factor).
    defaults = env_of(containers(statefulset(build_desired_state(minimal, config), "acme-portal"))["portal"])
    assert (defaults["ES4PS_ADMIN_HOST"], defaults["ES4PS_ADMIN_SOURCE_RANGES"]) == ("", "")


def test_the_portal_gets_the_domains_rate_limits_and_trusted_proxies(config):
    domain = make_domain(
        portal={
            "host": "accounts.acme.example",
            "ingress": {"trustedProxies": 2},
            "rateLimits": {"register": {"perAddress": {"requests": 900}}},
        }
    )
    variables = env_of(containers(statefulset(build_desired_state(domain, config), "acme-portal"))["portal"])
    assert variables["ES4PS_TRUSTED_PROXY_COUNT"] == "2"
    limits = json.loads(variables["ES4PS_RATE_LIMITS"])
    assert limits["register"]["perAddress"] == {"requests": 900, "windowSeconds": 3600}  # the CRD's default window
    assert limits["reset"]["perAccount"] == {"requests": 3, "windowSeconds": 3600}


def test_the_password_policy_goes_to_the_first_dc_and_the_portal_with_the_crds_defaults(config):
    desired = build_desired_state(make_domain(directory={"replicas": 2}), config)
    dc0 = env_of(containers(statefulset(desired, "acme-dc0"))["dc"])
    dc1 = env_of(containers(statefulset(desired, "acme-dc1"))["dc"])
    portal = env_of(containers(statefulset(desired, "acme-portal"))["portal"])
    # One DC writes the domain-wide policy; the others get it by replication (and do not restart for it).
    assert "ES4PS_PASSWORD_POLICY" not in dc1
    assert PasswordPolicy.from_json(portal["ES4PS_PASSWORD_POLICY"]) == default_password_policy()
    assert PasswordPolicy.from_json(dc0["ES4PS_PASSWORD_POLICY"], directory=True) == default_password_policy()


def test_the_dc_is_told_only_the_settings_a_dc_of_the_previous_release_knows(config):
    """The DC applies no breach corpus; a 0.1.0 DC, still running while an upgrade rolls the DCs, refuses the key.

    So dc0's environment is what 0.1.0's operator wrote, byte for byte: the new operator does not restart dc0
    with its old image and a setting it refuses (found by tests/e2e/test_release_upgrade.py).
    """
    policy = {"minLength": 12, "breachedPasswords": {"rangeURL": "https://ranges.example/range/"}}
    desired = build_desired_state(make_domain(directory={"passwordPolicy": policy}), config)
    dc0 = env_of(containers(statefulset(desired, "acme-dc0"))["dc"])["ES4PS_PASSWORD_POLICY"]
    portal = env_of(containers(statefulset(desired, "acme-portal"))["portal"])["ES4PS_PASSWORD_POLICY"]
    release_0_1_0 = {setting.name for setting in SETTINGS} | {"complexity"}
    assert set(json.loads(dc0)) == release_0_1_0
    assert dc0 == json.dumps({k: v for k, v in json.loads(portal).items() if k in release_0_1_0}, sort_keys=True,
                             separators=(",", ":"))  # fmt: skip
    assert PasswordPolicy.from_json(portal).breached_passwords.range_url == "https://ranges.example/range/"


def test_a_domains_password_policy_reaches_the_dc_and_the_portal(config):
    policy = {"minLength": 12, "complexity": True, "maxAgeDays": 90}
    desired = build_desired_state(make_domain(directory={"passwordPolicy": policy}), config)
    dc0 = env_of(containers(statefulset(desired, "acme-dc0"))["dc"])
    expected = default_password_policy(min_length=12, complexity=True, max_age_days=90)
    assert PasswordPolicy.from_json(dc0["ES4PS_PASSWORD_POLICY"], directory=True) == expected


def test_the_portal_gets_its_language_and_the_reminder_days(minimal, config):
    defaults = env_of(containers(statefulset(build_desired_state(minimal, config), "acme-portal"))["portal"])
    assert (defaults["ES4PS_DEFAULT_LANGUAGE"], defaults["ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS"]) == ("en", "14,3")

    portal = {"host": "accounts.acme.example", "defaultLanguage": "pt-BR", "passwordExpiryReminderDays": [1, 7]}
    changed = env_of(
        containers(statefulset(build_desired_state(make_domain(portal=portal), config), "acme-portal"))["portal"]
    )
    assert (changed["ES4PS_DEFAULT_LANGUAGE"], changed["ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS"]) == ("pt-BR", "7,1")


def test_the_contract_refuses_the_password_policy_ranges_the_crd_refuses():
    """The DC and the portal check ES4PS_PASSWORD_POLICY again (it may come from elsewhere than the operator)."""
    crd = yaml.safe_load((ROOT / "crds" / "es4ps.io_es4psdomains.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema = spec["properties"]["directory"]["properties"]["passwordPolicy"]["properties"]
    for setting in SETTINGS:
        assert (schema[setting.name]["minimum"], schema[setting.name]["maximum"]) == (setting.minimum, setting.maximum)


def test_the_breach_corpus_range_files_are_mounted_read_only_in_the_portal(minimal, config):
    policy = {"breachedPasswords": {"rangeFilesClaim": "breach-ranges"}}
    sts = statefulset(build_desired_state(make_domain(directory={"passwordPolicy": policy}), config), "acme-portal")
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "breached-ranges")
    assert volume["persistentVolumeClaim"] == {"claimName": "breach-ranges", "readOnly": True}
    mounted = {m["name"]: m for m in containers(sts)["portal"]["volumeMounts"]}["breached-ranges"]
    assert (mounted["mountPath"], mounted["readOnly"]) == ("/var/lib/es4ps/breached-password-ranges", True)
    plain = statefulset(build_desired_state(minimal, config), "acme-portal")
    assert "breached-ranges" not in {v["name"] for v in plain["spec"]["template"]["spec"]["volumes"]}
