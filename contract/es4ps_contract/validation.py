"""Field rules shared by the portal (its forms) and the worker (before it touches the directory).

Every value is normalised deliberately and visibly: usernames are ASCII and
lower-cased, names and e-mail addresses are put in Unicode NFC form. Anything
else that does not fit is refused with a message naming the field, never
silently rewritten.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping

from .texts import Text, gettext_noop

# sAMAccountName of a user object: at most 20 characters (the pre-Windows 2000
# logon name). We allow a conservative ASCII subset that every client handles.
USERNAME_MAX_LENGTH = 20
# rangeUpper of givenName and sn in the AD schema.
NAME_MAX_LENGTH = 64
# rangeUpper of displayName.
DISPLAY_NAME_MAX_LENGTH = 256
EMAIL_MAX_LENGTH = 254
# A computer's name is its NetBIOS name: at most 15 characters (sAMAccountName adds the "$" of a computer).
COMPUTER_NAME_MAX_LENGTH = 15
# Words Windows reserves that a computer name could spell (Microsoft's "Naming conventions in Active Directory").
RESERVED_COMPUTER_NAMES = frozenset(
    {
        "ANONYMOUS", "BATCH", "BUILTIN", "DIALUP", "DOMAIN", "ENTERPRISE", "GATEWAY", "GROUP", "INTERACTIVE",
        "INTERNET", "LOCAL", "LOCALHOST", "NETWORK", "NULL", "PROXY", "RESTRICTED", "SELF", "SERVER", "SERVICE",
        "SYSTEM", "USERS", "WORLD",
    }
)  # fmt: skip
# Accounts every Samba domain already has; a registration must never touch them.
RESERVED_USERNAMES = frozenset({"administrator", "guest", "krbtgt", "defaultaccount", "admin", "root"})

_USERNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
# A DNS host label as well as a NetBIOS name: every client resolves it either way.
_COMPUTER_NAME_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?")
# Unicode categories refused in names: control, format (invisible), surrogates,
# private use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class InvalidField(ValueError):
    """A field value breaks the contract. `field` names it, `message` says why (in English; `text` translates)."""

    def __init__(self, field: str, template: str, values: Mapping[str, object] | None = None) -> None:
        self.field = field
        self.text = Text(template, values or {})
        self.message = str(self.text)
        super().__init__(f"{field}: {self.message}")


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, gettext_noop("must be a string"))
    return value


def normalize_username(value: object, field: str = "username") -> str:
    """Return the canonical username (stripped, ASCII lower case) or raise InvalidField."""
    text = _require_str(field, value).strip()
    if not text:
        raise InvalidField(field, gettext_noop("is required"))
    if len(text) > USERNAME_MAX_LENGTH:
        raise InvalidField(
            field,
            gettext_noop("must be at most %(limit)d characters (an Active Directory limit)"),
            {"limit": USERNAME_MAX_LENGTH},
        )
    if not text.isascii():
        raise InvalidField(field, gettext_noop("may contain only the letters a-z, digits, '.', '-' and '_'"))
    text = text.lower()
    if not _USERNAME_RE.fullmatch(text):
        raise InvalidField(
            field,
            gettext_noop(
                "may contain only the letters a-z, digits, '.', '-' and '_', and must start and end with a letter"
                " or digit"
            ),
        )
    if text.isdigit():
        raise InvalidField(field, gettext_noop("must contain at least one letter"))
    if text in RESERVED_USERNAMES:
        raise InvalidField(field, gettext_noop("is reserved"))
    return text


def normalize_name(value: object, field: str, max_length: int = NAME_MAX_LENGTH, required: bool = True) -> str:
    """Return a person's name in NFC form, stripped; refuse invisible or control characters."""
    text = unicodedata.normalize("NFC", _require_str(field, value)).strip()
    if not text:
        if required:
            raise InvalidField(field, gettext_noop("is required"))
        return text
    if len(text) > max_length:
        raise InvalidField(field, gettext_noop("must be at most %(limit)d characters"), {"limit": max_length})
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidField(
                field,
                gettext_noop("contains a control or invisible character (U+%(code)04X)"),
                {"code": ord(char)},
            )
    return text


def normalize_email(value: object, field: str = "email") -> str:
    """Return an e-mail address in NFC form with its domain lower-cased.

    Only the shape is checked here; which domains are allowed is the portal's decision.
    """
    text = unicodedata.normalize("NFC", _require_str(field, value)).strip()
    if not text:
        raise InvalidField(field, gettext_noop("is required"))
    if len(text) > EMAIL_MAX_LENGTH:
        raise InvalidField(field, gettext_noop("must be at most %(limit)d characters"), {"limit": EMAIL_MAX_LENGTH})
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not domain or "@" in local or len(local) > 64:
        raise InvalidField(field, gettext_noop("is not an e-mail address"))
    if any(char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES for char in text):
        raise InvalidField(field, gettext_noop("contains a space, control or invisible character"))
    return f"{local}@{domain.lower()}"


def normalize_registration(value: object, field: str = "registration") -> str:
    """Return a registration id (a UUID) in its canonical form: lower case, hyphenated."""
    text = _require_str(field, value).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidField(field, gettext_noop("must be a UUID")) from None


def normalize_computer_name(value: object, field: str = "computer") -> str:
    """Return a computer's name in its canonical form (upper case, without the "$" of its account) or raise.

    The name is the computer's NetBIOS name and the first label of its DNS
    name: 1 to 15 letters, digits or '-', starting and ending with a letter or
    digit, not only digits, none of the words Windows reserves. "ws01$" (the
    account's name) is taken as "WS01".
    """
    text = _require_str(field, value).strip()
    if text.endswith("$"):
        text = text[:-1]
    if not text:
        raise InvalidField(field, gettext_noop("is required"))
    if len(text) > COMPUTER_NAME_MAX_LENGTH:
        raise InvalidField(
            field,
            gettext_noop("must be at most %(limit)d characters (a computer's NetBIOS name)"),
            {"limit": COMPUTER_NAME_MAX_LENGTH},
        )
    text = text.upper()
    if not text.isascii() or not _COMPUTER_NAME_RE.fullmatch(text):
        raise InvalidField(
            field,
            gettext_noop(
                "may contain only the letters A-Z, digits and '-', and must start and end with a letter or digit"
            ),
        )
    if text.isdigit():
        raise InvalidField(field, gettext_noop("must contain at least one letter"))
    if text in RESERVED_COMPUTER_NAMES:
        raise InvalidField(field, gettext_noop("is reserved"))
    return text


def computer_account_name(name: str) -> str:
    """The sAMAccountName of the computer called `name` (canonical): its name and "$"."""
    return f"{name}$"
