"""The domain's password policy: one definition the DC applies, the portal's forms follow and the worker explains.

An ES4PSDomain's `spec.directory.passwordPolicy` reaches the first DC and the
portal as JSON in that shape (`ES4PS_PASSWORD_POLICY`); both read it with
`PasswordPolicy.from_json`, so the rules the portal checks before a task is
sent are the ones the DC enforces when it arrives. Its defaults are written
once, in the CRD (the API server fills them in; the operator passes every
setting): nothing here has a default of its own. docs/directory.md says why
they are what a security team signs today (NIST SP 800-63B: length over
composition, no periodic expiry).

What the DC enforces for a password it is given: `minLength`, and with
`complexity` Active Directory's rule (characters from three of four groups, and
neither the account name nor a part of the person's name of three characters
or more). The portal refuses the account name in any password, complexity or
not: it is the first word an attacker tries (a "context-specific word" of NIST
SP 800-63B). With `breachedPasswords` the portal also refuses passwords found
in a breach corpus (NIST's "passwords obtained from previous breach corpuses"),
looked up by k-anonymity ranges; the DC has no such check.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from .texts import Text, gettext_noop, ngettext_noop

# unicodePwd holds at most 256 UTF-16 characters on Windows DCs.
MAX_LENGTH = 256
# What the workers report when the DC refused a password (the portal translates it).
PASSWORD_REFUSED_REASON = gettext_noop("the password does not meet the domain's password policy")


@dataclass(frozen=True)
class Setting:
    """One whole-number setting of the policy: its name in the CRD (and the JSON), and its range."""

    name: str
    attribute: str
    minimum: int
    maximum: int


# The ranges are samba-tool's (`domain passwordsettings set`), narrowed where a lower value is unsafe:
# no password shorter than 8 (NIST's floor for any password), no lockout after more than 100
# failures (NIST's ceiling), no lockout that only an administrator can lift (duration 0).
SETTINGS = (
    Setting("minLength", "min_length", 8, 14),
    Setting("historyLength", "history_length", 0, 24),
    Setting("maxAgeDays", "max_age_days", 0, 999),
    Setting("minAgeDays", "min_age_days", 0, 998),
    Setting("lockoutThreshold", "lockout_threshold", 0, 100),
    Setting("lockoutDurationMinutes", "lockout_duration_minutes", 1, 99999),
)
COMPLEXITY = "complexity"
BREACHED = "breachedPasswords"
# Where the portal's container finds the range files of breachedPasswords.rangeFilesClaim (the operator mounts them).
RANGE_FILES_DIR = "/var/lib/es4ps/breached-password-ranges"
BREACHED_PASSWORD = gettext_noop(
    "This password is in a list of passwords known from data breaches, which attackers try first. Choose another one."
)

EXPIRES_AFTER = ngettext_noop(
    "It expires after %(count)d day; we remind you by mail before.",
    "It expires after %(count)d days; we remind you by mail before.",
)

_NAME_TOKEN_SPLIT = re.compile(r"[,.\-_#\s\t]+")


class InvalidPolicy(ValueError):
    """The policy's JSON is malformed or a setting is out of range; the message names the setting."""


@dataclass(frozen=True)
class BreachedPasswords:
    """Where the portal looks a new password up in a breach corpus (`breachedPasswords`), by the k-anonymity range
    protocol of Have I Been Pwned: only the first five hex characters of the password's SHA-1 leave the portal, and
    the answer lists every suffix of that range with how often it was seen.

    `range_url` is a range API (the public one, or an organisation's mirror) asked for `<range_url><PREFIX>`;
    `range_files_claim` a PersistentVolumeClaim holding one file per prefix (`<PREFIX>` or `<PREFIX>.txt`, as the
    downloaders write them), mounted at RANGE_FILES_DIR. Neither: no lookup.
    """

    range_url: str
    range_files_claim: str

    @property
    def enabled(self) -> bool:
        return bool(self.range_url or self.range_files_claim)

    @classmethod
    def read(cls, given: object, name: str) -> BreachedPasswords:
        if not isinstance(given, dict):
            raise InvalidPolicy(f"{name} must be a JSON object")
        if unknown := sorted(set(given) - {"rangeURL", "rangeFilesClaim"}):
            raise InvalidPolicy(f"{name}.{unknown[0]} is not a breached-passwords setting")
        url, claim = given.get("rangeURL", ""), given.get("rangeFilesClaim", "")
        if not isinstance(url, str) or (url and not url.startswith(("https://", "http://"))):
            raise InvalidPolicy(f"{name}.rangeURL must be an http(s) URL")
        if not isinstance(claim, str):
            raise InvalidPolicy(f"{name}.rangeFilesClaim must be a PersistentVolumeClaim's name")
        return cls(range_url=url, range_files_claim=claim)

    def as_spec(self) -> dict[str, str]:
        spec = {"rangeURL": self.range_url}
        return spec | ({"rangeFilesClaim": self.range_files_claim} if self.range_files_claim else {})


# What `strictest()` and tests start from: no corpus to look passwords up in.
NO_BREACH_CORPUS = BreachedPasswords(range_url="", range_files_claim="")


