"""One reconciliation against a recording stand-in for the API (the real API is in tests/operator)."""

import asyncio
import dataclasses
import json

from es4ps_operator.children import WATCHED_KINDS, summarize
from es4ps_operator.domain import Domain
from es4ps_operator.health import Replication, ask_now
from es4ps_operator.kube import KubeError
from es4ps_operator.reconcile import reconcile
from es4ps_operator.status import Check
from es4ps_testkit.domains import MINIMAL_SPEC, domain_body


class RecordingApi:
    """Remembers what was written, like an API server would, and can fail on one kind."""

    def __init__(self, fail_kind=None, monitoring_served=True):
        self.monitoring_served = monitoring_served
        self.objects = {}
        self.created_secrets = {}
        self.deleted = []
        self.statuses = []
        self.owner_updates = []
        self.fail_kind = fail_kind
        self.limit_ranges = []
        self.pods = []

    async def apply(self, manifest):
        if manifest["kind"] == self.fail_kind:
            raise KubeError(f"applying {manifest['kind']} {manifest['metadata']['name']} failed: 403 Forbidden")
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest

    async def create_once(self, manifest):
        name = manifest["metadata"]["name"]
        if name in self.created_secrets:
            return False
        self.created_secrets[name] = manifest
        return True

    async def claims_being_deleted(self, namespace, names):
        return []

    async def list_limit_ranges(self, namespace):
        return self.limit_ranges

    async def domain_pods(self, domain):
        return self.pods

    async def set_owner_references(self, name, namespace, owner_references):
        self.owner_updates.append((name, owner_references))

    async def delete(self, api_version, kind, name, namespace):
        self.deleted.append((kind, name))

    async def patch_domain_status(self, namespace, name, status):
        self.statuses.append(status)

    async def list_monitoring(self, domain):
        if not self.monitoring_served:
            return None
        kinds = ("PodMonitor", "PrometheusRule")
        return [m for (kind, _), m in self.objects.items() if kind in kinds and (kind, _) not in self.deleted]

    def observed(self):
        """Summaries of everything written, as the operator's watches would report them (watched kinds only)."""
        children = [summarize(m) for m in self.objects.values() if m["kind"] in WATCHED_KINDS]
        children += [summarize(m) for m in self.created_secrets.values()]
        return children


def run(body, children, api, config, replication=None):
    return asyncio.run(reconcile(body, children, api, config, replication=replication))


def test_first_reconciliation_creates_everything_and_reports_it(config):
    api = RecordingApi()
    result = run(domain_body(MINIMAL_SPEC), [], api, config)
    assert result.error is None
    assert len(api.objects) == 23 and len(result.created) == 23
    assert sorted(api.created_secrets) == [
        "acme-dc0-result-key",
        "acme-portal-secret-key",
        "acme-samba-admin",
        "acme-task-keys",
        "acme-worker-credentials",
    ]
    assert result.generated_secrets == sorted(api.created_secrets, key=list(api.created_secrets).index)
    assert [status["phase"] for status in api.statuses] == ["Progressing"]
    assert {reason for _, reason, _ in result.events} == {"SecretsGenerated", "Created"}


def test_secret_values_never_reach_events_or_status(config):
    api = RecordingApi()
    result = run(domain_body(MINIMAL_SPEC), [], api, config)
    published = json.dumps(result.events) + json.dumps(api.statuses)
    for secret in api.created_secrets.values():
        for value in secret["stringData"].values():
            assert value not in published


def test_a_second_reconciliation_with_nothing_changed_writes_nothing(config):
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC)
    body["status"] = run(body, [], api, config).status
    # The children now exist (not ready yet): the status says so once.
    body["status"] = run(body, api.observed(), api, config).status
    writes = (dict(api.objects), dict(api.created_secrets), list(api.statuses))
    third = run(body, api.observed(), api, config)
    assert (api.objects, api.created_secrets, api.statuses) == writes
    assert third.created == third.updated == third.restored == [] and third.events == []


def test_a_changed_spec_is_applied_to_the_children_it_touches(config):
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC)
    run(body, [], api, config)
    body["spec"]["portal"]["replicas"] = 2
    body["spec"]["portal"]["databaseURLSecretRef"] = {"name": "db", "key": "url"}
    body["metadata"]["generation"] = 4
    result = run(body, api.observed(), api, config)
    assert result.updated == ["StatefulSet/acme-portal"]
    assert api.objects[("StatefulSet", "acme-portal")]["spec"]["replicas"] == 2
    assert api.statuses[-1]["observedGeneration"] == 4


