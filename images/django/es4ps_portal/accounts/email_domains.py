"""Which e-mail domains may register, compared as DNS names.

Domains are compared label by label after IDNA (UTS #46) normalisation, never
as patterns: `acme.example` admits `acme.example` and `mail.acme.example`,
but not `acmeXexample`, `acme.example.evil` or `evil-acme.example`, and a
look-alike (`аcme.example` with a Cyrillic `а`) is a different name.
"""

from __future__ import annotations

import idna

# RFC 1035: a name is at most 253 characters, a label at most 63 (in A-label form).
_MAX_NAME_LENGTH = 253


class InvalidDomain(ValueError):
    """The text is not a valid DNS name."""


def canonical_domain(name: str) -> str:
    """Return the IDNA A-label form of `name` in lower case (e.g. `xn--bcher-kva.example`).

    Raises InvalidDomain for anything that is not a usable host name, including
    a trailing dot, empty labels and disallowed code points.
    """
    if not name or name.endswith(".") or name.startswith("."):
        raise InvalidDomain("the domain is not a valid name")
    try:
        # uts46 maps case and compatibility forms (e.g. full-width letters) the way
        # resolvers do; the result is what the mail system would deliver to.
        ascii_name = idna.encode(name, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomain("the domain is not a valid name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > _MAX_NAME_LENGTH or len(labels) < 2 or not all(labels):
        raise InvalidDomain("the domain is not a valid name")
    return ascii_name


def display_domain(ascii_name: str) -> str:
    """The Unicode (U-label) form of a canonical domain, as people read it."""
    return idna.decode(ascii_name)


def is_allowed(domain: str, allowed_domains: tuple[str, ...]) -> bool:
    """Whether `domain` equals one of the canonical `allowed_domains` or is a subdomain of one."""
    try:
        candidate = canonical_domain(domain)
    except InvalidDomain:
        return False
    return any(candidate == allowed or candidate.endswith("." + allowed) for allowed in allowed_domains)


def parse_allowed_domains(text: str) -> tuple[str, ...]:
    """Parse the comma-separated setting into canonical names; raise InvalidDomain naming a bad entry."""
    domains = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            domains.append(canonical_domain(entry))
        except InvalidDomain:
            raise InvalidDomain(f"{entry!r} is not a valid domain name") from None
    if not domains:
        raise InvalidDomain("no allowed e-mail domain is given")
    return tuple(dict.fromkeys(domains))
