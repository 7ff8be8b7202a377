"""How soon a domain workstation follows the portal: login time, staff disable, password change. Prints JSON.

Starts the real pipeline as the tests do (RabbitMQ with mutual TLS, a Samba DC
from its entrypoint, the worker, the SMTP server, the portal's `serve` and
`consume` with the tests' policies) and a Debian workstation joined by the
domain's administrator (es4ps_testkit.workstation: winbind, pam_winbind,
pam_mkhomedir). Each run registers and confirms one person, then measures:

- `login_s`: one console login through PAM (`pamtester login`: authenticate,
  account, session) with the right password;
- `disable_to_refused_s`: staff choose "disable" in the admin -> the start of
  the first login on the workstation that is refused (logins tried back to back);
- `enable_to_login_s`: staff choose "enable" -> the first login that works again;
- `password_change_to_login_s`: the person submits a new password in the portal
  -> its status page says the change is done and a login with the new password
  works (a refused login costs the `login` service's 3 s fail delay, so the new
  password is tried once the portal says so).

Figures are medians over `--runs`; `per_run` keeps each run's.

    .venv/bin/python bench/workstation.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from es4ps_localcluster.processes import wait_until
from es4ps_testkit.ca import ThrowawayCA
from es4ps_testkit.live_portal import LIVE_POLICY_ENV, LivePortal, staff_action
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.rabbitmq import RabbitMQ
from es4ps_testkit.registration import GOOD_PASSWORD, unique_username
from es4ps_testkit.samba import SambaDC
from es4ps_testkit.worker import ContractKeys, DirectoryWorker
from es4ps_testkit.workstation import Workstation

NEW_PASSWORD = "Bench-Horse-4711"  # noqa: S105 - a bench password


def one_run(portal: LivePortal, mail: MailCatcher, workstation: Workstation) -> dict[str, float]:
    """Register one person and time what the workstation sees of the portal's changes."""
    username = unique_username("ws")
    person = portal.ready_person(mail, username)
    started = time.perf_counter()
    if not workstation.login(username, GOOD_PASSWORD):
        raise RuntimeError(f"{username} cannot log in on the workstation")
    login_s = time.perf_counter() - started
    staff = portal.signed_in_staff()
    pk = portal.user_pk(username)

    def first_refused() -> float | None:
        attempt = time.perf_counter()
        return None if workstation.login(username, GOOD_PASSWORD) else attempt

    started = time.perf_counter()
    staff_action(staff, "disable", username, pk)
    disable_s = wait_until(first_refused, 120, "a refused login", interval_s=0) - started
    started = time.perf_counter()
    staff_action(staff, "enable", username, pk)
    wait_until(lambda: workstation.login(username, GOOD_PASSWORD), 120, "a login after the enable", interval_s=0.2)
    enable_s = time.perf_counter() - started

    person.login(username, GOOD_PASSWORD)
    started = time.perf_counter()
    person.post(
        "/account/password/",
        {"current_password": GOOD_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    person.wait_for_status(
        lambda s: any(t["operation"] == "set_password" and t["state"] == "done" for t in s["tasks"]), 120
    )
    if not workstation.login(username, NEW_PASSWORD):
        raise RuntimeError("the new password does not log in once the portal says it is set")
    password_s = time.perf_counter() - started
    return {
        "login_s": login_s,
        "disable_to_refused_s": disable_s,
        "enable_to_login_s": enable_s,
        "password_change_to_login_s": password_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="people measured; medians are reported (default 5)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="es4ps-bench-"))
    ca = ThrowawayCA(base / "ca")
    broker, dc, mail = RabbitMQ(base / "rabbitmq", ca), SambaDC(base / "samba", ca), MailCatcher()
    worker = portal = workstation = None
    try:
        broker.start()
        dc.start()
        mail.start()
        keys = ContractKeys(base / "keys")
        worker = DirectoryWorker(base / "worker", {**broker.worker_env, **dc.worker_env, **keys.worker_env})
        worker.start()
        env = {**broker.portal_env, **dc.portal_env, **keys.portal_env, **mail.portal_env, **LIVE_POLICY_ENV}
        portal = LivePortal(base / "portal", env)
        portal.start()
        workstation = Workstation(base / "workstation", dc)
        workstation.start()
        workstation.join()
        runs = [one_run(portal, mail, workstation) for _ in range(args.runs)]
    finally:
        for service in (workstation, portal, worker):
            if service is not None:
                (getattr(service, "close", None) or service.stop)()
        mail.stop()
        dc.close()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    result = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    result.update(runs=args.runs, per_run=[{key: round(value, 2) for key, value in r.items()} for r in runs])
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