def finish_job(api, name, outcome="Complete"):
    """The Job controller's word on a Job: it succeeded (Complete) or failed."""
    job = api.objects[("Job", name)]
    job["status"] = {"conditions": [{"type": outcome, "status": "True", "message": "samba-tool said no"}]}


def test_a_dc_leaves_the_domain_handing_over_first_then_removed_then_its_jobs_go(config):
    api = RecordingApi()
    run(domain_body(MINIMAL_SPEC | {"directory": {"replicas": 2}}), [], api, config)
    scaled_down = domain_body(MINIMAL_SPEC)

    # 1. While dc1 still runs, it hands its roles and its last changes over to dc0.
    result = run(scaled_down, api.observed(), api, config)
    assert "Job/acme-dc1-leave" in result.created and api.deleted == []
    leave = api.objects[("Job", "acme-dc1-leave")]["spec"]["template"]["spec"]["containers"][0]
    assert leave["command"] == ["es4ps-samba-dc", "leave"]
    assert (
        "dc1 hands its roles"
        in next(c for c in result.status["conditions"] if c["type"] == "DirectoryReady")["message"]
    )
    assert run(scaled_down, api.observed(), api, config).created == []  # waiting: nothing twice

    # 2. Handed over: its StatefulSet (and its Services, certificates) go.
    finish_job(api, "acme-dc1-leave")
    result = run(scaled_down, api.observed(), api, config)
    assert ("StatefulSet", "acme-dc1") in api.deleted and ("Certificate", "acme-dc1-worker-tls") in api.deleted
    for gone in api.deleted:
        api.objects.pop(gone, None)

    # 3. Gone: the domain forgets it.
    result = run(scaled_down, api.observed(), api, config)
    assert "Job/acme-dc1-remove" in result.created
    remove = api.objects[("Job", "acme-dc1-remove")]["spec"]["template"]["spec"]
    assert remove["containers"][0]["command"] == ["es4ps-samba-dc", "remove"]
    # Under Retain its volume stays, and is marked so a DC started on it joins afresh.
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-acme-dc1-0"}} in remove["volumes"]

    # 4. Done: both Jobs go, and nothing more happens.
    finish_job(api, "acme-dc1-remove")
    result = run(scaled_down, api.observed(), api, config)
    assert {"Job/acme-dc1-leave", "Job/acme-dc1-remove"} <= set(result.pruned)


def test_a_failed_hand_over_keeps_the_dc_and_says_why(config):
    api = RecordingApi()
    run(domain_body(MINIMAL_SPEC | {"directory": {"replicas": 2}}), [], api, config)
    run(domain_body(MINIMAL_SPEC), api.observed(), api, config)
    finish_job(api, "acme-dc1-leave", "Failed")
    result = run(domain_body(MINIMAL_SPEC), api.observed(), api, config)
    assert ("StatefulSet", "acme-dc1") not in api.deleted
    directory = next(c for c in result.status["conditions"] if c["type"] == "DirectoryReady")
    assert (directory["status"], directory["reason"]) == ("False", "StepFailed")
    assert "dc1 could not hand its roles and changes over: samba-tool said no" in directory["message"]


def test_a_paused_domain_is_not_touched_but_its_status_is_kept(config):
    api = RecordingApi()
    result = run(domain_body(MINIMAL_SPEC | {"paused": True}), [], api, config)
    assert api.objects == {} and api.created_secrets == {}
    assert result.status["phase"] == "Paused"
    assert ("Normal", "Paused", "spec.paused is true: the operator changes nothing until it is false") in result.events


def test_an_api_failure_is_reported_in_status_and_events(config):
    api = RecordingApi(fail_kind="NetworkPolicy")
    result = run(domain_body(MINIMAL_SPEC), [], api, config)
    assert result.error == "applying NetworkPolicy acme-broker failed: 403 Forbidden"
    assert result.status["phase"] == "Failed"
    assert ("Warning", "ApplyFailed", result.error) in result.events


