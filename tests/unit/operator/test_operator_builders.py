"""The desired-state builders: pure functions from a domain to manifests."""

import dataclasses
import json
import re

import pytest
import yaml
from es4ps_contract.keys import load_sealing_private_key, load_sealing_public_key, load_signing_key, load_verify_key
from es4ps_contract.passwords import SETTINGS, PasswordPolicy
from es4ps_contract.sealing import seal_password, unseal_password
from es4ps_contract.signing import open_task, sign_task
from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE, EnableUser
from es4ps_localcluster.paths import ROOT
from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.broker import broker_definitions, rabbitmq_conf
from es4ps_operator.builders.directory import DC_CAPABILITIES
from es4ps_operator.builders.secrets import generate_admin_password, generate_task_keys
from es4ps_operator.config import Images
from es4ps_operator.domain import Domain
from es4ps_testkit.domains import default_password_policy, domain_body, make_domain


def by_kind_name(desired):
    return {(m["kind"], m["metadata"]["name"]): m for m in desired.manifests()}


def statefulset(desired, name):
    return by_kind_name(desired)[("StatefulSet", name)]


def containers(sts):
    return {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- every child ------------------------------------------------------------------


def test_every_child_has_namespace_labels_and_owner(acme, config):
    desired = build_desired_state(acme, config)
    # 8 cert-manager objects, 2 NetworkPolicies, 4 broker, 4 directory and 4 portal objects.
    assert len(desired.manifests()) == 22
    for manifest in desired.manifests():
        meta = manifest["metadata"]
        assert re.fullmatch(r"[0-9a-f]{16}", meta["annotations"][naming.DESIRED_HASH_ANNOTATION])
        assert meta["namespace"] == "acme"
        assert meta["name"].startswith("acme-")
        assert meta["labels"] == {
            "app.kubernetes.io/name": f"es4ps-{meta['labels']['app.kubernetes.io/component']}",
            "app.kubernetes.io/instance": "acme",
            "app.kubernetes.io/component": meta["labels"]["app.kubernetes.io/component"],
            "app.kubernetes.io/part-of": "es4ps",
            "app.kubernetes.io/managed-by": "es4ps-operator",
        }
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "es4ps.io/v1alpha1",
                "kind": "ES4PSDomain",
                "name": "acme",
                "uid": "0000-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_children_are_unique_and_their_names_fit_kubernetes_limits(config):
    # The longest name the CRD admits (40 characters) with the most DCs.
    domain = make_domain(directory={"replicas": 5, "networkMode": "Service"})
    domain = dataclasses.replace(domain, name="d" * 40)
    manifests = build_desired_state(domain, config).manifests()
    keys = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(keys) == len(set(keys))
    for kind, name in keys:
        # A StatefulSet's Pods carry a controller-revision-hash label built from its name: at most 52 characters.
        assert len(name) <= (52 if kind == "StatefulSet" else 63), name
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)


def test_builders_are_pure(acme, config):
    assert build_desired_state(acme, config).manifests() == build_desired_state(acme, config).manifests()


def test_generated_secrets_carry_no_values_until_they_are_created(acme, config):
    desired = build_desired_state(acme, config)
    assert not any(m["kind"] == "Secret" for m in desired.manifests())
    for secret in desired.generated_secrets:
        assert "stringData" not in secret.manifest and "data" not in secret.manifest
        assert secret.with_data({"k": "v"})["stringData"] == {"k": "v"}


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


# --- broker ----------------------------------------------------------------------------


def test_rabbitmq_conf_listens_on_tls_only_and_logs_clients_in_by_certificate():
    lines = set(rabbitmq_conf().splitlines())
    assert {
        "listeners.tcp = none",
        "listeners.ssl.default = 5671",
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
        "auth_mechanisms.1 = EXTERNAL",
        "ssl_cert_login_from = common_name",
        "load_definitions = /etc/rabbitmq/definitions.json",
    } <= lines
    assert not any(line.startswith(("default_user", "default_pass", "management")) for line in lines)


