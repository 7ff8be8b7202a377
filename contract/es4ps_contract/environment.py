"""Settings from the environment: each process declares its variables once and reads them typed.

The operator writes the variables of every container it starts; the portal,
the DC entrypoint and the worker each read theirs through one `Environment`
built from one declaration (`Variable`s). The same declarations produce the
tables of docs/interfaces.md (`render_table`; es4ps_devtools.docs finds the
declarations a document names and rewrites its tables, checked by a unit
test), and the operator's unit tests feed its builders' output into each
reader, so a name changed on one side only fails a test instead of a Pod.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingError(ValueError):
    """A variable is missing or malformed; the message names it and says what is expected."""


@dataclass(frozen=True)
class Variable:
    """One environment variable of a process: its name, what it means, and its default (None: required)."""

    name: str
    meaning: str
    default: str | None = None
    # A variable whose value is the path of a file holding a secret: only the path travels in the environment.
    secret_file: bool = False

    @property
    def required(self) -> bool:
        return self.default is None


class Environment:
    """The declared variables of one process, read from `environ` with type and range checks."""

    def __init__(self, variables: Iterable[Variable], environ: Mapping[str, str]) -> None:
        self.variables = {variable.name: variable for variable in variables}
        self.environ = environ

    def _variable(self, name: str) -> Variable:
        try:
            return self.variables[name]
        except KeyError:
            raise AssertionError(f"{name} is read but not declared") from None

    def text(self, name: str) -> str:
        """The stripped value, the default when unset or blank; SettingError when a required one is missing."""
        variable = self._variable(name)
        value = self.environ.get(name, "").strip()
        if value:
            return value
        if variable.required:
            raise SettingError(f"{name} is not set ({variable.meaning})")
        return variable.default or ""

    def raw(self, name: str) -> str:
        """The value as given (multi-line values keep their layout), or the default."""
        variable = self._variable(name)
        value = self.environ.get(name)
        if value is None or not value.strip():
            if variable.required:
                raise SettingError(f"{name} is not set ({variable.meaning})")
            return variable.default or ""
        return value

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
        text = self.text(name)
        try:
            value = int(text)
        except ValueError:
            raise SettingError(f"{name} must be a whole number, not {text[:40]!r}") from None
        _check_range(name, value, minimum, maximum)
        return value

    def number(self, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
        text = self.text(name)
        try:
            value = float(text)
        except ValueError:
            raise SettingError(f"{name} must be a number, not {text[:40]!r}") from None
        if not math.isfinite(value):
            raise SettingError(f"{name} must be a finite number")
        _check_range(name, value, minimum, maximum)
        return value

    def flag(self, name: str) -> bool:
        text = self.text(name).lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no", ""):
            return False
        raise SettingError(f"{name} must be true or false, not {text[:40]!r}")

    def choice(self, name: str, choices: Iterable[str]) -> str:
        choices = tuple(choices)
        value = self.text(name)
        if value not in choices:
            raise SettingError(f"{name} must be one of {', '.join(choices)}, not {value[:40]!r}")
        return value

    def file_text(self, name: str) -> str:
        """The content of the file the variable names (a mounted Secret), without surrounding blanks.

        Secrets travel as files, never as values, so they do not show up in
        `ps`, /proc/<pid>/environ or a Pod's description.
        """
        path = self.text(name)
        if not path:
            return ""
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise SettingError(f"cannot read the file named by {name}: {exc.strerror}") from None
        if not value:
            raise SettingError(f"the file named by {name} is empty")
        return value


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise SettingError(f"{name} must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingError(f"{name} must be at most {maximum:g}")


def render_table(variables: Iterable[Variable]) -> str:
    """A Markdown table of the variables (what docs/interfaces.md shows)."""
    lines = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for variable in variables:
        if variable.required:
            default = "required"
        elif variable.default == "":
            default = "unset"
        else:
            default = f"`{variable.default}`"
        meaning = variable.meaning.replace("|", "\\|") + (
            " (a file: the secret stays out of the environment)" if variable.secret_file else ""
        )
        lines.append(f"| `{variable.name}` | {meaning} | {default} |")
    return "\n".join(lines)
