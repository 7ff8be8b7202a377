"""The release's sizes: each image as pushed (compressed) and in the engine, its SBOM, both charts. JSON.

Releases this checkout with the code of `make release` (es4ps_devtools.release)
into the local registry the e2e tests use (es4ps_localcluster.registry, its
storage in the shared cache), with a throwaway cosign key, and prints what was
published: `image_mb` (the layers and config a pull fetches) and
`engine_mb` (unpacked, what `docker images` shows) per image, `sbom_kb` and
the number of Debian and Python packages each SBOM lists, `chart_kb` per
chart, and `release_s`, the median time of `--runs` releases (the first on
a cold registry uploads everything; later ones find every blob there).

    flock /tmp/es4ps-realnode.lock .venv/bin/python bench/release.py [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from es4ps_devtools import release as releasing
from es4ps_devtools.paths import ROOT
from es4ps_localcluster import images, tools
from es4ps_localcluster.registry import Registry
from es4ps_testkit.releases import KEY_PASSWORD, PUBLISHER, STORAGE


def packages(sbom: str) -> dict[str, int]:
    """How many packages of each kind (deb, pypi) an SBOM lists."""
    counts: dict[str, int] = {}
    for component in json.loads(Path(sbom).read_text()).get("components", []):
        purl = component.get("purl", "")
        if purl.startswith("pkg:"):
            kind = purl[4:].split("/", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def engine_size(reference: str) -> int:
    host = images.docker_host()
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", reference],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(size)


def describe(summary: dict, durations: list[float]) -> dict:
    """The figures of one release's summary (release.json) and the runs' durations."""
    return {
        "version": summary["version"],
        "release_s": round(statistics.median(durations), 1),
        "release_s_per_run": [round(d, 1) for d in durations],
        "images": {
            name: {
                "image_mb": round(image["size"] / 1e6, 1),
                "engine_mb": round(engine_size(f"{releasing.LOCAL_PREFIX}/{name}:{summary['version']}") / 1e6, 1),
                "sbom_kb": round(image["sbom_size"] / 1e3, 1),
                "sbom_packages": packages(image["sbom"]),
            }
            for name, image in summary["images"].items()
        },
        "charts": {name: {"chart_kb": round(chart["size"] / 1e3, 1)} for name, chart in summary["charts"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="es4ps-bench-release-") as tmp:
        work = Path(tmp)
        registry = Registry(work / "registry", STORAGE, {PUBLISHER: "bench-" + os.urandom(8).hex()})
        registry.start()
        try:
            cosign = tools.ensure("cosign")
            env = {**os.environ, "COSIGN_PASSWORD": KEY_PASSWORD}
            subprocess.run([cosign, "generate-key-pair"], cwd=work, env=env, check=True, capture_output=True)
            target = releasing.Registry(
                f"{registry.address}/es4ps", registry.write_auth_config(PUBLISHER, work / "login"), registry.ca_file
            )
            durations, summary = [], {}
            for run in range(args.runs):
                started = time.monotonic()
                summary = releasing.release(ROOT, target, work / "cosign.key", work / f"out-{run}", KEY_PASSWORD)
                durations.append(time.monotonic() - started)
        finally:
            registry.stop()
        result = describe(summary, durations)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
