"""Active Directory's password complexity rules, as the portal shows them and the worker explains them.

Samba enforces the same rules ("password complexity = on", the domain default):
at least `MIN_LENGTH` characters, characters from three of the four classes,
and the password must not contain the account name or a part of the person's
name of three characters or more. Checking them in the portal gives the user
the reason next to the field instead of a failed task.
"""

from __future__ import annotations

import re

MIN_LENGTH = 8
# unicodePwd holds at most 256 UTF-16 characters on Windows DCs.
MAX_LENGTH = 256
COMPLEXITY_REASON = (
    "password does not meet the domain's complexity rules: at least "
    f"{MIN_LENGTH} characters from three of: upper case, lower case, digits, symbols; "
    "and not containing your username or name"
)

_NAME_TOKEN_SPLIT = re.compile(r"[,.\-_#\s\t]+")


def _character_classes(password: str) -> int:
    classes = [
        any(c.isupper() for c in password),
        any(c.islower() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    return sum(classes)


def password_problems(password: str, username: str = "", full_name: str = "") -> list[str]:
    """Return the reasons this password would be refused by the domain (empty list: acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if _character_classes(password) < 3:
        problems.append("Use characters from three of these groups: upper case, lower case, digits, symbols.")
    lowered = password.casefold()
    if len(username) >= 3 and username.casefold() in lowered:
        problems.append("Do not include your username.")
    tokens = [t for t in _NAME_TOKEN_SPLIT.split(full_name) if len(t) >= 3]
    if any(t.casefold() in lowered for t in tokens):
        problems.append("Do not include a part of your name.")
    return problems
