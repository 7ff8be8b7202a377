"""The portal's unavailability while a running domain is upgraded from the previous release to this one. JSON.

The scenario of tests/e2e/test_release_upgrade.py (es4ps_testkit.upgrade), on
the real node: both releases are published to the local registry (the code of
`make release`), Campus installs the previous one from it as the README says
and gets a domain with two DCs Ready, then `helm upgrade`s both charts to this
release with the same values file, as a GitOps pipeline does, while the
portal's registration page is fetched through the ingress controller every
quarter second and a person registers every 15 s.

`upgrade_unavailable_s`: how long the page did not answer 200 during the
upgrade (the sum of every stretch from a failed fetch to the next good one);
`not_ready_s`: how long the domain's Ready condition was not True;
`upgrade_s`: from the first `helm upgrade` to every StatefulSet rolled out
and Ready; `run_s`: one run, from Campus's install to its removal. Medians
over `--runs`; `per_run` keeps each run's figures, `total_s` the whole
benchmark's wall time.

What runs can share is made once: the cluster, the deployment beside Campus
(ingress controller, mail catcher), the registry and both releases in it
(both published before the first run, so no run waits on a push). Each run
repeats only what it measures: Campus installs the previous release (the
node's copies of the registry's images are dropped first, so the kubelet
pulls them as on the first run), its domain gets Ready, the upgrade is
watched, then the domain, both Helm releases and the namespaces are removed.
About 4-5 min a run.

    flock /tmp/es4ps-realnode.lock .venv/bin/python bench/upgrade.py [--runs 3]

It stops what it started, also when stopped with SIGTERM or Ctrl-C: the
registry, the mail catcher, and the cluster unless one already ran healthy
in real-node mode before (that one is left as found).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from es4ps_devtools import deployment as steps
from es4ps_localcluster import Cluster
from es4ps_testkit import upgrade
from es4ps_testkit.e2e import deploy, platform
from es4ps_testkit.kube import KubeCluster
from es4ps_testkit.releases import publish


def measure(deployment, published, directory: Path) -> dict:
    """One fresh Campus on the previous release, upgraded while watched, removed; the watch's figures."""
    started = time.monotonic()
    adopter, domain = upgrade.adopt_previous(deployment, published, directory, "Staff-" + secrets.token_urlsafe(12))
    try:
        watch = upgrade.upgrade_watched(adopter, domain, settle_s=0)
        report = watch.report()
        report["registrations_failed"] = len(watch.failures)
    finally:
        upgrade.remove(deployment.kube, upgrade.NAME)
    report["run_s"] = round(time.monotonic() - started, 1)
    return report


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops what this process started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stop_on_sigterm()
    started = time.monotonic()
    local = Cluster()
    started_cluster = local.ensure_up(node="real")
    deployment, runs = None, []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kube, where = platform(lambda: KubeCluster(local.kubeconfig))
            deployment = deploy(kube, where, Path(tmp) / "deployment")
            with (
                publish(Path(tmp) / "releases") as published,
                upgrade.paused_operator(kube, "es4ps", steps.OPERATOR_NAMESPACE),
            ):
                published.releases  # noqa: B018 - this checkout's release pushed before the first run, not during it
                upgrade.log(f"cluster, deployment and both releases ready {time.monotonic() - started:.0f} s in")
                for run in range(args.runs):
                    runs.append(measure(deployment, published, Path(tmp) / f"campus-{run}"))
                    print(json.dumps(runs[-1]), file=sys.stderr)
                versions = {"from": published.previous, "to": published.current}
    finally:
        if deployment is not None:
            deployment.close()
        if started_cluster:
            local.down()
    numeric = [key for key, value in runs[0].items() if isinstance(value, int | float)]
    result = {key: statistics.median(run[key] for run in runs) for key in numeric}
    result.update(versions, runs=len(runs), total_s=round(time.monotonic() - started, 1), per_run=runs)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
