"""Does the portal's answer tell whether a name or an address exists? Measured the way an attacker would.

Pairs of requests that differ only in that (a registration with a free name
or a taken one, a sign-in with a wrong password for an account or for nobody,
a reset for an address with an account or without), each from a fresh client
address, interleaved A B B A ... so the machine's drift falls on both alike.
Only the form's POST is timed (its CSRF token fetched before). `compare`
gives each side's median and quartiles and the medians' difference, which
the test holds to a tolerance and bench/enumeration.py prints as JSON.
Plain functions (no pytest): the test and the benchmark share them.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from .portal_client import PortalClient
from .registration import ALLOWED_DOMAIN, form, unique_client_ip, unique_username

# A wrong password that meets every rule (it must reach the directory, not stop at the form).
WRONG_PASSWORD = "Wrong-Horse-Battery-77"  # noqa: S105 - a test password


@dataclass(frozen=True)
class Answer:
    """One timed answer: how long the POST took, its status and where it led."""

    ms: float
    status: int
    location: str


def timed_post(base_url: str, page: str, data: dict[str, str]) -> Answer:
    """GET `page` for its CSRF token, then time the POST of `data` to it alone (no redirect followed)."""
    client = PortalClient(base_url, unique_client_ip())
    token = client.csrf_token(page)
    start = time.perf_counter()
    response = client.http.post(
        client._url(page),  # noqa: SLF001 - the client's own addressing, without its token fetch
        data={**data, "csrfmiddlewaretoken": token},
        headers={"Referer": client._public(page)},  # noqa: SLF001
        allow_redirects=False,
        timeout=60,
    )
    elapsed = (time.perf_counter() - start) * 1000
    client.http.close()
    return Answer(elapsed, response.status_code, response.headers.get("Location", ""))


def interleaved(first: Callable[[int], Answer], second: Callable[[int], Answer], pairs: int) -> tuple[list, list]:
    """`pairs` answers of each, alternating which goes first (A B, B A, ...)."""
    one, other = [], []
    for index in range(pairs):
        if index % 2:
            other.append(second(index))
            one.append(first(index))
        else:
            one.append(first(index))
            other.append(second(index))
    return one, other


def summary(answers: list[Answer]) -> dict[str, float]:
    times = sorted(answer.ms for answer in answers)
    quartiles = statistics.quantiles(times, n=4)
    return {"median_ms": round(statistics.median(times), 2), "q1_ms": round(quartiles[0], 2),
            "q3_ms": round(quartiles[2], 2), "n": len(times)}  # fmt: skip


def median_error(side: dict[str, float]) -> float:
    """The standard error of a median, from its quartiles (normal approximation: 1.2533 sigma / sqrt(n), sigma
    about IQR / 1.349)."""
    return 0.929 * (side["q3_ms"] - side["q1_ms"]) / math.sqrt(side["n"])


def compare(exists: list[Answer], absent: list[Answer]) -> dict:
    """Both sides' distributions, the difference of their medians (exists - absent) and that difference's noise:
    three standard errors, beyond which a difference is the portal's and not the machine's."""
    seen, unseen = summary(exists), summary(absent)
    return {
        "exists": seen,
        "absent": unseen,
        "median_difference_ms": round(seen["median_ms"] - unseen["median_ms"], 2),
        "noise_ms": round(3 * math.hypot(median_error(seen), median_error(unseen)), 2),
        "answers": sorted({(a.status, a.location) for a in exists + absent}),
    }


def timed_bind(bind: Callable[[str, str], object], username: str) -> Answer:
    start = time.perf_counter()
    bind(username, WRONG_PASSWORD)
    return Answer((time.perf_counter() - start) * 1000, 0, "")


def directory_baseline(bind: Callable[[str, str], object], usernames: list[str], attempts_each: int, nobody: str):
    """What the DC itself shows: the same wrong password bound straight to it, for the accounts and for `nobody`
    (the principal the portal binds as for a name that is no person's). The portal should add nothing to it."""
    accounts, nobodies = interleaved(
        lambda index: timed_bind(bind, usernames[index // attempts_each]),
        lambda _: timed_bind(bind, nobody),
        len(usernames) * attempts_each,
    )
    return compare(accounts, nobodies)


def registration(base_url: str, taken_username: str, pairs: int) -> dict:
    """A free name vs a taken one, each with a fresh address (so the address's own limit never counts)."""

    def free(_: int) -> Answer:
        name = unique_username("free")
        return timed_post(base_url, "/register/", form(name, f"{name}@{ALLOWED_DOMAIN}"))

    def taken(_: int) -> Answer:
        return timed_post(base_url, "/register/", form(taken_username, f"{unique_username('tk')}@{ALLOWED_DOMAIN}"))

    free_answers, taken_answers = interleaved(free, taken, pairs)
    return compare(taken_answers, free_answers)


def sign_in(base_url: str, usernames: list[str], attempts_each: int) -> dict:
    """A wrong password for accounts (`attempts_each` per account: under its lockout and rate limit) vs for
    names nobody has."""

    def account(index: int) -> Answer:
        name = usernames[index // attempts_each]
        return timed_post(base_url, "/login/", {"username": name, "password": WRONG_PASSWORD})

    def nobody(_: int) -> Answer:
        return timed_post(base_url, "/login/", {"username": unique_username("none"), "password": WRONG_PASSWORD})

    accounts, nobodies = interleaved(account, nobody, len(usernames) * attempts_each)
    return compare(accounts, nobodies)


def reset(base_url: str, addresses: list[str], attempts_each: int) -> dict:
    """A reset for addresses of enabled accounts vs for addresses nobody registered."""

    def known(index: int) -> Answer:
        return timed_post(base_url, "/password/reset/", {"email": addresses[index // attempts_each]})

    def unknown(_: int) -> Answer:
        return timed_post(base_url, "/password/reset/", {"email": f"{unique_username('nobody')}@{ALLOWED_DOMAIN}"})

    knowns, unknowns = interleaved(known, unknown, len(addresses) * attempts_each)
    return compare(knowns, unknowns)
