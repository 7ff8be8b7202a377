"""Releases from a registry, installed as an adopter would, then upgraded in place from the previous release.

A real OCI registry runs here (TLS, logins) and gets two releases by the code
of `make release`: the previous one (the commit the CHANGELOG names, from a
git worktree) and this checkout's, each image with a signature and a signed
SBOM, each chart signed. Campus (es4ps_testkit.upgrade) installs the previous
release from it with `helm install oci://...`, every image pulled by the
kubelet with an imagePullSecret and by digest, creates a domain with two DCs,
people and a backup, then upgrades both charts with `helm upgrade` as a GitOps
pipeline would, while the portal is watched and people keep registering;
last, the domain is deleted and made again from the backup the previous
release took. The tests run in this order and share Campus; this checkout's
release is published while Campus installs the previous one.

The cluster is the e2e tests' shared real node: while this module runs, the
deployment's own operator (which serves every namespace) is scaled to zero so
that only Campus's serves `campus`; it is scaled back afterwards.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from es4ps_devtools import deployment as steps
from es4ps_localcluster import tools
from es4ps_testkit import upgrade
from es4ps_testkit.registration import GOOD_PASSWORD
from es4ps_testkit.releases import KEY_PASSWORD, publish
from es4ps_testkit.upgrade import NAMESPACE, OPERATOR_NAMESPACE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
# How long the domain may be other than Ready during the upgrade (its DCs roll one at a time).
READY_AGAIN_WITHIN_S = 600


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    started = time.monotonic()
    with publish(tmp_path_factory.mktemp("releases")) as releases:
        upgrade.log(f"release {releases.previous} published in {time.monotonic() - started:.0f} s")
        yield releases


@pytest.fixture(scope="module")
def campus(deployment, published, tmp_path_factory):
    """Campus on the previous release (es4ps_testkit.upgrade.adopt_previous); everything of it removed after."""
    kube = deployment.kube
    with upgrade.paused_operator(kube, "es4ps", steps.OPERATOR_NAMESPACE):
        try:
            directory = tmp_path_factory.mktemp("campus")
            yield upgrade.adopt_previous(deployment, published, directory, "Staff-" + secrets.token_urlsafe(12))
        finally:
            upgrade.remove(kube, upgrade.NAME)


def cosign(published, *args: str) -> subprocess.CompletedProcess:
    """cosign as a verifier runs it: the release's public key, the registry's CA, no transparency log."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "SSL_CERT_FILE": str(published.registry.ca_file),
        "DOCKER_CONFIG": str(published.puller_config),  # the registry lets nobody read without a login
    }
    return subprocess.run([tools.ensure("cosign"), *args], capture_output=True, text=True, env=env, timeout=300)


def verify(published, key, reference: str) -> subprocess.CompletedProcess:
    """`cosign verify` of a reference against a public key."""
    return cosign(published, "verify", "--key", str(key), "--insecure-ignore-tlog", reference)


def sbom_components(path: str) -> dict[str, set[str]]:
    """The SBOM's package names by type (deb, pypi), from their package URLs."""
    found: dict[str, set[str]] = {}
    for component in json.loads(Path(path).read_text()).get("components", []):
        purl = component.get("purl", "")
        if purl.startswith("pkg:"):
            found.setdefault(purl[4:].split("/", 1)[0], set()).add(component["name"].lower())
    return found


def test_the_registry_refuses_anonymous_and_wrong_logins(published):
    image = published.summary(published.previous)["images"]["operator"]
    path = image["reference"].split("/", 1)[1].rsplit(":", 1)[0]
    url = f"https://{published.registry.address}/v2/{path}/manifests/{image['digest']}"
    for headers in ({}, {"Authorization": "Basic cHVsbGVyOndyb25n"}):  # no login; puller:wrong
        request = urllib.request.Request(url, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, context=published.registry.context(), timeout=10)  # noqa: S310
        assert refused.value.code == 401


def test_the_previous_release_runs_from_the_registry_pulled_by_digest_with_the_pull_secret(campus, published):
    adopter, domain = campus
    kube = domain.kube
    prefix = published.prefix
    pods = json.loads(kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    operator = json.loads(kube.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout)["items"]
    for pod in [*pods, *operator]:
        for container in pod["spec"]["containers"]:
            assert container["image"].startswith(prefix + "/") and "@sha256:" in container["image"], container["image"]
    # the kubelet pulled them (nothing was loaded into the node), with the secret: without it the registry says no
    pulled = kube.kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "reason=Pulled", "-o", "json").stdout
    messages = " ".join(e["message"] for e in json.loads(pulled)["items"])
    assert "Successfully pulled image" in messages and prefix in messages, messages[:2000]
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "no-pull-secret", "namespace": OPERATOR_NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": published.image(published.current, "operator"), "command": ["true"]}],
        },
    }
    kube.apply(json.dumps(probe))

    def pull_failure() -> dict | None:
        statuses = kube.get("pod", "no-pull-secret", OPERATOR_NAMESPACE).get("status", {}).get("containerStatuses", [])
        waiting = [s["state"]["waiting"] for s in statuses if "waiting" in s.get("state", {})]
        return next((w for w in waiting if w.get("reason") in ("ErrImagePull", "ImagePullBackOff")), None)

    try:
        waiting = kube.eventually(pull_failure, timeout=120, message="the Pod without a pull secret failing to pull")
        assert "401" in waiting.get("message", "") or "unauthorized" in waiting.get("message", "").lower(), waiting
    finally:
        kube.kubectl("delete", "pod", "no-pull-secret", "-n", OPERATOR_NAMESPACE, "--wait=false", check=False)


