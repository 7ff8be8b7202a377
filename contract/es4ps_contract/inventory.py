"""The domain's computers as a worker reports them: the result of a `report_computers` task.

A worker reads every computer object of the domain (the DCs, computers joined
by an administrator, those the portal pre-staged) and sends what staff see of
each in the result event, which it signs like every result. The portal keeps
the list for its admin and acts only on the computers it pre-staged
(`computer_id`: the record an authentic binding line names).

Everything here came from the directory, where some of it is written by the
computers themselves (their operating system): each value is bounded and
checked for its type when the portal reads it, never trusted further.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

# How many computers one report may hold (a larger domain reports this many, and says so in the worker's log).
MAX_REPORTED = 20000
_TEXT_MAX_LENGTH = {"name": 64, "container": 1024, "operating_system": 128, "os_version": 64, "computer_id": 64}


@dataclass(frozen=True)
class ComputerFacts:
    """One computer of the domain as the directory describes it."""

    name: str  # its sAMAccountName without the "$"
    container: str  # where it is: its parent's DN without the domain's part, e.g. "OU=Labs,OU=Computers,OU=ES4PS"
    operating_system: str
    os_version: str
    last_logon: int  # Unix seconds of its last logon the DC knows of; 0: never
    enabled: bool
    joined: bool  # it has joined (a join sets its DNS host name); a pre-staged computer has not yet
    computer_id: str = ""  # the portal's record its authentic binding line names ("" for any other computer)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: object) -> ComputerFacts:
        """Rebuild one entry of a report; raises ValueError when it is malformed."""
        if not isinstance(value, dict) or set(value) - {field.name for field in fields(cls)}:
            raise ValueError("a reported computer must be a mapping of its known fields")
        text = {key: value.get(key, "") for key in _TEXT_MAX_LENGTH}
        if not all(isinstance(item, str) and len(item) <= _TEXT_MAX_LENGTH[key] for key, item in text.items()):
            raise ValueError("a reported computer's text field is not a bounded string")
        last_logon, enabled, joined = value.get("last_logon"), value.get("enabled"), value.get("joined")
        if not isinstance(last_logon, int) or isinstance(last_logon, bool) or not 0 <= last_logon < 2**32:
            raise ValueError("a reported computer's last_logon is not a time")
        if not isinstance(enabled, bool) or not isinstance(joined, bool) or not text["name"]:
            raise ValueError("a reported computer needs a name, enabled and joined")
        return cls(last_logon=last_logon, enabled=enabled, joined=joined, **text)


def parse_report(value: object) -> tuple[ComputerFacts, ...]:
    """The computers of a result event's `computers` list; raises ValueError when it is malformed."""
    if not isinstance(value, list) or len(value) > MAX_REPORTED:
        raise ValueError(f"computers must be a list of at most {MAX_REPORTED} entries")
    return tuple(ComputerFacts.from_dict(item) for item in value)


def unix_time(filetime: int) -> int:
    """A Windows FILETIME (100 ns since 1601, what AD's logon times are) in Unix seconds; 0 for none."""
    seconds = filetime / 10_000_000 - 11_644_473_600
    return int(seconds) if math.isfinite(seconds) and 0 < seconds < 2**32 else 0
