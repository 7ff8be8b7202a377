"""A spec default is written once, in the CRD: changed there, it changes what the API server stores, what the
operator reads and passes on, and what the portal runs with (no reader has a default of its own to fall back on).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from es4ps_contract.passwords import PasswordPolicy
from es4ps_devtools.paths import ROOT
from es4ps_localcluster.paths import VENV_BIN
from es4ps_localcluster.processes import wait_until
from es4ps_operator.builders.portal import portal_spec_environment
from es4ps_operator.domain import Domain
from es4ps_testkit.domains import CRD, MINIMAL_SPEC
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.releases import previous_release

# A copy of the CRD under a group of its own: the shared ES4PSDomain CRD of the session stays as it is.
GROUP = "defaults.es4ps.test"
# What the portal's settings made of its environment (Django's own reading of it, in a process of its own).
SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({'register': s.RATE_LIMITS['register'],"
    " 'ttl': s.TOKEN_TTL_HOURS, 'min_length': s.PASSWORD_POLICY.min_length, 'language': s.LANGUAGE_CODE}))"
)


def previous_release_reads(policy: str, directory) -> subprocess.CompletedProcess:
    """The previous release's contract (from git) reading a password policy, as its portal and DCs do."""
    _version, commit = previous_release()
    archive = directory / "contract.tar"
    git = ["git", "-C", str(ROOT), "archive", "-o", str(archive), commit, "contract/es4ps_contract"]
    subprocess.run(git, check=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(directory)], check=True)
    read = "import sys; from es4ps_contract.passwords import PasswordPolicy; PasswordPolicy.from_json(sys.argv[1])"
    env = {"PYTHONPATH": str(directory / "contract"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", read, policy], env=env, capture_output=True, text=True, timeout=60)


def crd_with_other_defaults() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{GROUP}"
    crd["spec"]["group"] = GROUP
    del crd["spec"]["names"]["shortNames"], crd["spec"]["names"]["categories"]  # the session's CRD has them
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    portal, directory = spec["portal"]["properties"], spec["directory"]["properties"]
    per_address = portal["rateLimits"]["properties"]["register"]["properties"]["perAddress"]["properties"]
    per_address["requests"]["default"] = 611
    portal["registration"]["properties"]["linkValidityHours"]["default"] = 31
    portal["defaultLanguage"]["default"] = "es"
    directory["passwordPolicy"]["properties"]["minLength"]["default"] = 12
    return crd


@pytest.mark.cluster
def test_a_default_changed_in_the_crd_reaches_the_operator_and_the_portal(cluster, namespace, tmp_path):
    crd = crd_with_other_defaults()
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd))
    try:
        established = '{.status.conditions[?(@.type=="Established")].status}'
        wait_until(
            lambda: (
                cluster.kubectl(
                    "get", "crd", crd["metadata"]["name"], "-o", f"jsonpath={established}", check=False
                ).stdout
                == "True"
            ),
            60,
            "the copy of the CRD established",
        )
        domain = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "ES4PSDomain",
            "metadata": {"name": "acme", "namespace": namespace},
            "spec": MINIMAL_SPEC,
        }
        cluster.kubectl("create", "-f", "-", input=json.dumps(domain))
        stored = json.loads(
            cluster.kubectl("get", "-n", namespace, f"es4psdomains.{GROUP}", "acme", "-o", "json").stdout
        )
    finally:
        cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", check=False)

    # The API server filled the new defaults in; the operator reads them and passes every value on.
    read = Domain.from_body(stored)
    assert read.portal.rate_limits["register"]["perAddress"]["requests"] == 611
    assert read.portal.link_validity_hours == 31
    assert PasswordPolicy.from_json(read.directory.password_policy).min_length == 12
    # An operator of the previous release, still running while this CRD is upgraded, passes the stored policy
    # as it is to its portal and DCs, which read it with their release's contract: no setting it does not know.
    previous = previous_release_reads(read.directory.password_policy, tmp_path)
    assert previous.returncode == 0, previous.stderr
    variables = {variable["name"]: variable["value"] for variable in portal_spec_environment(read)}

    # The portal, started with exactly those variables, runs with them.
    portal = LivePortal(tmp_path, {"ES4PS_REALM": "ES4PS.TEST", "ES4PS_BROKER_URL": "amqps://127.0.0.1:1/es4ps"})
    shown = subprocess.run(
        [str(VENV_BIN / "es4ps-portal"), "manage", "shell", "-c", SHOW_SETTINGS],
        env={**portal.env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    settings = json.loads(shown.stdout.strip().splitlines()[-1])
    assert settings == {
        "register": {"ip": [611, 3600], "account": [5, 3600]},
        "ttl": 31,
        "min_length": 12,
        "language": "es",
    }


@pytest.mark.parametrize("variable", ["ES4PS_RATE_LIMITS", "ES4PS_PASSWORD_POLICY", "ES4PS_TOKEN_TTL_HOURS"])
def test_the_portal_refuses_to_start_without_a_spec_value(tmp_path, variable):
    """No default to fall back on: a variable the operator did not pass stops the portal with its name."""
    portal = LivePortal(tmp_path, {"ES4PS_REALM": "ES4PS.TEST", "ES4PS_BROKER_URL": "amqps://127.0.0.1:1/es4ps"})
    env = {name: value for name, value in portal.env.items() if name != variable}
    result = subprocess.run(
        [str(VENV_BIN / "es4ps-portal"), "manage", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert f"{variable} is not set" in result.stderr
