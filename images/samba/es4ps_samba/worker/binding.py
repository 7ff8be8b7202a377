"""What an account carries about the registration that owns it, and which of its tasks were applied last.

The worker writes one line into the account's `adminDescription` when it
creates the account, and updates it with every change, in the same LDAP modify:

    es4ps registration=<uuid> state=<issued at>/<task id> password=... attributes=... policy=... mac=<...>

- `registration` binds the account to one registration: tasks of any other
  registration are refused before anything is written.
- the marks order the tasks of one account by their signed issue time: an
  older state, password, attribute or policy task never overwrites a newer
  one, so a captured task replayed later changes nothing. Issue times are
  whole seconds; two tasks of one kind issued in the same second are applied
  in the order they arrive.
- `mac` authenticates the line and the account's name (HMAC-SHA256 with a key
  derived from the domain's sealing private key, which only workers hold).

Only the worker writes the line: SELF cannot write `adminDescription` (no
property set of the user class holds it, unlike `info`, where the line lived
before), and the managed OU denies writing it to everyone but the worker's
account (es4ps_samba.dc.access); the MAC catches whoever writes it anyway (an
administrator, a delegation the deny does not reach).

A line whose MAC does not verify (or a line of an earlier version, in `info`,
without one) keeps its registration but loses its marks: nothing it says
orders or skips a task. What the worker then does is the directory module's
rule (restrictive staff actions apply whatever the line names; see there).
Parsing never raises: junk, non-ASCII digits or huge numbers read as no mark.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re

from ..managed import BINDING_ATTRIBUTE

PREFIX = "es4ps"
# Where the line lives, and where lines of earlier versions lived (read only when the first is empty).
ATTRIBUTE = BINDING_ATTRIBUTE
LEGACY_ATTRIBUTE = "info"
# The kinds of change that are ordered, each with its own mark (policy: the account's OU and groups).
STATE, PASSWORD, ATTRIBUTES, POLICY = "state", "password", "attributes", "policy"
KINDS = (STATE, PASSWORD, ATTRIBUTES, POLICY)
# What a task of a kind meets when its mark is already there, or a newer task's is (`Binding.standing`).
ALREADY_APPLIED, SUPERSEDED = "already applied", "superseded"
MAC_FIELD = "mac"
_FIELD = re.compile(r"([a-z]{1,16})=([!-~]{1,128})")
_REGISTRATION = re.compile(r"[0-9A-Za-z-]{1,64}")
# Whole seconds up to the year 5138, ASCII digits only ('²'.isdigit() is True, int('²') raises).
_MARK = re.compile(r"([0-9]{1,11})/([0-9A-Za-z-]{1,64})")
_MAC_CONTEXT = b"es4ps binding mac v1"
_MAC_LENGTH = 16  # bytes of HMAC-SHA256 kept (128 bits)


def binding_key(sealing_private_key: bytes) -> bytes:
    """The MAC key of binding lines, derived from the domain's sealing private key (workers only hold it)."""
    return hmac.new(sealing_private_key, _MAC_CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, username: str, body: str) -> str:
    digest = hmac.new(key, f"{username.casefold()}\n{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_MAC_LENGTH]).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class Mark:
    issued_at: int
    task_id: str

    def __str__(self) -> str:
        return f"{self.issued_at}/{self.task_id}"

    @classmethod
    def parse(cls, text: str) -> Mark | None:
        match = _MARK.fullmatch(text)
        return cls(int(match.group(1)), match.group(2)) if match else None


@dataclasses.dataclass(frozen=True)
class Binding:
    """The registration an account belongs to, its marks, and whether the line's MAC verified."""

    registration: str
    marks: dict[str, Mark] = dataclasses.field(default_factory=dict)
    authentic: bool = True

    @classmethod
    def parse(cls, line: str, key: bytes, username: str) -> Binding | None:
        """The binding in `line`, or None when it holds none (an account the product never bound)."""
        words = line.split()
        if not words or words[0] != PREFIX:
            return None
        fields = {}
        for word in words[1:]:
            match = _FIELD.fullmatch(word)
            if match:
                fields.setdefault(match.group(1), match.group(2))
        registration = fields.get("registration", "")
        if not _REGISTRATION.fullmatch(registration):
            return None
        marks = {kind: mark for kind in KINDS if (mark := Mark.parse(fields.get(kind, "")))}
        binding = cls(registration, marks)
        mac = fields.get(MAC_FIELD, "")
        if mac and hmac.compare_digest(mac, _mac(key, username, binding._body())):
            return binding
        return cls(registration, {}, authentic=False)

    def _body(self) -> str:
        marks = " ".join(f"{kind}={self.marks[kind]}" for kind in KINDS if kind in self.marks)
        return f"{PREFIX} registration={self.registration}" + (f" {marks}" if marks else "")

    def line(self, key: bytes, username: str) -> str:
        """The line to write: the binding and its MAC over the account's name and the binding."""
        body = self._body()
        return f"{body} {MAC_FIELD}={_mac(key, username, body)}"

    def applies(self, kind: str, issued_at: int, task_id: str) -> bool:
        """Whether a task of `kind` issued at `issued_at` is newer than what was applied last."""
        mark = self.marks.get(kind)
        if mark is None or issued_at > mark.issued_at:
            return True
        return issued_at == mark.issued_at and task_id != mark.task_id

    def standing(self, kind: str, issued_at: int, task_id: str) -> str | None:
        """ALREADY_APPLIED when the mark of `kind` is this very task's, SUPERSEDED when a newer task of `kind` was
        applied; None when the task applies."""
        if self.marks.get(kind) == Mark(issued_at, task_id):
            return ALREADY_APPLIED
        if not self.applies(kind, issued_at, task_id):
            return SUPERSEDED
        return None

    def marked(self, kind: str, issued_at: int, task_id: str) -> Binding:
        """This binding with the mark of `kind` moved to the given task (an authentic binding once written)."""
        return Binding(self.registration, {**self.marks, kind: Mark(issued_at, task_id)})

    @classmethod
    def new(cls, registration: str, issued_at: int, task_id: str) -> Binding:
        """The binding of an account created by a task: every kind marked by it."""
        return cls(registration, {kind: Mark(issued_at, task_id) for kind in KINDS})
