"""The product's container images, built and loaded with the local cluster's image machinery.

    python -m es4ps_devtools images build [NAME...]   default: operator, portal, samba (what `make images` adds to)
    python -m es4ps_devtools images list              the product's and the local cluster's images, with sizes

Every image is built from the repository root (the portal and the worker share
`contract/`), tagged with VERSION and given it as the build argument VERSION
(the images' OCI labels). `rabbitmq` is only for clusters that cannot pull
the stock RabbitMQ image, like this machine's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from es4ps_localcluster import images as cluster_images
from es4ps_localcluster.images import Image, ImageError

from .paths import ROOT, VERSION

# The registry-less name prefix the local cluster's operator accepts (operator.images.allowedRegistries).
LOCAL_REGISTRY = "es4ps"


# Each image's Dockerfile, relative to the repository root (its build context).
DOCKERFILES = {
    "operator": "operator/Dockerfile",
    "portal": "images/django/Dockerfile",
    "samba": "images/samba/Dockerfile",
    "rabbitmq": "images/rabbitmq/Dockerfile",
}
IMAGES = {
    name: Image(name, f"{LOCAL_REGISTRY}/{name}", VERSION, ROOT / dockerfile, ROOT, {"VERSION": VERSION})
    for name, dockerfile in DOCKERFILES.items()
}
# What a platform team runs (the broker's stock image is RabbitMQ's own).
PRODUCT_IMAGES = ("operator", "portal", "samba")


def images(names) -> list[Image]:
    """The product's images by name (ImageError for an unknown one)."""
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        raise ImageError(f"unknown images: {', '.join(unknown)} (known: {', '.join(IMAGES)})")
    return [IMAGES[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m es4ps_devtools images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build")
    build.add_argument("names", nargs="*", help=f"of {', '.join(IMAGES)} (default: {' '.join(PRODUCT_IMAGES)})")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    try:
        host = cluster_images.docker_host()
        if args.command == "build":
            cluster_images.build(images(args.names or PRODUCT_IMAGES), host)
            return 0
        refs = [i.ref for i in (*IMAGES.values(), *cluster_images.CLUSTER_IMAGES.values())]
        cluster_images.docker(
            "images",
            "--format",
            "table {{.Repository}}:{{.Tag}}\t{{.Size}}",
            *[f"--filter=reference={ref}" for ref in refs],
            host=host,
        )
        print(f"(DOCKER_HOST={host})")
    except (ImageError, subprocess.CalledProcessError) as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    return 0