def test_broker_users_have_no_password_and_least_privilege():
    definitions = broker_definitions()
    assert {user["name"]: user["password_hash"] for user in definitions["users"]} == {"portal": "", "worker": ""}
    permissions = {p["user"]: p for p in definitions["permissions"]}
    assert re.fullmatch(permissions["portal"]["read"], RESULTS_QUEUE)
    assert not re.fullmatch(permissions["portal"]["read"], PROVISIONING_QUEUE)
    assert re.fullmatch(permissions["worker"]["read"], PROVISIONING_QUEUE)
    assert not re.fullmatch(permissions["worker"]["read"], RESULTS_QUEUE)
    for permission in permissions.values():
        assert permission["vhost"] == "es4ps"
        for kind in ("configure", "write", "read"):
            assert not re.fullmatch(permission[kind], "amq.default")
            assert not re.fullmatch(permission[kind], "es4ps.provisioningX")
    assert {q["name"] for q in definitions["queues"]} == {PROVISIONING_QUEUE, RESULTS_QUEUE}


def test_broker_pods_restart_when_their_configuration_changes(acme, config):
    desired = build_desired_state(acme, config)
    config_map = by_kind_name(desired)[("ConfigMap", "acme-broker")]
    assert json.loads(config_map["data"]["definitions.json"]) == broker_definitions()
    assert config_map["data"]["enabled_plugins"] == "[rabbitmq_auth_mechanism_ssl,rabbitmq_prometheus].\n"
    annotations = statefulset(desired, "acme-broker")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{16}", annotations[naming.CONFIG_HASH_ANNOTATION])


def test_broker_service_is_headless_on_5671_only(acme, config):
    service = by_kind_name(build_desired_state(acme, config))[("Service", "acme-broker")]
    assert service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in service["spec"]["ports"]] == [5671]


# --- directory ---------------------------------------------------------------------------


