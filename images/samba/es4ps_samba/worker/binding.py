"""What an account carries about the registration that owns it, and which of its tasks were applied last.

The worker writes one line into the account's `info` attribute when it creates
the account, and updates it with every change, in the same LDAP modify:

    es4ps registration=<uuid> state=<issued at>/<task id> password=... attributes=... policy=...

- `registration` binds the account to one registration: tasks of any other
  registration are refused before anything is written.
- the marks order the tasks of one account by their signed issue time: an
  older state, password or attribute task never overwrites a newer one, so a
  captured task replayed later changes nothing. Issue times are whole seconds;
  two tasks of one kind issued in the same second are applied in the order
  they arrive.

The line lives in the directory, not on one DC's volume, so every DC's worker
sees the same binding and marks once they have replicated.
"""

from __future__ import annotations

import dataclasses
import re

PREFIX = "es4ps"
# The kinds of change that are ordered, each with its own mark (policy: the account's OU and groups).
STATE, PASSWORD, ATTRIBUTES, POLICY = "state", "password", "attributes", "policy"
KINDS = (STATE, PASSWORD, ATTRIBUTES, POLICY)
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclasses.dataclass(frozen=True)
class Mark:
    issued_at: int
    task_id: str

    def __str__(self) -> str:
        return f"{self.issued_at}/{self.task_id}"

    @classmethod
    def parse(cls, text: str) -> Mark | None:
        issued_at, _, task_id = text.partition("/")
        return cls(int(issued_at), task_id) if issued_at.isdigit() and task_id else None


@dataclasses.dataclass(frozen=True)
class Binding:
    """The registration an account belongs to and its marks (None: the account carries no binding)."""

    registration: str
    marks: dict[str, Mark] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, info: str) -> Binding | None:
        """The binding in an `info` value, or None when it holds none (an account made before bindings)."""
        words = info.split()
        if not words or words[0] != PREFIX:
            return None
        fields = dict(_FIELD.fullmatch(word).groups() for word in words[1:] if _FIELD.fullmatch(word))
        registration = fields.pop("registration", "")
        if not registration:
            return None
        marks = {kind: mark for kind in KINDS if (mark := Mark.parse(fields.get(kind, "")))}
        return cls(registration, marks)

    def __str__(self) -> str:
        marks = " ".join(f"{kind}={self.marks[kind]}" for kind in KINDS if kind in self.marks)
        return f"{PREFIX} registration={self.registration}" + (f" {marks}" if marks else "")

    def applies(self, kind: str, issued_at: int, task_id: str) -> bool:
        """Whether a task of `kind` issued at `issued_at` is newer than what was applied last."""
        mark = self.marks.get(kind)
        if mark is None or issued_at > mark.issued_at:
            return True
        return issued_at == mark.issued_at and task_id != mark.task_id

    def marked(self, kind: str, issued_at: int, task_id: str) -> Binding:
        """This binding with the mark of `kind` moved to the given task."""
        return Binding(self.registration, {**self.marks, kind: Mark(issued_at, task_id)})

    @classmethod
    def new(cls, registration: str, issued_at: int, task_id: str) -> Binding:
        """The binding of an account created by a task: every kind marked by it."""
        return cls(registration, {kind: Mark(issued_at, task_id) for kind in KINDS})
