"""The command line of the DC's image: `es4ps-samba-dc run | prepare | ready | live | leave | remove | dbcheck |
delegate | join-check | move-legacy-accounts FILE`.

run, prepare, ready and live are the DC container's (its command and probes);
leave, remove and dbcheck are steps the operator's Jobs run (see `lifecycle`),
join-check too, before a domain's DCs join an existing domain (see `existing`);
delegate is an administrator's, for a directory ES4PS does not run (`delegation`); move-legacy-accounts too, for
ES4PS-Containers' accounts once the portal imported its people (`legacy_accounts`).
"""

from __future__ import annotations

import argparse
import os
import sys

from es4ps_contract.environment import SettingError

from . import delegation, legacy_accounts
from .config import DCConfig
from .domain import prepare
from .existing import JoinCheckConfig, join_check
from .lifecycle import LeaveConfig, dbcheck, leave, remove
from .probes import ldap_answers, ready
from .supervisor import serve

JOB_STEPS = {"leave": leave, "remove": remove, "dbcheck": dbcheck}


def _lifecycle(step) -> int:
    try:
        step(LeaveConfig.from_env(os.environ))
    except SettingError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a samba-tool step failed; its message says which
        print(exc, file=sys.stderr)
        return 1
    return 0


def _join_check() -> int:
    try:
        return join_check(JoinCheckConfig.from_env(os.environ))
    except SettingError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es4ps-samba-dc", description=__doc__.splitlines()[0])
    commands = ["run", "prepare", "ready", "live", *JOB_STEPS, "delegate", "join-check", "move-legacy-accounts"]
    parser.add_argument("command", choices=commands)
    parser.add_argument("file", nargs="?", help="move-legacy-accounts: the accounts file the portal's import wrote")
    args = parser.parse_args(argv)
    if args.command == "delegate":
        return delegation.main(os.environ)
    if args.command == "move-legacy-accounts":
        if not args.file:
            parser.error("move-legacy-accounts needs the accounts file (import_es4ps_containers --accounts-file)")
        return legacy_accounts.main(os.environ, args.file)
    if args.command in JOB_STEPS:
        return _lifecycle(JOB_STEPS[args.command])
    if args.command == "join-check":
        return _join_check()
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