def test_a_domain_asking_more_than_a_limit_range_allows_gets_a_condition_and_no_workload(config):
    api = RecordingApi()
    api.limit_ranges = [
        {"metadata": {"name": "small"}, "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}}
    ]
    body = domain_body(MINIMAL_SPEC | {"directory": {"resources": {"limits": {"memory": "4Gi"}}}})
    result = run(body, [], api, config)
    assert not [key for key in api.objects if key[0] == "StatefulSet"]
    [ready] = [c for c in result.status["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "container dc asks for memory 4Gi, above the maximum 1Gi of the LimitRange small" in ready["message"]
    assert "change spec.directory.resources or the LimitRange" in ready["message"]
    # Lowered within the range, the domain is written.
    body = domain_body(MINIMAL_SPEC | {"directory": {"resources": {"limits": {"memory": "900Mi"}}}})
    assert run(body, api.observed(), api, config).error is None
    assert ("StatefulSet", "acme-dc0") in api.objects


def test_generated_secrets_follow_the_deletion_policy(config):
    api = RecordingApi()
    run(domain_body(MINIMAL_SPEC), [], api, config)
    run(domain_body(MINIMAL_SPEC | {"deletionPolicy": "Delete"}), api.observed(), api, config)
    assert {name for name, refs in api.owner_updates if refs and refs[0]["uid"] == "0000-uid"} == {
        "acme-samba-admin",
        "acme-portal-secret-key",
        "acme-task-keys",
        "acme-worker-credentials",
        "acme-dc0-result-key",
    }


def test_a_domain_naming_an_image_the_operator_does_not_allow_gets_nothing_and_says_why(config):
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC | {"directory": {"image": "evil.example/samba:1"}})
    result = run(body, [], api, config)

    assert api.objects == {} and api.created_secrets == {}
    assert "spec.directory.image" in result.error and "not allowed" in result.error
    [status] = api.statuses
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["status"], ready["reason"]) == ("Failed", "False", "ApplyFailed")


def test_pods_are_asked_for_only_while_a_statefulset_lacks_ready_pods(config):
    """An idle, healthy domain costs no request; one whose broker lost a member names it."""
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC)
    run(body, [], api, config)
    ready = [
        summarize({**m, "status": {"readyReplicas": m["spec"]["replicas"], "updatedReplicas": m["spec"]["replicas"]}})
        if m["kind"] == "StatefulSet"
        else summarize(m)
        for m in [*api.objects.values(), *api.created_secrets.values()]
        if m["kind"] in WATCHED_KINDS
    ]
    api.pods = None  # asking would fail the test: the fake's answer is not a list
    run(body, ready, api, config)

    broker = next(c for c in ready if c.key == ("StatefulSet", "acme-broker"))
    short = [dataclasses.replace(broker, ready_replicas=0, ready=False) if c is broker else c for c in ready]
    api.pods = [
        {
            "metadata": {"name": "acme-broker-0", "ownerReferences": [{"kind": "StatefulSet", "name": "acme-broker"}]},
            "spec": {"nodeName": "node2"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        }
    ]
    status = run(body, short, api, config).status
    broker_ready = next(c for c in status["conditions"] if c["type"] == "BrokerReady")
    assert "not ready: acme-broker-0 on node2" in broker_ready["message"]


def settle(api, *statefulsets):
    """The StatefulSet controller's word: every Pod of each one runs its current template and is ready."""
    for name in statefulsets:
        sts = api.objects[("StatefulSet", name)]
        sts["metadata"]["generation"] = sts["metadata"].get("generation", 0) + 1
        replicas = sts["spec"].get("replicas", 1)
        sts["status"] = {
            "observedGeneration": sts["metadata"]["generation"],
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        }


def images_of(api, name):
    return {c["image"] for c in api.objects[("StatefulSet", name)]["spec"]["template"]["spec"]["containers"]}


def test_a_new_release_reaches_the_dcs_workers_before_the_portal_that_writes_their_tasks(config):
    """An older worker refuses a newer portal's task fields: the portal's new image waits for every DC's."""
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC | {"directory": {"replicas": 2}})
    run(body, [], api, config)
    settle(api, "acme-dc0", "acme-dc1", "acme-portal", "acme-broker")
    new = dataclasses.replace(
        config, images=dataclasses.replace(config.images, samba="es4ps/samba:new", portal="es4ps/portal:new")
    )
    # With the new release, the DCs' template changes beyond the image (here a node selector).
    body["spec"]["directory"]["nodeSelector"] = {"pool": "dcs"}
    old_dc0 = json.dumps(api.objects[("StatefulSet", "acme-dc0")]["spec"], sort_keys=True)

    # The dbcheck first: no DC and not the portal changes.
    result = run(body, api.observed(), api, new)
    assert images_of(api, "acme-portal") == {"es4ps/portal:test"} and "StatefulSet/acme-portal" not in result.updated
    assert not {"StatefulSet/acme-dc0", "StatefulSet/acme-dc1"} & set(result.updated), result.updated
    directory = next(c for c in result.status["conditions"] if c["type"] == "DirectoryReady")["message"]
    assert "portal's new image follows" in directory
    portal_ready = next(c for c in result.status["conditions"] if c["type"] == "PortalReady")
    assert portal_ready["status"] == "True", portal_ready  # the portal held on purpose still serves
    check = next(name for kind, name in api.objects if kind == "Job" and "dbcheck" in name)
    finish_job(api, check)

    # dc1 rolls; the portal waits while it starts, and while dc0 rolls and starts.
    run(body, api.observed(), api, new)
    assert images_of(api, "acme-dc1") >= {"es4ps/samba:new"} and images_of(api, "acme-portal") == {"es4ps/portal:test"}
    # dc0 waits for its turn with the template it had, not its old image in the new template
    assert json.dumps(api.objects[("StatefulSet", "acme-dc0")]["spec"], sort_keys=True) == old_dc0
    dc1 = api.objects[("StatefulSet", "acme-dc1")]["spec"]["template"]["spec"]
    assert dc1["nodeSelector"]["pool"] == "dcs"
    settle(api, "acme-dc1")
    run(body, api.observed(), api, new)
    assert images_of(api, "acme-dc0") >= {"es4ps/samba:new"} and images_of(api, "acme-portal") == {"es4ps/portal:test"}
    api.objects[("StatefulSet", "acme-dc0")]["status"] = {"readyReplicas": 0}  # dc0's new Pod is starting
    result = run(body, api.observed(), api, new)
    assert "StatefulSet/acme-portal" not in result.updated

    # Every DC runs the new image and is ready: the portal follows.
    settle(api, "acme-dc0")
    result = run(body, api.observed(), api, new)
    assert "StatefulSet/acme-portal" in result.updated and images_of(api, "acme-portal") == {"es4ps/portal:new"}


