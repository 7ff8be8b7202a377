"""A domain joining an existing Samba AD domain (spec.directory.bootstrap.join), pure decisions and builders."""

from __future__ import annotations

import json

from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.secrets import build_generated_secrets
from es4ps_operator.children import summarize
from es4ps_operator.health import has_partners, replication_check
from es4ps_operator.joining import check_result, needs_result, plan_join
from es4ps_operator.kube import StepEnd
from es4ps_operator.status import JOINED, Findings, compute_status
from es4ps_testkit.domains import make_domain

JOIN = {"realm": "AD.ACME.EXAMPLE", "server": "es4alldc.ad.acme.example", "credentialsSecretRef": {"name": "old-admin"}}
CHECK_JOB = "acme-join-check"


def joining():
    return make_domain(directory={"bootstrap": {"join": JOIN}})


def job(name, outcome=None):
    conditions = [{"type": outcome, "status": "True", "message": "BackoffLimitExceeded"}] if outcome else []
    return summarize({"kind": "Job", "metadata": {"name": name}, "status": {"conditions": conditions}})


def dc0(ready):
    return summarize(
        {
            "kind": "StatefulSet",
            "metadata": {"name": "acme-dc0", "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "dc", "image": "x"}]}}},
            "status": {"observedGeneration": 1, "readyReplicas": int(ready), "updatedReplicas": 1},
        }
    )


def observed(*children):
    return {child.key: child for child in children}


def env_of(container):
    return {item["name"]: item.get("value") for item in container["env"]}


def containers(manifests, kind, name):
    [manifest] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return {c["name"]: c for c in manifest["spec"]["template"]["spec"]["containers"]}, manifest


def test_a_domain_that_joins_nothing_has_no_join_plan_and_no_joined_condition(config):
    domain = make_domain()
    plan = plan_join(domain, config, {}, {}, {})
    assert plan.workloads and plan.jobs == () and plan.joined is None
    assert naming.dc_hostname(domain, 0) == "dc0"


def test_nothing_but_the_check_runs_until_it_says_the_join_may_go_ahead(config):
    domain = joining()
    plan = plan_join(domain, config, {}, {}, {})
    assert not plan.workloads
    assert plan.check.reason == "CheckingJoin" and plan.joined == plan.check
    [check] = plan.jobs
    assert check["metadata"]["name"] == CHECK_JOB
    assert check["spec"]["backoffLimit"] == 0  # a refused password is not tried again on its own
    pod = check["spec"]["template"]["spec"]
    variables = env_of(pod["containers"][0])
    assert pod["containers"][0]["command"] == ["es4ps-samba-dc", "join-check"]
    assert variables["ES4PS_JOIN_SERVER"] == JOIN["server"]
    assert variables["ES4PS_DC_NAME_TEMPLATE"] == "dc{index}-0000"
    assert variables["ES4PS_REALM"] == "AD.ACME.EXAMPLE"
    # The password comes from the Secret the user named, as a file; never a value in the manifest.
    [admin] = [v for v in pod["volumes"] if v["name"] == "admin"]
    assert admin["secret"]["secretName"] == "old-admin"
    assert admin["secret"]["items"] == [{"key": "password", "path": "password"}]
    desired = build_desired_state(domain, config, {0: "x"}, list(plan.jobs), workloads=plan.workloads)
    statefulsets = {m["metadata"]["name"] for m in desired.manifests() if m["kind"] == "StatefulSet"}
    assert statefulsets == {"acme-broker"}  # no DC, no portal


def test_a_refused_check_names_its_reason_keeps_its_job_and_creates_nothing(config):
    domain = joining()
    seen = observed(job(CHECK_JOB, "Failed"))
    assert needs_result(domain, {}, seen)
    written = {"reason": "JoinCredentialsRefused", "message": "10.0.0.5 refused the password of ACME\\Administrator"}
    ends = [StepEnd("join-check", 1, json.dumps(written) + "\n")]
    plan = plan_join(domain, config, {}, seen, check_result(ends))
    assert not plan.workloads
    assert plan.check.reason == "JoinCredentialsRefused"
    assert "refused the password" in plan.check.message and f"delete the Job {CHECK_JOB}" in plan.check.message
    assert [j["metadata"]["name"] for j in plan.jobs] == [CHECK_JOB]  # kept, so not run again
    # A check that wrote nothing readable (killed, evicted) still says why, from the Job.
    unread = plan_join(domain, config, {}, seen, check_result([StepEnd("join-check", 137, "")]))
    assert unread.check.reason == "JoinCheckFailed" and "BackoffLimitExceeded" in unread.check.message


def test_once_the_check_passed_dc0_joins_the_existing_server_and_keeps_its_settings(config):
    domain = joining()
    written = {"reason": "Joinable", "message": "ES4ALLDC serves AD.ACME.EXAMPLE (ACME)"}
    plan = plan_join(domain, config, {}, observed(job(CHECK_JOB, "Complete")), written)
    assert plan.workloads and plan.check is None
    assert plan.joined.reason == "Joining" and "ES4ALLDC serves" in plan.joined.message
    desired = build_desired_state(domain, config, {0: "x", 1: "x"}, list(plan.jobs), workloads=plan.workloads)
    manifests = desired.manifests()
    dc, statefulset = containers(manifests, "StatefulSet", "acme-dc0")
    variables = env_of(dc["dc"])
    assert variables["ES4PS_DC_ROLE"] == "join"
    assert variables["ES4PS_JOIN_SERVER"] == JOIN["server"]
    assert variables["ES4PS_DC_HOSTNAME"] == "dc0-0000"  # never a name the existing domain may have
    assert variables["ES4PS_DOMAIN_SETTINGS"] == "when-only-ours"
    [admin] = [v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "admin"]
    assert admin["secret"]["secretName"] == "old-admin"
    dc1, _ = containers(manifests, "StatefulSet", "acme-dc1")
    assert env_of(dc1["dc"])["ES4PS_JOIN_SERVER"].startswith("acme-dc0.acme.svc.")  # the others join dc0
    assert env_of(dc1["dc"])["ES4PS_DOMAIN_SETTINGS"] == "when-only-ours"
    # The existing domain's Administrator password is the domain's: none is generated.
    assert naming.admin_password_secret(domain) not in {s.name for s in build_generated_secrets(domain, [0, 1])}
    assert naming.admin_password_secret(make_domain()) in {s.name for s in build_generated_secrets(make_domain())}


def test_joined_once_dc0_serves_recorded_so_the_check_never_runs_again(config):
    domain = joining()
    joining_now = plan_join(domain, config, {}, observed(job(CHECK_JOB, "Complete"), dc0(False)), {})
    assert joining_now.joined.reason == "Joining" and joining_now.jobs == ()
    assert joining_now.finished_jobs == (CHECK_JOB,)
    done = plan_join(domain, config, {}, observed(dc0(True)), {})
    assert done.joined.ready and done.state == {"joined": JOIN["server"]}
    later = {"directory": {"joined": JOIN["server"]}}
    assert not needs_result(domain, later, observed(job(CHECK_JOB, "Complete")))
    again = plan_join(domain, config, later, {}, {})
    assert again.workloads and again.jobs == () and again.joined.ready


def test_the_joined_condition_appears_only_in_a_joining_domain(config):
    domain = joining()
    plan = plan_join(domain, config, {}, {}, {})
    desired = build_desired_state(domain, config, {}, list(plan.jobs), workloads=False)
    findings = Findings(directory=plan.check, joined=plan.joined)
    status = compute_status(domain, desired, [], None, 3, None, "2026-12-07T00:00:00Z", findings)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions[JOINED]["status"] == "False" and conditions[JOINED]["reason"] == "CheckingJoin"
    assert conditions["DirectoryReady"]["reason"] == "CheckingJoin"
    plain = make_domain()
    status = compute_status(plain, build_desired_state(plain, config, {}, []), [], None, 3, None, "now")
    assert JOINED not in {c["type"] for c in status["conditions"]}


def test_a_joined_domain_of_one_dc_reports_its_replication_with_the_existing_dcs():
    # dc0 of a joined domain replicates with the old DCs: its answers count, unlike a new domain's single DC.
    domain = make_domain(directory={"replicas": 1, "bootstrap": {"join": JOIN}})
    failing = {"failing": [{"direction": "inbound", "partner": "ES4ALLDC", "failures": 3, "message": "WERR_BADFILE"}]}
    refused = replication_check(domain, {"dc0-1a2b": {"healthy": False, **failing}})
    assert (refused.ready, refused.reason) == (False, "ReplicationFailing")
    assert "dc0-1a2b inbound ES4ALLDC: 3 failures, WERR_BADFILE" in refused.message
    assert replication_check(domain, {"dc0-1a2b": None}).ready is None
    assert replication_check(domain, {"dc0-1a2b": {"healthy": True, "failing": []}}).ready is True
    assert has_partners(domain)


def test_a_new_domain_of_one_dc_has_nothing_to_replicate():
    domain = make_domain(directory={"replicas": 1})
    assert not has_partners(domain)
    assert replication_check(domain, {}).reason == "SingleDomainController"


def test_every_pod_of_a_joined_domain_reads_the_administrator_password_from_the_join_secret(config):
    # A joined domain has no generated Administrator password: a Pod mounting it would never start.
    files = {"storage": {"size": "10Gi"}, "homes": {"quota": "1Gi"}}
    domain = make_domain(directory={"replicas": 2, "bootstrap": {"join": JOIN}}, fileServices=files)
    desired = build_desired_state(domain, config, {0: "x", 1: "x"}, [], workloads=True)
    generated = {secret.name for secret in desired.generated_secrets}
    assert "acme-samba-admin" not in generated
    admin_volumes = {}
    for manifest in desired.manifests():
        template = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for volume in template.get("volumes", []):
            if volume["name"] == "admin":
                admin_volumes[manifest["metadata"]["name"]] = volume["secret"]["secretName"]
    assert {"acme-dc0", "acme-dc1", "acme-files"} <= admin_volumes.keys()
    assert set(admin_volumes.values()) == {"old-admin"}, admin_volumes
