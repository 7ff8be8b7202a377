"""Container images without a registry: a Docker engine, a Debian base, builds and loads into containerd.

    python -m es4ps_localcluster images build [NAME...]   the local cluster's own images (pause, traefik)
    python -m es4ps_localcluster images down    stop the dockerd this checkout started
    python -m es4ps_localcluster images env     print the DOCKER_HOST to use

Uses a reachable Docker engine (DOCKER_HOST or the default socket) or starts a
checkout-owned dockerd whose state lives under the cache directory, so built
layers survive a fresh clone. The Debian base image is made once with
debootstrap + `docker import` (no image can be pulled here) and passed to
every Dockerfile as BASE_IMAGE; on a machine with a registry the Dockerfiles'
own default base works unchanged.

An `Image` says where its Dockerfile and build context are and which build
arguments it takes: the local cluster defines its own two (`PAUSE`, the
node's sandbox, and `TRAEFIK`, its ingress controller); whoever builds other
images on this engine defines theirs the same way and passes them to `build`
and `load`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import BIN, CACHE, LOCAL, TOOLS
from .processes import Supervisor

DOCKER_STATE = CACHE / "docker"
OWN_SOCKET = DOCKER_STATE / "docker.sock"
# The dockerd this checkout started: .local/docker/dockerd.pid and dockerd.log.
DOCKERD = Supervisor(LOCAL / "docker", LOCAL / "docker")

LOCAL_BASE_IMAGE = "es4ps/debian:bookworm"
# ES4PS_BASE_IMAGE=debian:bookworm-slim (say) on a machine that can pull; else the debootstrapped one.
BASE_IMAGE = os.environ.get("ES4PS_BASE_IMAGE") or LOCAL_BASE_IMAGE
BASE_TARBALL = CACHE / "base" / "debian-bookworm-slim.tar"
# What Debian's official slim images leave out, also for packages installed later in a build.
SLIM_DPKG_CONFIG = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""
SLIM_APT_CONFIG = """DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
"""


@dataclass(frozen=True)
class Image:
    """A container image built here: `repository:tag`, from a Dockerfile and context or from a static binary."""

    name: str
    repository: str
    tag: str
    # None: the static binary of the same name in .local/bin in a FROM scratch image (see _build_from_binary)
    dockerfile: Path | None = None
    context: Path | None = None
    build_args: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def _tool_version(tool: str, module: str) -> str:
    """The version of `module` a tool's go.mod under localcluster/tools/ requires (the image's tag)."""
    for line in (TOOLS / tool / "go.mod").read_text().splitlines():
        words = line.split()
        if module in words:
            return words[words.index(module) + 1]
    raise ImportError(f"{module} is not required by localcluster/tools/{tool}/go.mod")


# The real node's pod sandbox (containerd's sandbox_image); its binary has no module to version.
PAUSE = Image("pause", "es4ps.local/pause", "v1")
# The local cluster's ingress controller (es4ps_localcluster.ingress).
TRAEFIK = Image("traefik", "es4ps.local/traefik", _tool_version("traefik", "github.com/traefik/traefik/v3"))
CLUSTER_IMAGES = {i.name: i for i in (PAUSE, TRAEFIK)}


class ImageError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- docker engine


def ensure_engine() -> tuple[str, bool]:
    """DOCKER_HOST of a reachable engine, and whether this call had to start the project-owned dockerd."""
    for host in filter(None, (os.environ.get("DOCKER_HOST"), f"unix://{OWN_SOCKET}", "unix:///var/run/docker.sock")):
        if _engine_answers(host):
            return host, False
    _start_dockerd()
    return f"unix://{OWN_SOCKET}", True


def docker_host() -> str:
    """DOCKER_HOST of a reachable engine, starting the project-owned dockerd if none answers."""
    return ensure_engine()[0]


def _engine_answers(host: str) -> bool:
    if host.startswith("unix://") and not Path(host[7:]).exists():
        return False
    proc = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode == 0


def _start_dockerd() -> None:
    if not shutil.which("dockerd"):
        raise ImageError("dockerd is not installed (run `make setup`)")
    DOCKER_STATE.mkdir(parents=True, exist_ok=True)
    OWN_SOCKET.unlink(missing_ok=True)
    DOCKERD.start(
        "dockerd",
        [
            "dockerd",
            f"--data-root={DOCKER_STATE / 'data'}",
            f"--exec-root={DOCKER_STATE / 'exec'}",
            f"--host=unix://{OWN_SOCKET}",
            f"--pidfile={DOCKER_STATE / 'dockerd.pid'}",
        ],
    )
    DOCKERD.wait("dockerd", lambda: _engine_answers(f"unix://{OWN_SOCKET}"), 60, error=ImageError)
    log(f"started dockerd (pid {DOCKERD.pid('dockerd')}), DOCKER_HOST=unix://{OWN_SOCKET}")


def stop_dockerd() -> None:
    """Stop the dockerd this checkout started (recorded pid, checked to still be dockerd)."""
    DOCKERD.stop("dockerd", timeout_s=30)


def docker(*args: str, input: bytes | None = None, capture: bool = False, host: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(["docker", *args], input=input, env=env, capture_output=capture)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace")[-2000:] if capture else ""
        raise ImageError(f"docker {' '.join(args[:3])} ... failed {detail}")
    return proc


def image_id(ref: str, host: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


# --------------------------------------------------------------------------- building


def ensure_base_image(host: str) -> None:
    """The Debian bookworm base image, made once with debootstrap and cached as a tarball."""
    if BASE_IMAGE != LOCAL_BASE_IMAGE or image_id(BASE_IMAGE, host):
        return  # another base (ES4PS_BASE_IMAGE) is the builder's to pull
    if not BASE_TARBALL.exists():
        mirror = _debian_mirror()
        log(f"making the Debian base image with debootstrap from {mirror} (once, ~30 s)")
        BASE_TARBALL.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=BASE_TARBALL.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            _slim(rootfs)
            partial = BASE_TARBALL.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(BASE_TARBALL)
    with open(BASE_TARBALL, "rb") as tarball:
        subprocess.run(
            ["docker", "import", "-", BASE_IMAGE],
            stdin=tarball,
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DOCKER_HOST": host},
        )
    log(f"imported {BASE_IMAGE}")


def _slim(rootfs: Path) -> None:
    """Trim a debootstrapped root like debian:bookworm-slim: no docs, man pages, locales or apt caches."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/es4ps-slim").write_text(SLIM_DPKG_CONFIG)
    (rootfs / "etc/apt/apt.conf.d/es4ps-clean").write_text(SLIM_APT_CONFIG)
    for pattern in (
        "usr/share/man/*",
        "usr/share/groff/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "var/log/*.log",
    ):
        for path in rootfs.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for doc in (rootfs / "usr/share/doc").glob("*"):
        for path in doc.iterdir() if doc.is_dir() and not doc.is_symlink() else []:
            if path.name != "copyright":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _debian_mirror() -> str:
    for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    return "http://deb.debian.org/debian"


def build(images: list[Image], host: str) -> None:
    """Build the images (the Docker layer cache makes an unchanged one take seconds)."""
    if any(image.dockerfile for image in images):
        ensure_base_image(host)
    for image in images:
        start = time.monotonic()
        if image.dockerfile is None:
            _build_from_binary(image, host)
        else:
            arguments = {"BASE_IMAGE": BASE_IMAGE, "EXTRA_CA_CERTS": extra_ca_certs(), **image.build_args}
            docker(
                "build",
                "-q",
                "-f",
                str(image.dockerfile),
                *[f"--build-arg={key}={value}" for key, value in arguments.items()],
                "-t",
                image.ref,
                str(image.context),
                host=host,
                capture=True,
            )
        log(f"built {image.ref} in {time.monotonic() - start:.0f} s")


def extra_ca_certs() -> str:
    """PEM of the CAs this machine adds to Debian's (e.g. a TLS-intercepting proxy's), for pip in builds."""
    return "".join(p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))


def _build_from_binary(image: Image, host: str) -> None:
    """A FROM scratch image of the static Go binary named like the image (built by `make setup`)."""
    binary = BIN / image.name
    if not binary.exists():
        raise ImageError(f"the {image.name} binary is missing (run `make setup`)")
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(binary, Path(ctx) / image.name)
        (Path(ctx) / "Dockerfile").write_text(
            f'FROM scratch\nCOPY {image.name} /{image.name}\nUSER 65535:65535\nENTRYPOINT ["/{image.name}"]\n'
        )
        docker("build", "-q", "-t", image.ref, ctx, host=host, capture=True)


# --------------------------------------------------------------------------- containerd


def containerd_name(ref: str) -> str:
    """The name containerd lists for a Docker-style reference (Docker Hub refs get docker.io/)."""
    first = ref.split("/", 1)[0]
    return ref if "/" in ref and ("." in first or ":" in first or first == "localhost") else f"docker.io/{ref}"


def load(socket: Path, images: list[Image], host: str) -> None:
    """Import images into containerd's k8s.io namespace, skipping those already there unchanged."""
    stamps = socket.parent / "imported"
    stamps.mkdir(parents=True, exist_ok=True)
    for image in images:
        current = image_id(image.ref, host)
        if current is None:
            raise ImageError(f"{image.ref} is not built")
        stamp = stamps / image.ref.replace("/", "_").replace(":", "_")
        listed = subprocess.run(
            ["ctr", "--address", str(socket), "-n", "k8s.io", "images", "ls", "-q"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if stamp.exists() and stamp.read_text() == current and containerd_name(image.ref) in listed:
            continue
        start = time.monotonic()
        save = subprocess.Popen(
            ["docker", "save", image.ref], stdout=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": host}
        )
        subprocess.run(
            ["ctr", "--address", str(socket), "-n", "k8s.io", "images", "import", "--no-unpack", "-"],
            stdin=save.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if save.wait() != 0:
            raise ImageError(f"docker save {image.ref} failed")
        stamp.write_text(current)
        log(f"loaded {image.ref} into containerd in {time.monotonic() - start:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m es4ps_localcluster images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("names", nargs="*", help=f"of {', '.join(CLUSTER_IMAGES)} (default: all)")
    sub.add_parser("down")
    sub.add_parser("env")
    args = parser.parse_args(argv)
    unknown = set(getattr(args, "names", [])) - set(CLUSTER_IMAGES)
    if unknown:
        parser.error(f"unknown images: {', '.join(sorted(unknown))} (known: {', '.join(CLUSTER_IMAGES)})")
    try:
        if args.command == "down":
            stop_dockerd()
        elif args.command == "env":
            print(f"export DOCKER_HOST={docker_host()}")
        else:
            build([CLUSTER_IMAGES[n] for n in args.names or CLUSTER_IMAGES], docker_host())
    except (ImageError, subprocess.CalledProcessError) as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    return 0
