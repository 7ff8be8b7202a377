"""Reading settings from the environment: one place for required values, numbers and secret files."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def required(name: str) -> str:
    """The value of a variable that must be set and non-empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set (see docs/interfaces.md)")
    return value


def integer(name: str, default: int, minimum: int = 0) -> int:
    """A whole number of at least `minimum` from the environment, or `default` when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}")
    return number


def secret_from_file(name: str, *, required_: bool = True) -> str:
    """The content of the file named by variable `name` (a mounted Secret), stripped of surrounding blanks.

    Secrets travel as files, never as variable values, so they do not show up in
    `ps`, /proc/<pid>/environ or a pod description.
    """
    path = os.environ.get(name, "").strip()
    if not path:
        if required_:
            raise ImproperlyConfigured(f"{name} must name a file (see docs/interfaces.md)")
        return ""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read the file named by {name}: {exc.strerror}") from None
    if not value:
        raise ImproperlyConfigured(f"the file named by {name} is empty")
    return value
