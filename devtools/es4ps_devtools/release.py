"""`make release`: the images and both charts of a checkout, pushed to an OCI registry, described and signed.

    python -m es4ps_devtools release --registry REGISTRY --key cosign.key [--auth-file F] [--ca-file F]
                                     [--source DIR] [--output DIR]

For every image (operator, portal, samba; rabbitmq for clusters that cannot
pull the stock image):

1. built from the source tree (`--source`, default this checkout) with its VERSION,
2. pushed as `REGISTRY/<name>:<VERSION>` (skopeo, straight from the engine, as an
   OCI manifest); its digest is recorded,
3. described: a CycloneDX SBOM of its Debian and Python packages (syft),
   written to `<output>/sbom/<name>.cdx.json` and attached to the image as a
   signed attestation (`cosign attest --type cyclonedx`),
4. signed by digest with the release key (`cosign sign --key`).

Then both charts are packaged with the release's image references pinned by
digest in the `es4ps` chart's values (`REGISTRY/operator:<VERSION>@sha256:...`,
and the same for samba and portal), pushed as OCI artifacts
(`helm push ... oci://REGISTRY/charts`) and signed by digest too. Everything
pushed, with digests and sizes, is written to `<output>/release.json`, and the
public key beside it (`cosign.pub`), which the install instructions verify with.

Logins come from a Docker-style `config.json` (`--auth-file`, default
`$DOCKER_CONFIG/config.json`); `--ca-file` trusts a registry's private CA. The
key's password comes from COSIGN_PASSWORD. Signatures are not uploaded to a
transparency log (`--tlog-upload=false`: no Rekor is reachable from here);
verify with `--insecure-ignore-tlog`, as docs/releasing.md says.

Pushing the same build again uploads nothing new and gives the same digests
(layers are compressed the same way each time), so a cached registry and a
warm engine make a second release of the same tree quick.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import yaml
from es4ps_localcluster import images as cluster_images
from es4ps_localcluster import tools
from es4ps_localcluster.images import Image, ImageError
from es4ps_localcluster.paths import BIN

from .artifacts import Artifact, Registry, ReleaseError
from .images import DOCKERFILES
from .paths import ROOT
from .pushed import ATTESTATION_SUFFIX, SIGNATURE_SUFFIX, Pushed, content_hash, cosign_tag

RELEASED_IMAGES = ("operator", "portal", "samba", "rabbitmq")
CHARTS = ("es4ps-crds", "es4ps")
# The names local builds of a release get in the engine (apart from `make images`' es4ps/...).
LOCAL_PREFIX = "es4ps-release"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The pinned Helm of `make setup` (the charts' own tests use it too).
HELM = str(BIN / "helm")


def run(argv: list[str], env: dict[str, str] | None = None, what: str = "", timeout: float = 1800) -> str:
    """Run a release tool; its stdout, or ReleaseError with its stderr (which never holds a password here)."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise ReleaseError(f"{what or argv[0]} failed: {(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc.stdout + proc.stderr


def source_version(source: Path) -> str:
    return (source / "VERSION").read_text().strip()


def build_images(source: Path, host: str) -> list[Image]:
    """The released images of a source tree, built in the engine under LOCAL_PREFIX with its VERSION."""
    version = source_version(source)
    built = [
        Image(name, f"{LOCAL_PREFIX}/{name}", version, source / DOCKERFILES[name], source, {"VERSION": version})
        for name in RELEASED_IMAGES
    ]
    cluster_images.build(built, host)
    return built


def push_image(image: Image, registry: Registry, host: str, work: Path) -> Artifact:
    """skopeo copy from the engine to REGISTRY/<name>:<version> as an OCI image; the digest it pushed."""
    reference = f"{registry.prefix}/{image.name}:{image.tag}"
    digest_file = work / f"{image.name}.digest"
    argv = ["skopeo", "copy", "--quiet", "--format", "oci", "--dest-authfile", str(registry.auth_file)]
    if registry.ca_file:
        argv += ["--dest-cert-dir", cert_dir(registry, work)]
    argv += ["--src-daemon-host", host, "--digestfile", str(digest_file)]
    run([*argv, f"docker-daemon:{image.ref}", f"docker://{reference}"], what=f"pushing {image.ref}")
    artifact = Artifact(image.name, reference, digest_file.read_text().strip(), 0)
    by_digest = f"docker://{artifact.repository}@{artifact.digest}"
    manifest = json.loads(run(_skopeo_inspect(registry, work, by_digest), what=f"inspecting {by_digest}"))
    artifact.size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return artifact


def cert_dir(registry: Registry, work: Path) -> str:
    """A folder holding the registry's CA as skopeo looks for it (`*.crt`)."""
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(registry.ca_file, certs / "ca.crt")
    return str(certs)


def _skopeo_inspect(registry: Registry, work: Path, target: str) -> list[str]:
    """skopeo's command printing an image's manifest as the registry holds it."""
    argv = ["skopeo", "inspect", "--raw", "--authfile", str(registry.auth_file)]
    if registry.ca_file:
        argv += ["--cert-dir", cert_dir(registry, work)]
    return [*argv, target]


def describe(image: Image, artifact: Artifact, host: str, output: Path) -> None:
    """The image's CycloneDX SBOM (Debian and Python packages), read by syft from the engine's copy."""
    syft = tools.ensure("syft")
    path = output / "sbom" / f"{image.name}.cdx.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # packages only: the per-file entries (thousands) would make each SBOM several times larger
    env = {
        **os.environ,
        "DOCKER_HOST": host,
        "SYFT_CHECK_FOR_APP_UPDATE": "false",
        "SYFT_FILE_METADATA_SELECTION": "none",
    }
    run([syft, "scan", f"docker:{image.ref}", "-q", "-o", f"cyclonedx-json={path}"], env, f"the SBOM of {image.ref}")
    artifact.sbom, artifact.sbom_size = str(path), path.stat().st_size


def sign(target: str, key: Path, env: dict[str, str], sbom: str = "") -> None:
    """cosign: sign `target` (by digest) with the key, and attach the SBOM as a signed attestation."""
    cosign = tools.ensure("cosign")
    common = ["--key", str(key), "--tlog-upload=false", "--yes"]
    run([cosign, "sign", *common, target], env, f"signing {target}")
    if sbom:
        run(
            [cosign, "attest", *common, "--type", "cyclonedx", "--predicate", sbom, target],
            env,
            f"attaching the SBOM to {target}",
        )


def pin_values(text: str, images: dict[str, Artifact]) -> str:
    """The es4ps chart's values.yaml with the released images pinned by digest (comments kept)."""
    replacements = {
        r"^(  repository: ).*$": images["operator"].repository,
        r'^(  tag: )"".*$': f'"{images["operator"].tag_and_digest}"',
        r'^(    samba: )"".*$': f'"{images["samba"].pinned}"',
        r'^(    portal: )"".*$': f'"{images["portal"].pinned}"',
    }
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, lambda m, v=value: m.group(1) + v, text, count=1, flags=re.M)
        if count != 1:
            raise ReleaseError(f"the chart's values.yaml has no line {pattern!r} to pin")
    operator = images["operator"]
    values = yaml.safe_load(text)
    pinned = f"{values['image']['repository']}:{values['image']['tag']}"
    if pinned != operator.pinned or values["operator"]["images"]["samba"] != images["samba"].pinned:
        raise ReleaseError(f"pinning the chart's images went wrong: {pinned}")
    return text


def package_charts(source: Path, images: dict[str, Artifact], work: Path) -> list[tuple[Path, Path]]:
    """Both charts of the source tree staged (symlinks resolved, the es4ps chart's images pinned) and packaged."""
    packages = []
    for chart in CHARTS:
        staged = work / "charts" / chart
        shutil.copytree(source / "charts" / chart, staged, symlinks=False)
        if chart == "es4ps":
            values = staged / "values.yaml"
            values.write_text(pin_values(values.read_text(), images))
        output = run([HELM, "package", str(staged), "-d", str(work / "packages")], what=f"helm package {chart}")
        packages.append((staged, Path(output.strip().rsplit(": ", 1)[-1])))
    return packages


def push_chart(package: Path, registry: Registry, env: dict[str, str]) -> Artifact:
    """helm push of a packaged chart to oci://REGISTRY/charts; the chart's reference and digest."""
    argv = [HELM, "push", str(package), f"oci://{registry.prefix}/charts"]
    argv += ["--registry-config", str(Path(env["DOCKER_CONFIG"]) / "config.json")]
    if registry.ca_file:
        argv += ["--ca-file", str(registry.ca_file)]
    output = run(argv, env, f"helm push {package.name}")
    pushed = re.search(r"^Pushed: (\S+)$", output, re.M)
    digest = DIGEST.search(output)
    if not (pushed and digest):
        raise ReleaseError(f"helm push {package.name} did not say what it pushed: {output}")
    return Artifact(package.name.rsplit("-", 1)[0], pushed.group(1), digest.group(0), package.stat().st_size)


class Release:
    """One release in progress: the target, the key, where its files go, and what earlier releases pushed."""

    def __init__(self, registry: Registry, key: Path, output: Path, work: Path, key_password: str, cache: Path | None):
        self.registry, self.key, self.output, self.work = registry, key, output, work
        self.env = {**registry.env(work), "COSIGN_PASSWORD": key_password}
        self.pushed = Pushed(cache, registry.prefix, key.with_suffix(".pub")) if cache else None

    def holds(self, artifact: Artifact, kind: str) -> bool:
        """Whether the registry holds the artifact by digest, its signature and (an image's) SBOM attestation."""
        suffixes = (SIGNATURE_SUFFIX, ATTESTATION_SUFFIX) if kind == "images" else (SIGNATURE_SUFFIX,)
        targets = [f"{artifact.repository}@{artifact.digest}"]
        targets += [f"{artifact.repository}:{cosign_tag(artifact.digest, suffix)}" for suffix in suffixes]
        for target in targets:
            proc = subprocess.run(_skopeo_inspect(self.registry, self.work, f"docker://{target}"), capture_output=True)
            if proc.returncode != 0:
                return False
        return True

    def image(self, image: Image, host: str) -> Artifact:
        """Push, describe and sign one built image, or take what an earlier release did with the same build."""
        identity = cluster_images.image_id(image.ref, host) or ""
        found = self.pushed.find("images", identity, self.holds) if self.pushed else None
        if found:
            artifact, sbom = found
            artifact.sbom = str(shutil.copy(sbom, self.output / "sbom" / f"{image.name}.cdx.json"))
            return artifact
        artifact = push_image(image, self.registry, host, self.work)
        describe(image, artifact, host, self.output)
        sign(f"{artifact.repository}@{artifact.digest}", self.key, self.env, artifact.sbom)
        if self.pushed:
            self.pushed.keep("images", identity, artifact, Path(artifact.sbom))
        return artifact

    def chart(self, staged: Path, package: Path) -> Artifact:
        """Push and sign one packaged chart, or take an earlier release's package of the same files."""
        identity = content_hash(staged)
        found = self.pushed.find("charts", identity, self.holds) if self.pushed else None
        if found:
            artifact, kept = found
            shutil.copy(kept, self.output / package.name)
            return artifact
        artifact = push_chart(package, self.registry, self.env)
        sign(f"{artifact.repository}@{artifact.digest}", self.key, self.env)
        shutil.copy(package, self.output / package.name)
        if self.pushed:
            self.pushed.keep("charts", identity, artifact, package)
        return artifact


def release(
    source: Path, registry: Registry, key: Path, output: Path, key_password: str = "", cache: Path | None = None
) -> dict:
    """Build, push, describe and sign the images, then package, push and sign the charts; the summary.

    With `cache`, what an earlier release pushed of the same builds to the same registry with the same key
    is taken as it is (es4ps_devtools.pushed) once the registry confirms it still holds it signed.
    """
    version = source_version(source)
    (output / "sbom").mkdir(parents=True, exist_ok=True)
    host = cluster_images.docker_host()
    with tempfile.TemporaryDirectory(prefix="es4ps-release-") as tmp:
        making = Release(registry, key, output, Path(tmp), key_password, cache)
        images = {image.name: making.image(image, host) for image in build_images(source, host)}
        packages = package_charts(source, images, Path(tmp))
        charts = {artifact.name: artifact for artifact in (making.chart(*staged) for staged in packages)}
    public_key = key.with_suffix(".pub")
    if public_key.exists():
        shutil.copy(public_key, output / "cosign.pub")
    summary = {
        "version": version,
        "registry": registry.prefix,
        "images": {name: asdict(a) | {"pinned": a.pinned} for name, a in images.items()},
        "charts": {name: asdict(a) | {"oci": f"oci://{a.repository}"} for name, a in charts.items()},
    }
    (output / "release.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m es4ps_devtools release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registry", required=True, help="where to push, e.g. ghcr.io/acme/es4ps")
    parser.add_argument("--key", required=True, type=Path, help="cosign private key (password: COSIGN_PASSWORD)")
    docker_config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    parser.add_argument("--auth-file", type=Path, default=docker_config / "config.json", help="the registry login")
    parser.add_argument("--ca-file", type=Path, help="the registry's CA, when not a public one")
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to release (default: this checkout)")
    parser.add_argument("--output", type=Path, default=ROOT / "dist", help="SBOMs, packaged charts, release.json")
    args = parser.parse_args(argv)
    for path in (args.key, args.auth_file, *([args.ca_file] if args.ca_file else [])):
        if not path.is_file():
            parser.error(f"{path} does not exist")
    registry = Registry(args.registry.rstrip("/"), args.auth_file, args.ca_file)
    try:
        password = os.environ.get("COSIGN_PASSWORD", "")
        summary = release(args.source.resolve(), registry, args.key, args.output, password)
    except (ReleaseError, ImageError, tools.ToolError, subprocess.CalledProcessError) as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    for kind in ("images", "charts"):
        for name, artifact in summary[kind].items():
            print(f"{kind[:-1]} {name}: {artifact['reference']}@{artifact['digest']}")
    print(f"release {summary['version']} written to {args.output / 'release.json'}")
    return 0
