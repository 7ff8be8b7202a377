"""The portal's queries that run per request or per job round, and the index each must use at campus size.

Used in-process (SQLite, the test settings) and inside `es4ps-portal manage shell`
against PostgreSQL (`python -c` cannot reach a test module there):

    es4ps-portal manage shell -c "from es4ps_testkit.portal_queries import print_plans; print_plans()"
"""

from __future__ import annotations

import json


def hot_queries() -> dict[str, tuple[object, str]]:
    """name -> (queryset, the index its plan must name)."""
    from django.utils import timezone
    from es4ps_portal.accounts.models import User
    from es4ps_portal.provisioning.expiry import expired_registrations
    from es4ps_portal.provisioning.models import ProvisioningTask
    from es4ps_portal.provisioning.outbox import outbox_waiting

    return {
        # Every registration, and every failed login: is the name or the address taken (any case)?
        "username_taken": (User.objects.named("Some.Body"), "user_username_lower"),
        "address_taken": (User.objects.with_address("Some.Body@Example.org"), "unique_email_address"),
        # The expiry job's round.
        "expiry_round": (expired_registrations(timezone.now()), "user_unverified_joined"),
        # The admin's user list, newest first (its first page).
        "admin_list": (User.objects.order_by("-date_joined", "-id")[:100], "user_joined"),
        # The status page: one account's newest tasks.
        "status_tasks": (ProvisioningTask.objects.filter(user_id=1)[:10], "task_user_newest"),
        # The outbox relay's round, every half second on every replica: the tasks still to publish, in order.
        "outbox_round": (outbox_waiting()[:100], "task_outbox"),
    }


def plans() -> dict[str, dict[str, str]]:
    """name -> {"index": wanted index, "plan": the database's plan}. On PostgreSQL sequential scans are
    switched off for the session, so the plan shows whether an index can serve (a tiny table never needs one)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
    return {name: {"index": index, "plan": queryset.explain()} for name, (queryset, index) in hot_queries().items()}


def print_plans() -> None:
    print(json.dumps(plans()))
