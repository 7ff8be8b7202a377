"""The command line of the DC container: `es4ps-samba-dc run | prepare | ready | live`."""

from __future__ import annotations

import argparse
import os
import sys

from es4ps_contract.environment import SettingError

from . import __doc__ as PACKAGE_DOC
from .config import DCConfig
from .domain import prepare
from .probes import ldap_answers, ready
from .supervisor import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es4ps-samba-dc", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument("command", choices=["run", "prepare", "ready", "live"])
    args = parser.parse_args(argv)
    try:
        config = DCConfig.from_env(os.environ)
    except SettingError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2
    if args.command == "ready":
        return 0 if ready(config) else 1
    if args.command == "live":
        return 0 if ldap_answers(config.probe_address, 5) else 1
    try:
        installed = prepare(config)
    except (SettingError, OSError) as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 1
    if args.command == "prepare":
        return 0
    return serve(config, installed)


if __name__ == "__main__":
    sys.exit(main())