@dataclass(frozen=True)
class PasswordPolicy:
    """The password policy of a domain (spec.directory.passwordPolicy), every setting given."""

    min_length: int
    complexity: bool
    history_length: int
    max_age_days: int  # 0: never expires
    min_age_days: int
    lockout_threshold: int  # 0: never locks
    lockout_duration_minutes: int
    breached_passwords: BreachedPasswords  # looked up by the portal only; a DC is not told it

    @classmethod
    def from_json(cls, text: str, name: str = "ES4PS_PASSWORD_POLICY", *, directory: bool = False) -> PasswordPolicy:
        """Read the CRD's shape, every setting given (the operator passes the spec as the API server defaulted it).

        With `directory`, the DC's shape (`to_json(directory=True)`): every setting but breachedPasswords.
        breachedPasswords may be left out (no lookup): the CRD does not default it (docs/upgrading.md).
        """
        try:
            given = json.loads(text)
        except ValueError:
            raise InvalidPolicy(f"{name} must be JSON") from None
        if not isinstance(given, dict):
            raise InvalidPolicy(f"{name} must be a JSON object")
        known = [setting.name for setting in SETTINGS] + [COMPLEXITY] + ([] if directory else [BREACHED])
        if unknown := sorted(set(given) - set(known)):
            raise InvalidPolicy(f"{name}.{unknown[0]} is not a password policy setting")
        if missing := [setting for setting in known if setting not in given and setting != BREACHED]:
            raise InvalidPolicy(f"{name}.{missing[0]} is missing (every setting is given)")
        values = {}
        for setting in SETTINGS:
            value = given[setting.name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidPolicy(f"{name}.{setting.name} must be a whole number")
            if not setting.minimum <= value <= setting.maximum:
                raise InvalidPolicy(f"{name}.{setting.name} must be from {setting.minimum} to {setting.maximum}")
            values[setting.attribute] = value
        if not isinstance(given[COMPLEXITY], bool):
            raise InvalidPolicy(f"{name}.{COMPLEXITY} must be true or false")
        values["complexity"] = given[COMPLEXITY]
        values["breached_passwords"] = (
            BreachedPasswords.read(given[BREACHED], f"{name}.{BREACHED}") if BREACHED in given else NO_BREACH_CORPUS
        )
        policy = cls(**values)
        if policy.max_age_days and policy.min_age_days >= policy.max_age_days:
            raise InvalidPolicy(f"{name}.minAgeDays must be below maxAgeDays (or maxAgeDays 0: never expires)")
        return policy

    @classmethod
    def strictest(cls) -> PasswordPolicy:
        """The strictest rules any domain may set: a password meeting them meets every domain's.

        Only the length and complexity judge a password; the other settings are at their maximum.
        """
        maximums = {setting.attribute: setting.maximum for setting in SETTINGS}
        return cls(complexity=True, breached_passwords=NO_BREACH_CORPUS, **maximums)

    def to_json(self, *, directory: bool = False) -> str:
        """The CRD's shape, as `from_json` reads it; with `directory`, only what a DC applies.

        A DC's shape leaves breachedPasswords out: only the portal looks passwords up, and a DC of an older
        release, still running while an upgrade rolls the DCs one at a time, refuses a setting it does not know.
        """
        document = {setting.name: getattr(self, setting.attribute) for setting in SETTINGS}
        document[COMPLEXITY] = self.complexity
        if not directory:
            document[BREACHED] = self.breached_passwords.as_spec()
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def replace(self, **changes) -> PasswordPolicy:
        return dataclasses.replace(self, **changes)

    def problems(self, password: str, username: str = "", full_name: str = "") -> list[Text]:
        """Why the domain (or the portal) would refuse this password; an empty list: acceptable."""
        problems = []
        if len(password) < self.min_length:
            problems.append(Text(gettext_noop("Use at least %(count)d characters."), {"count": self.min_length}))
        if len(password) > MAX_LENGTH:
            problems.append(Text(gettext_noop("Use at most %(count)d characters."), {"count": MAX_LENGTH}))
        if self.complexity and _character_classes(password) < 3:
            problems.append(
                Text(
                    gettext_noop("Use characters from three of these groups: upper case, lower case, digits, symbols.")
                )
            )
        lowered = password.casefold()
        if len(username) >= 3 and username.casefold() in lowered:
            problems.append(Text(gettext_noop("Do not include your username.")))
        if self.complexity:
            tokens = [t for t in _NAME_TOKEN_SPLIT.split(full_name) if len(t) >= 3]
            if any(t.casefold() in lowered for t in tokens):
                problems.append(Text(gettext_noop("Do not include a part of your name.")))
        return problems

    def rules(self) -> list[Text]:
        """The rules as a person reads them next to the password field."""
        rules = [
            Text(
                gettext_noop("At least %(count)d characters: a few words you remember make a good password."),
                {"count": self.min_length},
            )
        ]
        if self.complexity:
            rules.append(
                Text(
                    gettext_noop(
                        "Characters from three of these groups: upper case, lower case, digits, symbols. Not your"
                        " username or a part of your name."
                    )
                )
            )
        else:
            rules.append(Text(gettext_noop("Not your username.")))
        if self.max_age_days:
            rules.append(Text.counted(EXPIRES_AFTER, self.max_age_days))
        if self.breached_passwords.enabled:
            rules.append(Text(gettext_noop("Not a password known from data breaches.")))
        return rules


def _character_classes(password: str) -> int:
    classes = [
        any(c.isupper() for c in password),
        any(c.islower() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    return sum(classes)
