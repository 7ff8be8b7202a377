"""Child summaries, what to re-apply or prune, and the status derived from the children."""

import dataclasses

from es4ps_operator import naming
from es4ps_operator.builders import build_desired_state
from es4ps_operator.builders.common import desired_hash, with_content_hash
from es4ps_operator.children import ChildSummary, needs_apply, prunable, summarize
from es4ps_operator.status import Findings, compute_status, unready_pods
from es4ps_testkit.domains import make_domain

NOW = "2026-11-26T12:00:00Z"
EARLIER = "2026-11-26T11:00:00Z"


def statefulset_body(name, replicas=1, ready=1, generation=2, observed=2, managers=(), content_hash="abc"):
    return {
        "kind": "StatefulSet",
        "metadata": {
            "name": name,
            "generation": generation,
            "ownerReferences": [{"uid": "0000-uid"}],
            "annotations": {naming.DESIRED_HASH_ANNOTATION: content_hash},
            "managedFields": [
                {"manager": "es4ps-operator", "operation": "Apply"},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
                *managers,
            ],
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready, "updatedReplicas": replicas, "observedGeneration": observed},
    }


def certificate_body(name, ready, content_hash="abc"):
    return {
        "kind": "Certificate",
        "metadata": {"name": name, "annotations": {naming.DESIRED_HASH_ANNOTATION: content_hash}},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "message": "Certificate is up to date" if ready else "Issuing",
                }
            ]
        },
    }


def test_statefulset_is_ready_only_when_its_pods_are_ready_and_up_to_date():
    assert summarize(statefulset_body("a")).ready
    assert not summarize(statefulset_body("a", ready=0)).ready
    assert not summarize(statefulset_body("a", generation=3, observed=2)).ready


def test_certificate_readiness_follows_its_ready_condition():
    assert summarize(certificate_body("c", True)).ready
    pending = summarize(certificate_body("c", False))
    assert not pending.ready and pending.message == "Issuing"
    assert not summarize({"kind": "Certificate", "metadata": {"name": "c"}}).ready


def test_a_child_is_applied_when_missing_outdated_or_changed_by_someone_else():
    manifest = with_content_hash({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}})
    wanted = desired_hash(manifest)
    same = ChildSummary("ConfigMap", "x", wanted, False, (), False, True)
    assert needs_apply(manifest, None)
    assert not needs_apply(manifest, same)
    assert needs_apply(manifest, ChildSummary("ConfigMap", "x", "old", False, (), False, True))
    assert needs_apply(manifest, ChildSummary("ConfigMap", "x", wanted, True, (), False, True))
    assert needs_apply(manifest, ChildSummary("ConfigMap", "x", wanted, False, (), True, True))


def test_a_statefulset_scaled_by_hand_is_applied_again():
    manifest = with_content_hash({"kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"replicas": 1}})
    wanted = desired_hash(manifest)
    as_written = ChildSummary("StatefulSet", "x", wanted, False, (), False, True, replicas=1)
    scaled = ChildSummary("StatefulSet", "x", wanted, False, (), False, True, replicas=0)
    assert not needs_apply(manifest, as_written)
    assert needs_apply(manifest, scaled)


def test_the_hash_ignores_nothing_but_itself():
    first = with_content_hash({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}})
    second = with_content_hash({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "2"}})
    again = with_content_hash({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}})
    key = naming.DESIRED_HASH_ANNOTATION
    assert first["metadata"]["annotations"][key] != second["metadata"]["annotations"][key]
    assert first == again


def test_kubectl_edits_count_as_changes_by_others_but_status_updates_do_not():
    assert not summarize(statefulset_body("a")).changed_by_others
    edited = statefulset_body("a", managers=[{"manager": "kubectl-edit", "operation": "Update"}])
    assert summarize(edited).changed_by_others


