"""What the worker writes in one add: a new account's record, and a password's wire form (`unicodePwd`).

The benchmarks measure the directory's limit with exactly this add
(bench/provisioning.py).
"""

from __future__ import annotations

from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT

from .binding import ATTRIBUTE


def encode_password(password: str) -> bytes:
    """unicodePwd's wire form: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


def account_record(dn, task, realm: str, line: str, password: str) -> dict:
    """The one add that creates an account: disabled, with its password and its binding line (benchmarks use it
    to measure the directory's limit with exactly the worker's add)."""
    return {
        "dn": dn,
        "objectClass": "user",
        "sAMAccountName": task.username,
        "userPrincipalName": f"{task.username}@{realm.lower()}",
        "givenName": task.given_name,
        "sn": task.surname,
        "displayName": f"{task.given_name} {task.surname}",
        "mail": task.email,
        ATTRIBUTE: line,
        "userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE),
        "unicodePwd": encode_password(password),
    }
