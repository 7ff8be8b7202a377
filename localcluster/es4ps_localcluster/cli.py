"""The local cluster from the command line (what `make cluster` and `make cluster-down` run).

    python -m es4ps_localcluster up [--node kwok|real]   start it in the background, return when it is ready
    python -m es4ps_localcluster up --nodes 3            three real nodes, each in a network namespace of its own
    python -m es4ps_localcluster down                    stop the processes it recorded and wipe its data
    python -m es4ps_localcluster status                  exit 0 when it answers
    python -m es4ps_localcluster images ...              container images without a registry (see `images -h`)

State, logs, pids and ports live under .local/cluster/; the admin kubeconfig is .local/kubeconfig.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .cluster import NODE_MODES, Cluster, ClusterError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # images has a command line of its own
    if argv and argv[0] == "images":
        from . import images

        return images.main(argv[1:])

    parser = argparse.ArgumentParser(
        prog="python -m es4ps_localcluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster and wait until it is ready")
    up.add_argument(
        "--node",
        default=os.environ.get("NODE", "kwok"),
        choices=NODE_MODES,
        help="kwok: simulated nodes (fast); real: containerd + kubelet on this machine (one per machine); "
        "multi: several real nodes (--nodes)",
    )
    up.add_argument(
        "--nodes",
        type=int,
        default=int(os.environ.get("NODES") or 0),
        help="how many real nodes, each in a network namespace of its own (2 or more: implies --node multi)",
    )
    sub.add_parser("down", help="stop the cluster and wipe its data")
    sub.add_parser("status", help="exit 0 when the cluster answers")
    sub.add_parser("images", help="container images without a registry: images -h")
    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.command == "up":
        start = time.monotonic()
        node = "multi" if args.nodes > 1 or args.node == "multi" else args.node
        try:
            cluster.up(node=node, nodes=args.nodes or None)
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        print(f"cluster ready in {time.monotonic() - start:.1f} s; kubeconfig: {cluster.kubeconfig}")
        return 0
    if args.command == "down":
        left = cluster.down()
        if left:
            print("cluster stopped, but these are left: " + "; ".join(left), file=sys.stderr)
            return 1
        print("cluster stopped")
        return 0
    healthy = cluster.healthy()
    print("running: " + ", ".join(f"{n} ({p})" for n, p in cluster.running().items()) if healthy else "not running")
    return 0 if healthy else 1
