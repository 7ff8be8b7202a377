"""Does the portal's answer time tell whether an address or a name exists? Prints JSON.

Starts the real pieces the reset and registration pages touch, as the tests
do: RabbitMQ with mutual TLS, the SMTP server that catches the mails, and the
portal itself (`es4ps-portal serve` with `--workers` gunicorn processes, and
`es4ps-portal consume`, whose mail relay sends the queued mails). Each run
makes fresh enabled accounts with confirmed addresses in the portal's
database (what a reset looks up; no DC is needed for it), then times, from a
fresh client address each (es4ps_testkit.enumeration: A B / B A interleaved,
only the POST timed):

- `reset`: the reset form for an account's address vs an address nobody
  registered (`--attempts` per address: under its rate limit);
- `register`: the registration form with a free name vs a taken one.

Per run: each side's median and quartiles, the medians' difference
(`median_difference_ms`, exists - absent) and its noise (three standard
errors). The top level gives the medians over the runs of each difference;
`reset_mails` (the consumer's es4ps_portal_mails_total for resets by address)
shows the relay did the work after the answers: `sent` for the accounts'
addresses, `nothing` for nobody's.

    .venv/bin/python bench/enumeration.py [--runs 5] [--accounts 10] [--attempts 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics

from es4ps_localcluster.processes import wait_until
from es4ps_testkit import enumeration
from es4ps_testkit.live_portal import LivePortal
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.metrics import scrape
from es4ps_testkit.registration import ALLOWED_DOMAIN, unique_username
from es4ps_testkit.standalone_portal import standalone_portal

# Enabled accounts with confirmed addresses, as a registration ends up (the portal's own models, its database).
MAKE_ACCOUNTS = """
import sys
from django.utils import timezone
from es4ps_portal.accounts.models import User
for name in sys.argv[1:]:
    User.objects.create(username=name, email=name + "@{domain}", directory_state=User.DirectoryState.ENABLED,
                        email_verified_at=timezone.now(), is_active=True)
"""


def make_accounts(portal: LivePortal, count: int) -> list[str]:
    """`count` new enabled accounts; their addresses."""
    names = [unique_username("bench") for _ in range(count)]
    script = MAKE_ACCOUNTS.replace("{domain}", ALLOWED_DOMAIN)
    portal.manage("shell", "-c", f"import sys; sys.argv = ['x', *{names!r}]\n{script}")
    return [f"{name}@{ALLOWED_DOMAIN}" for name in names]


def one_run(portal: LivePortal, mail: MailCatcher, accounts: int, attempts: int) -> dict:
    addresses = make_accounts(portal, accounts)
    reset = enumeration.reset(portal.url, addresses, attempts)
    registered = unique_username("taken")
    portal.client(enumeration.unique_client_ip()).register(registered, f"{registered}@{ALLOWED_DOMAIN}")
    register = enumeration.registration(portal.url, registered, accounts * attempts)
    # Every reset of an account's address is mailed (by the relay, after the answer).
    wait_until(
        lambda: all(len(mail.mails_to(address)) == attempts for address in addresses),
        120,
        "the mail relay sending every reset mail",
    )
    return {"reset": reset, "register": register}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=10, help="accounts per run (each reset --attempts times)")
    parser.add_argument("--attempts", type=int, default=3, help="resets per address (its rate limit: 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()

    with standalone_portal("es4ps-bench-enumeration-", args.workers) as services:
        portal, mail = services.portal, services.mail
        one_run(portal, mail, 3, 1)  # warm-up: connections, caches, templates
        per_run = [one_run(portal, mail, args.accounts, args.attempts) for _ in range(args.runs)]
        consumer = scrape(portal.consumer_metrics_url)
        reset_mails = {
            outcome: consumer.value("es4ps_portal_mails_total", kind="reset_by_address", outcome=outcome)
            for outcome in ("sent", "nothing")
        }

    result = {
        action: {
            "median_difference_ms": statistics.median(r[action]["median_difference_ms"] for r in per_run),
            "median_noise_ms": statistics.median(r[action]["noise_ms"] for r in per_run),
            "exists_median_ms": statistics.median(r[action]["exists"]["median_ms"] for r in per_run),
            "absent_median_ms": statistics.median(r[action]["absent"]["median_ms"] for r in per_run),
            "answers": sorted({tuple(a) for r in per_run for a in r[action]["answers"]}),
        }
        for action in ("reset", "register")
    }
    result.update(
        runs=args.runs,
        pairs_per_run=args.accounts * args.attempts,
        gunicorn_workers=args.workers,
        reset_mails=reset_mails,
        per_run=per_run,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