def test_a_portal_change_of_its_own_is_not_held_by_a_dc_that_is_down(config):
    """Only a new portal image waits for the DCs: a changed setting reaches the portal with a DC down."""
    api = RecordingApi()
    body = domain_body(MINIMAL_SPEC | {"directory": {"replicas": 2}})
    run(body, [], api, config)
    settle(api, "acme-dc0", "acme-portal", "acme-broker")  # dc1 never became ready
    body["spec"]["portal"]["replicas"] = 2
    result = run(body, api.observed(), api, config)
    assert "StatefulSet/acme-portal" in result.updated


def test_a_replication_check_of_other_dcs_says_nothing_of_the_domain(config):
    """directory.replicas raised to 3 after the DCs were last asked: the check of two is not the domain's word
    (it said "True: all 2 domain controllers replicate" under the generation of three); the next check is asked at
    once, and speaks once it asked all three."""
    body = domain_body(MINIMAL_SPEC | {"directory": {"replicas": 3}})
    two = Replication(("dc0", "dc1"), Check(True, "Replicating", "all 2 domain controllers replicate without failures"))

    def replication_healthy(replication):
        status = run(body, [], RecordingApi(), config, replication).status
        return next(c for c in status["conditions"] if c["type"] == "ReplicationHealthy")

    stale = replication_healthy(two)
    assert (stale["status"], stale["reason"]) == ("Unknown", "NotReported"), stale
    assert "dc0, dc1, dc2" in stale["message"], stale
    assert ask_now(Domain.from_body(body), two, seconds_since_asked=1.0)

    three = Replication(("dc0", "dc1", "dc2"), Check(True, "Replicating", "all 3 domain controllers replicate"))
    assert replication_healthy(three)["status"] == "True"
    assert not ask_now(Domain.from_body(body), three, seconds_since_asked=1.0)
    assert ask_now(Domain.from_body(body), three, seconds_since_asked=61.0)
