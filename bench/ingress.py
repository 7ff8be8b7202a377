"""What the ingress controller adds: GET of the registration page through Traefik versus straight to the Service. JSON.

Runs against the demo (`make demo` first: the real node, Traefik serving the
portal's Ingress). In each run one client sends `--requests` GETs of
`/register/` through the controller (HTTPS to 127.0.0.1:443 with the portal's
name, as a browser on this machine) and another as many straight to the
portal's Service (plain HTTP to its ClusterIP, kube-proxy's path from this
machine, which the portal's NetworkPolicy admits as the node's own traffic),
taking turns request by request so both see the same machine. Each client
keeps its connection (one TLS handshake per run), so the figures are the
per-request cost, not the handshake. `p50_ms`/`p99_ms` are medians over the
runs; `per_run` keeps each run's numbers.

    .venv/bin/python bench/ingress.py [--requests 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import requests
from es4ps_devtools import deployment as steps
from es4ps_localcluster import ingress
from es4ps_testkit.portal_client import PortalClient

PAGE = "/register/"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed_get(get, url: str) -> float:
    start = time.perf_counter()
    response = get(url)
    latency = time.perf_counter() - start
    if response.status_code != 200 or "csrfmiddlewaretoken" not in response.text:
        raise RuntimeError(f"GET {url} answered {response.status_code}, not the registration page")
    return latency


def run(through_ingress: PortalClient, straight: requests.Session, service_url: str, count: int) -> dict:
    latencies: dict[str, list[float]] = {"through_ingress": [], "straight_to_service": []}
    for _ in range(count):
        latencies["through_ingress"].append(timed_get(through_ingress.get, PAGE))
        latencies["straight_to_service"].append(timed_get(lambda url: straight.get(url, timeout=30), service_url))
    return {
        path: {
            "p50_ms": round(percentile(values, 0.50) * 1000, 2),
            "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        }
        for path, values in latencies.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="GETs per path and run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="es4ps-bench-ingress-") as tmp:
        ca = steps.portal_ca_file(Path(tmp) / "portal-ca.crt")
        through_ingress = PortalClient(f"https://{steps.PORTAL_HOST}", connect_to=ingress.HOST_ADDRESS, ca_file=str(ca))
        straight = requests.Session()
        straight.trust_env = False
        straight.headers["Host"] = steps.PORTAL_HOST
        service_url = steps.portal_backend() + PAGE
        run(through_ingress, straight, service_url, 20)  # warm-up: connections, caches
        per_run = [run(through_ingress, straight, service_url, args.requests) for _ in range(args.runs)]

    result = {
        path: {key: statistics.median(r[path][key] for r in per_run) for key in per_run[0][path]} for path in per_run[0]
    }
    result["added_by_ingress_ms"] = {
        key: round(result["through_ingress"][key] - result["straight_to_service"][key], 2)
        for key in ("p50_ms", "p99_ms")
    }
    result.update(requests_per_run=args.requests, runs=args.runs, per_run=per_run)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
