"""A new password looked up in a breach corpus (spec.directory.passwordPolicy.breachedPasswords), by k-anonymity.

Only the first five hex characters of the password's SHA-1 leave the portal:
as the path asked of the range API (Have I Been Pwned's protocol, or an
organisation's mirror of it), or as the name of a range file on the mounted
volume. The answer holds every suffix of that range with how often it was
seen (`SUFFIX:COUNT`); the match happens here. The API is asked for padding
(`Add-Padding: true`, entries of count 0), so the answer's size does not
tell which range was asked either.

A corpus that cannot be asked (the API away or slow, a range file missing)
never blocks anybody: the password counts as not found, the failure is
counted (es4ps_portal_breached_password_lookups_total{outcome="unavailable"})
and logged, without the prefix.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from es4ps_contract.passwords import BreachedPasswords

from es4ps_portal.metrics import BREACHED_PASSWORD_LOOKUPS

logger = logging.getLogger(__name__)
PREFIX_LENGTH = 5
# A range holds about a thousand entries (some 40 kB); anything far larger is not a range.
MAX_RANGE_BYTES = 2 * 1024 * 1024


class CorpusUnavailable(Exception):
    """The corpus could not be asked; the message says why (never the prefix)."""


def _api_range(url: str, prefix: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - the URL is the domain's rangeURL, checked to be http(s)
        f"{url}{prefix}", headers={"User-Agent": "es4ps-portal", "Add-Padding": "true"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.BREACH_LOOKUP_TIMEOUT_S) as answer:  # noqa: S310
            return answer.read(MAX_RANGE_BYTES).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CorpusUnavailable(f"the range API did not answer ({type(exc).__name__})") from None


def _file_range(directory: Path, prefix: str) -> str:
    for name in (prefix, f"{prefix}.txt", prefix.lower(), f"{prefix.lower()}.txt"):
        path = directory / name
        if path.is_file():
            try:
                return path.read_text(encoding="ascii", errors="replace")
            except OSError as exc:
                raise CorpusUnavailable(f"a range file cannot be read ({type(exc).__name__})") from None
    raise CorpusUnavailable("the range file is missing from the range volume")


def _seen(lines: Iterable[str], suffix: str) -> bool:
    """Whether the range lists `suffix` with a count above 0 (padding entries have 0)."""
    for line in lines:
        candidate, _, count = line.strip().partition(":")
        if candidate.upper() == suffix:
            return count.strip().isdigit() and int(count) > 0
    return False


def _ranges(corpus: BreachedPasswords, prefix: str) -> Iterable[str | CorpusUnavailable]:
    """Each configured source's range for `prefix`, or why it could not be had."""
    sources = []
    if corpus.range_files_claim:
        sources.append(lambda: _file_range(Path(settings.BREACHED_RANGE_FILES_DIR), prefix))
    if corpus.range_url:
        sources.append(lambda: _api_range(corpus.range_url, prefix))
    for source in sources:
        try:
            yield source()
        except CorpusUnavailable as exc:
            yield exc


def is_breached(password: str) -> bool:
    """Whether the domain's breach corpus knows `password`; False without a corpus or when none of it answers."""
    corpus = settings.PASSWORD_POLICY.breached_passwords
    if not corpus.enabled:
        return False
    digest = hashlib.sha1(password.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the protocol's hash
    prefix, suffix = digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]
    answered = False
    for answer in _ranges(corpus, prefix):
        if isinstance(answer, CorpusUnavailable):
            logger.warning("the breached-password corpus was not asked: %s", answer)
            continue
        answered = True
        if _seen(answer.splitlines(), suffix):
            BREACHED_PASSWORD_LOOKUPS.labels("breached").inc()
            return True
    BREACHED_PASSWORD_LOOKUPS.labels("clean" if answered else "unavailable").inc()
    return False