def test_only_children_applied_for_this_domain_and_no_longer_wanted_are_pruned():
    old_dc = ChildSummary("StatefulSet", "acme-dc1", "h", False, ("0000-uid",), False, True)
    wanted = ChildSummary("StatefulSet", "acme-dc0", "h", False, ("0000-uid",), False, True)
    generated = ChildSummary("Secret", "acme-task-keys", None, False, ("0000-uid",), False, True)
    foreign = ChildSummary("StatefulSet", "other", "h", False, ("another-uid",), False, True)
    desired = {("StatefulSet", "acme-dc0")}
    assert prunable([old_dc, wanted, generated, foreign], desired, "0000-uid") == [old_dc]


def everything_ready(domain, config):
    desired = build_desired_state(domain, config)
    children = []
    for manifest in desired.manifests():
        name, content_hash = manifest["metadata"]["name"], desired_hash(manifest)
        if manifest["kind"] == "Certificate":
            children.append(summarize(certificate_body(name, True, content_hash)))
        elif manifest["kind"] == "StatefulSet":
            replicas = manifest["spec"]["replicas"]
            children.append(summarize(statefulset_body(name, replicas, replicas, content_hash=content_hash)))
    return desired, children


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_status_is_ready_when_every_component_is(config):
    domain = make_domain(directory={"replicas": 2})
    desired, children = everything_ready(domain, config)
    status = compute_status(domain, desired, children, None, 3, None, NOW)
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 3
    assert status["portalURL"] == "https://accounts.acme.example/"
    assert status["domainControllers"] == "2/2"
    assert {kind: c["status"] for kind, c in conditions(status).items()} == {
        "Ready": "True",
        "CertificatesReady": "True",
        "BrokerReady": "True",
        "DirectoryReady": "True",
        "PortalReady": "True",
        # Not reported by anything here: none counts towards Ready.
        "ReplicationHealthy": "Unknown",
        "BackupsHealthy": "Unknown",
        "MonitoringReady": "Unknown",
    }
    for condition in status["conditions"]:
        assert condition["lastTransitionTime"] == NOW
        assert condition["observedGeneration"] == 3
        assert condition["reason"] and condition["message"]


def test_status_names_what_it_waits_for(minimal, config):
    desired, children = everything_ready(minimal, config)
    children = [c for c in children if c.name != "acme-dc0"]
    children = [
        summarize(certificate_body("acme-broker-tls", False, c.desired_hash)) if c.name == "acme-broker-tls" else c
        for c in children
    ]
    status = compute_status(minimal, desired, children, None, 3, None, NOW)
    found = conditions(status)
    assert status["phase"] == "Progressing"
    assert status["domainControllers"] == "0/1"
    assert found["Ready"]["status"] == "False"
    assert found["Ready"]["message"] == "not ready: CertificatesReady, DirectoryReady"
    assert found["DirectoryReady"]["reason"] == "Creating"
    assert "acme-dc0" in found["DirectoryReady"]["message"]
    assert "acme-broker-tls (Issuing)" in found["CertificatesReady"]["message"]
    assert found["BrokerReady"]["status"] == "True"


def test_transition_times_change_only_with_the_status(minimal, config):
    desired, children = everything_ready(minimal, config)
    before = compute_status(minimal, desired, children, None, 3, None, EARLIER)
    same = compute_status(minimal, desired, children, before, 3, None, NOW)
    assert same == before
    broken = [c for c in children if c.name != "acme-portal"]
    after = conditions(compute_status(minimal, desired, broken, before, 3, None, NOW))
    assert after["PortalReady"]["lastTransitionTime"] == NOW
    assert after["BrokerReady"]["lastTransitionTime"] == EARLIER