def test_every_released_image_and_chart_is_signed_and_each_image_lists_its_packages(published, tmp_path):
    """As the README's install instructions verify: the signatures by the release key, the SBOM attestations."""
    other_key = tmp_path / "other"
    other_key.mkdir()
    subprocess.run(
        [tools.ensure("cosign"), "generate-key-pair"],
        cwd=other_key,
        env={"PATH": "/usr/bin:/bin", "COSIGN_PASSWORD": KEY_PASSWORD},
        check=True,
        capture_output=True,
    )
    # a package of each kind each image must list (the base's Debian packages come with every one)
    expected = {
        "operator": {"deb": "python3", "pypi": "kopf"},
        "portal": {"deb": "postgresql-client", "pypi": "django"},
        "samba": {"deb": "samba-ad-dc", "pypi": "celery"},
        "rabbitmq": {"deb": "rabbitmq-server"},
    }
    for version, release in published.releases.items():
        for name, image in release["images"].items():
            by_tag = image["reference"]
            verified = verify(published, published.public_key, by_tag)
            assert verified.returncode == 0, f"{by_tag}: {verified.stderr}"
            assert image["digest"] in verified.stdout
            forged = verify(published, other_key / "cosign.pub", by_tag)
            assert forged.returncode != 0, f"{by_tag} verified with a key that did not sign it"
            attested = cosign(
                published, "verify-attestation", "--key", str(published.public_key), "--insecure-ignore-tlog",
                "--type", "cyclonedx", by_tag,
            )  # fmt: skip
            assert attested.returncode == 0, f"{by_tag}: {attested.stderr}"
            packages = sbom_components(image["sbom"])
            assert len(packages.get("deb", ())) > 50, (by_tag, {kind: len(names) for kind, names in packages.items()})
            for kind, package in expected[name].items():
                assert package in packages.get(kind, set()), f"{kind} package {package} missing from {by_tag}'s SBOM"
        for name, chart in release["charts"].items():
            verified = verify(published, published.public_key, chart["reference"])
            assert verified.returncode == 0, f"chart {name} {version}: {verified.stderr}"


def test_the_upgrade_keeps_the_domain_serving_and_rolls_only_what_changed(campus, published):
    adopter, domain = campus
    kube = domain.kube
    before_people = [domain.register("old") for _ in range(3)]
    for username in before_people:  # the backup copies one DC: it holds what has replicated to it
        domain.wait_authenticates((0, 1), username)
    upgrade.backup(kube, "campus-before-upgrade")
    before = upgrade.data_path(kube)
    assert {name.rsplit("-", 1)[-1] for name in before} >= {"dc0", "dc1", "broker", "portal"}, before.keys()

    watch = upgrade.upgrade_watched(adopter, domain)
    report = watch.report()
    assert not watch.failures, watch.failures
    assert report["registered_during_upgrade"] >= 3, report
    assert report["not_ready_s"] <= READY_AGAIN_WITHIN_S, report

    after = upgrade.data_path(kube)
    for name, (template, pods) in before.items():
        new_template, new_pods = after[name]
        if new_template == template:  # not changed: not one of its Pods restarted
            assert new_pods == pods, f"{name}'s template did not change, yet its Pods did: {pods} -> {new_pods}"
        else:
            assert set(new_pods) == set(pods) and all(new_pods[p].uid != pods[p].uid for p in pods), name
    for username in [*before_people, *watch.registered]:
        assert domain.logs_in(username), f"{username} cannot sign in after the upgrade"
        domain.wait_authenticates((0, 1), username)
    assert not domain.authenticates(0, before_people[0], GOOD_PASSWORD + "x")


def test_a_backup_of_the_previous_release_restores_with_this_one(campus, deployment):
    _, domain = campus
    kube = domain.kube
    people = list(domain.accounts[:3])  # registered before the backup of the previous release was taken
    # The domain goes, its backups' volume (never the operator's to delete) stays; the domain is made again
    # under its name from that backup, as docs/operations.md's recovery does it.
    kube.kubectl("delete", "es4psdomain", upgrade.NAME, "-n", NAMESPACE, "--wait=true", "--timeout=300s", timeout=330)
    kube.eventually(
        lambda: not [c for c in kube.get("pvc", namespace=NAMESPACE)["items"] if "-dc" in c["metadata"]["name"]],
        timeout=300,
        message="the DCs' volumes deleted with the domain",
    )
    started = time.monotonic()
    restored = upgrade.campus_domain(deployment, replicas=1)
    # 0.1.0 signed no backup: restoring one of its backups is what the upgrade notes say (acceptUnsigned)
    restored["spec"]["directory"]["bootstrap"] = {
        "recovery": {"backup": "campus-before-upgrade", "acceptUnsigned": True}
    }
    kube.apply(json.dumps(restored), namespace=NAMESPACE)
    status = domain.wait_ready(timeout=1200)["status"]
    upgrade.log(f"the backup of the previous release restored, Ready in {time.monotonic() - started:.0f} s")
    assert status.get("directory", {}).get("restored") is True, status
    domain.open_portal()  # a new portal certificate (its Secret went with the domain)
    for username in people:
        domain.wait_authenticates((0,), username, timeout=120)
        assert domain.logs_in(username), f"{username} cannot sign in to the restored portal"