def test_dc_pods_have_least_privilege(acme, config):
    sts = statefulset(build_desired_state(acme, config), "acme-dc0")
    pod = sts["spec"]["template"]["spec"]
    dc, worker = containers(sts)["dc"], containers(sts)["worker"]
    assert "privileged" not in json.dumps(pod)
    assert dc["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": DC_CAPABILITIES}
    assert set(DC_CAPABILITIES) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"}
    assert worker["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_host_network_dc_advertises_its_node_address_and_resolves_through_itself(acme, config):
    sts = statefulset(build_desired_state(acme, config), "acme-dc0")
    pod = sts["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "None"
    assert pod["dnsConfig"]["nameservers"] == ["127.0.0.1", "10.96.0.10"]
    dc = env_of(containers(sts)["dc"])
    assert dc["ES4PS_HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert dc["ES4PS_DC_ROLE"] == "provision"
    assert dc["ES4PS_REALM"] == "AD.ACME.EXAMPLE"
    assert dc["ES4PS_NETBIOS_NAME"] == "ACME"
    assert dc["ES4PS_DNS_FORWARDER"] == "10.96.0.10"
    assert containers(sts)["dc"]["command"] == ["es4ps-samba-dc", "run"]
    assert containers(sts)["dc"]["readinessProbe"]["exec"]["command"] == ["es4ps-samba-dc", "ready"]


def test_further_dcs_join_the_first(config):
    desired = build_desired_state(make_domain(directory={"replicas": 2}), config)
    dc1 = env_of(containers(statefulset(desired, "acme-dc1"))["dc"])
    assert dc1["ES4PS_DC_ROLE"] == "join"
    assert dc1["ES4PS_JOIN_SERVER"] == "acme-dc0.acme.svc.cluster.local"
    assert dc1["ES4PS_DC_HOSTNAME"] == "dc1"
    assert by_kind_name(desired)[("Service", "acme-dc0")]["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize(("size", "expected"), [("5Gi", 5 << 30), ("500Mi", 500 << 20), ("2G", 2 * 10**9)])
def test_every_dc_learns_its_volume_size_in_bytes(config, size, expected):
    domain = make_domain(directory={"replicas": 2, "storage": {"size": size}})
    desired = build_desired_state(domain, config)
    for name in ("acme-dc0", "acme-dc1"):
        assert env_of(containers(statefulset(desired, name))["dc"])["ES4PS_DATA_VOLUME_BYTES"] == str(expected)


def test_service_mode_exposes_each_dc_and_advertises_the_given_address(config):
    domain = make_domain(
        directory={
            "replicas": 2,
            "networkMode": "Service",
            "serviceType": "LoadBalancer",
            "advertisedAddresses": ["192.0.2.7"],
        }
    )
    desired = by_kind_name(build_desired_state(domain, config))
    external = desired[("Service", "acme-dc0-external")]["spec"]
    assert external["type"] == "LoadBalancer"
    assert {(p["port"], p["protocol"]) for p in external["ports"]} >= {(389, "UDP"), (88, "TCP"), (636, "TCP")}
    dc0 = env_of(containers(desired[("StatefulSet", "acme-dc0")])["dc"])
    dc1 = env_of(containers(desired[("StatefulSet", "acme-dc1")])["dc"])
    assert dc0["ES4PS_HOST_IP"] == "192.0.2.7"
    assert dc1["ES4PS_HOST_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert desired[("StatefulSet", "acme-dc0")]["spec"]["template"]["spec"]["hostNetwork"] is False


def test_worker_reaches_the_broker_and_its_dc(acme, config):
    worker = containers(statefulset(build_desired_state(acme, config), "acme-dc0"))["worker"]
    variables = env_of(worker)
    assert variables["ES4PS_BROKER_URL"] == "amqps://acme-broker.acme.svc.cluster.local:5671/es4ps"
    assert variables["ES4PS_LDAP_URL"] == "ldap://127.0.0.1"
    assert worker["command"] == ["es4ps-worker"]


def ports_of(container):
    return {p["name"]: (p["containerPort"], p["protocol"]) for p in container.get("ports", [])}


def test_worker_serves_its_metrics_on_its_pods_address(acme, config):
    worker = containers(statefulset(build_desired_state(acme, config), "acme-dc0"))["worker"]
    assert ports_of(worker) == {"worker-metrics": (9932, "TCP")}
    variables = env_of(worker)
    assert variables["ES4PS_WORKER_METRICS_PORT"] == "9932"
    assert variables["ES4PS_WORKER_METRICS_ADDRESS"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_worker_gets_only_the_keys_it_needs(acme, config):
    pod = statefulset(build_desired_state(acme, config), "acme-dc0")["spec"]["template"]["spec"]
    keys = next(v for v in pod["volumes"] if v["name"] == "worker-keys")["secret"]
    assert {item["key"] for item in keys["items"]} == {"sealing-private.key", "signing-public.key"}


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


def test_portal_without_smtp_logs_mails_and_with_a_database_url_reads_it_from_a_secret(config):
    domain = make_domain(
        portal={"host": "accounts.acme.example", "replicas": 2, "databaseURLSecretRef": {"name": "acme-db"}}
    )
    sts = statefulset(build_desired_state(domain, config), "acme-portal")
    variables = env_of(containers(sts)["portal"])
    assert variables["ES4PS_EMAIL_BACKEND"] == "console"
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


def test_images_come_from_the_configuration_unless_the_spec_overrides_them(minimal, config):
    desired = build_desired_state(minimal, config)
    assert containers(statefulset(desired, "acme-portal"))["portal"]["image"] == "es4ps/portal:test"
    assert containers(statefulset(desired, "acme-broker"))["rabbitmq"]["image"] == "rabbitmq:test"
    overridden = make_domain(directory={"image": "mine/samba:1"})
    dc = containers(statefulset(build_desired_state(overridden, config), "acme-dc0"))
    assert dc["dc"]["image"] == dc["worker"]["image"] == "mine/samba:1"
    assert dc["dc"]["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.acme.example/es4ps/samba:1", True),
        ("registry.acme.example:5000/samba:1", False),
        ("registry.acme.example.evil/samba:1", False),
        ("evil.example/registry.acme.example/samba:1", False),
        ("samba:1", True),  # docker.io/library/samba
        ("quay.io/rabbitmq:3.13", False),
        ("mine/rabbitmq:3", False),  # docker.io/mine/rabbitmq: another path
    ],
)
def test_a_domain_may_name_only_images_of_the_registries_the_operator_allows(image, allowed):
    images = Images(
        samba="s",
        portal="p",
        broker="b",
        allowed_registries=("registry.acme.example", "docker.io/library"),
    )
    assert images.override_allowed(image) is allowed
    assert not Images(samba="s", portal="p", broker="b").override_allowed(image)  # default: no overrides


# --- security of the Pods --------------------------------------------------------------------


def test_the_worker_runs_unprivileged_without_the_administrator_password(acme, config):
    dc_pod = statefulset(build_desired_state(acme, config), "acme-dc0")["spec"]["template"]["spec"]
    worker = containers({"spec": {"template": {"spec": dc_pod}}})["worker"]
    assert worker["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 10001,
        "runAsGroup": 10001,
    }
    mounted = {mount["name"] for mount in worker["volumeMounts"]}
    assert "admin" not in mounted and "ADMIN" not in str(env_of(worker))
    assert env_of(worker)["ES4PS_WORKER_ACCOUNT"] == "es4ps-worker"
    # Its record of applied tasks: a subdirectory of the DC's volume, nothing else of it.
    [state] = [mount for mount in worker["volumeMounts"] if mount["name"] == "data"]
    assert (state["subPath"], state["readOnly"]) == ("es4ps-worker", False)
    volumes = {volume["name"]: volume for volume in dc_pod["volumes"]}
    assert volumes["worker-credentials"]["secret"]["secretName"] == "acme-worker-credentials"


@pytest.mark.parametrize(
    ("sts_name", "container"), [("acme-portal", "portal"), ("acme-portal", "consumer"), ("acme-broker", "rabbitmq")]
)
def test_portal_and_broker_run_on_a_read_only_root_with_a_writable_tmp(acme, config, sts_name, container):
    sts = statefulset(build_desired_state(acme, config), sts_name)
    spec = containers(sts)[container]
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    tmp = next(m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp")
    volumes = {volume["name"]: volume for volume in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[tmp["name"]]


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
    assert dc0["ES4PS_PASSWORD_POLICY"] == portal["ES4PS_PASSWORD_POLICY"]
    assert PasswordPolicy.from_json(dc0["ES4PS_PASSWORD_POLICY"]) == default_password_policy()


def test_a_domains_password_policy_reaches_the_dc_and_the_portal(config):
    policy = {"minLength": 12, "complexity": True, "maxAgeDays": 90}
    desired = build_desired_state(make_domain(directory={"passwordPolicy": policy}), config)
    dc0 = env_of(containers(statefulset(desired, "acme-dc0"))["dc"])
    expected = default_password_policy(min_length=12, complexity=True, max_age_days=90)
    assert PasswordPolicy.from_json(dc0["ES4PS_PASSWORD_POLICY"]) == expected


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


# --- network policies ---------------------------------------------------------------------------


def policies(domain, config):
    return {m["metadata"]["name"]: m["spec"] for m in build_desired_state(domain, config).applied["network"]}


def test_only_portal_and_dcs_reach_the_broker(config):
    domain = make_domain(directory={"networkMode": "Service"})
    broker = policies(domain, config)["acme-broker"]
    assert broker["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "acme",
        "app.kubernetes.io/component": "broker",
    }
    assert broker["policyTypes"] == ["Ingress"]
    [rule] = broker["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5671}]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"]] == [
        "portal",
        "directory",
    ]


def test_host_network_dcs_reach_the_broker_from_node_ranges_or_anywhere_with_mtls(config):
    open_rule = policies(make_domain(), config)["acme-broker"]["ingress"]
    assert open_rule == [{"ports": [{"protocol": "TCP", "port": 5671}]}]
    ranged = make_domain(directory={"nodeCIDRs": ["192.0.2.0/24", "198.51.100.7/32"]})
    # Exactly these peers: one more (say 0.0.0.0/0) would open the broker to everyone.
    assert policies(ranged, config)["acme-broker"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {"app.kubernetes.io/instance": "acme", "app.kubernetes.io/component": "portal"}
                    }
                },
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/instance": "acme",
                            "app.kubernetes.io/component": "directory",
                        }
                    }
                },
                {"ipBlock": {"cidr": "192.0.2.0/24"}},
                {"ipBlock": {"cidr": "198.51.100.7/32"}},
            ],
            "ports": [{"protocol": "TCP", "port": 5671}],
        }
    ]


