"""A campus-size portal database: people as registrations leave them, written in bulk through the models.

Run inside the portal's own process environment (its settings, its database),
e.g. by bench/portal_scale.py:

    es4ps-portal manage shell -c "from es4ps_testkit.portal_fill import fill_users; fill_users(50000, 'x.example')"
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from es4ps_contract.tasks import Operation

BATCH = 2000
# One registration in this many was never verified (it waits for the expiry job).
UNVERIFIED_EVERY = 20


def fill_users(count: int, email_domain: str, prefix: str = "fill") -> None:
    """Add `count` people: most verified with an enabled account and their create and enable tasks done,
    every UNVERIFIED_EVERY-th registered but never verified; registered over the last `count` minutes."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone
    from es4ps_portal.accounts.models import User
    from es4ps_portal.provisioning.models import ProvisioningTask

    now = timezone.now()
    unusable = make_password(None)
    for first in range(0, count, BATCH):
        numbers = range(first, min(first + BATCH, count))
        people = []
        for i in numbers:
            verified = i % UNVERIFIED_EVERY != 0
            joined = now - timedelta(minutes=count - i)
            people.append(
                User(
                    username=f"{prefix}{i}",
                    email=f"{prefix}{i}@{email_domain}",
                    first_name="Fill",
                    last_name=f"Person{i}",
                    password=unusable,
                    date_joined=joined,
                    email_verified_at=joined + timedelta(minutes=5) if verified else None,
                    directory_state=User.DirectoryState.ENABLED if verified else User.DirectoryState.CREATED,
                )
            )
        with transaction.atomic():
            User.objects.bulk_create(people)
            saved = User.objects.filter(username__in=[p.username for p in people]).values_list("pk", "username")
            verified_pks = [pk for pk, name in saved if int(name[len(prefix) :]) % UNVERIFIED_EVERY != 0]
            tasks = [
                ProvisioningTask(
                    task_id=uuid.uuid4(), user_id=pk, operation=operation, state=ProvisioningTask.State.DONE
                )
                for pk in verified_pks
                for operation in (Operation.CREATE_USER.value, Operation.ENABLE_USER.value)
            ]
            ProvisioningTask.objects.bulk_create(tasks)