def test_apply_errors_and_pausing_show_in_the_phase(config):
    domain = make_domain()
    desired, children = everything_ready(domain, config)
    failed = compute_status(domain, desired, children, {"observedGeneration": 2}, None, "applying X failed", NOW)
    assert failed["phase"] == "Failed"
    assert failed["observedGeneration"] == 2  # the failed generation was not applied
    assert conditions(failed)["Ready"]["reason"] == "ApplyFailed"
    paused = make_domain(paused=True)
    status = compute_status(paused, desired, children, {"observedGeneration": 2}, None, None, NOW)
    assert status["phase"] == "Paused"
    assert status["observedGeneration"] == 2


def test_children_not_yet_showing_the_new_spec_are_not_counted_ready(minimal, config):
    desired, children = everything_ready(minimal, config)
    outdated = [dataclasses.replace(c, desired_hash="old") if c.name == "acme-portal" else c for c in children]
    status = compute_status(minimal, desired, outdated, None, 3, None, NOW)
    portal = conditions(status)["PortalReady"]
    assert portal["status"] == "False"
    assert portal["message"] == "0 of 1 portal StatefulSets ready; waiting for acme-portal (being updated)"
    assert status["phase"] == "Progressing"


def test_a_domain_without_a_mail_server_is_not_ready_and_says_why(config):
    domain = make_domain(portal={"host": "accounts.acme.example"})
    desired, children = everything_ready(domain, config)
    status = compute_status(domain, desired, children, None, 3, None, NOW)
    portal = conditions(status)["PortalReady"]
    assert (portal["status"], portal["reason"]) == ("False", "MailServerMissing")
    assert portal["message"].startswith("spec.portal.smtp is not set")
    assert conditions(status)["Ready"]["message"] == "not ready: PortalReady"
    assert status["phase"] == "Progressing"
    # The StatefulSet's own state is still told while it is not ready either.
    waiting = compute_status(domain, desired, [c for c in children if c.name != "acme-portal"], None, 3, None, NOW)
    assert "waiting for acme-portal" in conditions(waiting)["PortalReady"]["message"]


def pod_body(name, statefulset, node, ready):
    """A Pod as the API returns it: its StatefulSet, the node it was put on, its Ready condition."""
    return {
        "metadata": {"name": name, "ownerReferences": [{"kind": "StatefulSet", "name": statefulset}]},
        "spec": {"nodeName": node} if node else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_the_members_on_a_lost_node_are_named_with_it(config):
    """node3 stopped answering: the DC and the broker member it ran are named, the others are not."""
    domain = make_domain(directory={"replicas": 2}, broker={"replicas": 3})
    desired, children = everything_ready(domain, config)
    fewer = {"acme-dc1": (1, 0), "acme-broker": (3, 2)}
    children = [
        summarize(statefulset_body(c.name, *fewer[c.name], content_hash=c.desired_hash)) if c.name in fewer else c
        for c in children
    ]
    pods = [
        pod_body("acme-dc0-0", "acme-dc0", "node1", True),
        pod_body("acme-dc1-0", "acme-dc1", "node3", False),
        pod_body("acme-broker-0", "acme-broker", "node1", True),
        pod_body("acme-broker-2", "acme-broker", "node3", False),
        pod_body("acme-portal-1", "acme-portal", None, False),  # not scheduled yet: its StatefulSet is ready
    ]
    assert unready_pods(pods) == {
        "acme-dc1": ("acme-dc1-0 on node3",),
        "acme-broker": ("acme-broker-2 on node3",),
        "acme-portal": ("acme-portal-1 not scheduled",),
    }
    status = compute_status(domain, desired, children, None, 3, None, NOW, Findings(unready_pods=unready_pods(pods)))
    found = conditions(status)
    assert found["DirectoryReady"]["message"] == (
        "1 of 2 domain controllers ready; waiting for acme-dc1 (0/1 Pods ready and up to date; "
        "not ready: acme-dc1-0 on node3)"
    )
    assert found["BrokerReady"]["message"].endswith(
        "(2/3 Pods ready and up to date; not ready: acme-broker-2 on node3)"
    )
    assert found["PortalReady"]["status"] == "True"  # what its StatefulSet counts decides, a name only adds