def test_only_the_ingress_controller_reaches_the_portal(acme, config):
    portal = policies(acme, config)["acme-portal"]
    assert portal["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "portal"
    [rule] = portal["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]


# --- generated secrets and volumes --------------------------------------------------------------


def test_generated_secrets_and_volumes_are_kept_unless_deletion_policy_is_delete(config):
    for policy, owned, when_deleted in (("Retain", False, "Retain"), ("Delete", True, "Delete")):
        desired = build_desired_state(make_domain(deletionPolicy=policy), config)
        for secret in desired.generated_secrets:
            assert ("ownerReferences" in secret.manifest["metadata"]) is owned
        for manifest in desired.manifests():
            if manifest["kind"] == "StatefulSet":
                assert manifest["spec"]["persistentVolumeClaimRetentionPolicy"] == {
                    "whenDeleted": when_deleted,
                    "whenScaled": "Retain",
                }


def test_generated_secret_names(minimal, config):
    names = [s.name for s in build_desired_state(minimal, config).generated_secrets]
    assert names == ["acme-samba-admin", "acme-portal-secret-key", "acme-task-keys", "acme-worker-credentials"]


def test_admin_password_meets_the_domain_rules_and_differs_each_time():
    passwords = {generate_admin_password()["password"] for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) == 32
        assert PasswordPolicy.strictest().problems(password, "Administrator") == []


def test_task_keys_are_matching_pairs_in_the_contract_format(tmp_path):
    keys = generate_task_keys()
    for name, text in keys.items():
        (tmp_path / name).write_text(text)
    public = load_sealing_public_key(tmp_path / "sealing-public.key")
    private = load_sealing_private_key(tmp_path / "sealing-private.key")
    sealed = seal_password(public, "jdoe", "Secret-123")
    assert unseal_password(private, sealed, "jdoe") == "Secret-123"
    task = EnableUser("jdoe", registration="0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b", email="jdoe@acme.example")
    envelope = sign_task(load_signing_key(tmp_path / "signing-private.key"), task, "task-1")
    opened = open_task(
        load_verify_key(tmp_path / "signing-public.key"), envelope, operation=task.operation, task_id="task-1"
    )
    assert opened.task == task
    assert generate_task_keys() != keys


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_builds(example, config):
    document = yaml.safe_load(example.read_text())
    body = domain_body(document["spec"], document["metadata"]["name"], document["metadata"].get("namespace", "x"))
    desired = build_desired_state(Domain.from_body(body), config)
    replicas = document["spec"].get("directory", {}).get("replicas", 1)
    names = {m["metadata"]["name"] for m in desired.manifests() if m["kind"] == "StatefulSet"}
    assert names == {
        f"{document['metadata']['name']}-{part}" for part in ["broker", "portal", *(f"dc{i}" for i in range(replicas))]
    }
