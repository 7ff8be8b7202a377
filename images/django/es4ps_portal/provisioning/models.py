"""The tasks published for each account (the table keeps its first name, accounts_provisioningtask)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from es4ps_contract.events import REASON_MAX_LENGTH
from es4ps_contract.tasks import Operation

OPERATION_LABELS = {
    Operation.CREATE_USER: _("create the account"),
    Operation.ENABLE_USER: _("enable the account"),
    Operation.DISABLE_USER: _("disable the account"),
    Operation.UPDATE_ATTRIBUTES: _("update your name"),
    Operation.SET_PASSWORD: _("set the password"),
    Operation.DELETE_USER: _("delete the account"),
    Operation.APPLY_POLICY: _("move the account to its OU and groups"),
}


class ProvisioningTask(models.Model):
    """One task for the directory workers: in the outbox until the relay publishes it, then what became of it."""

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        # The worker did not apply it on purpose (a newer change of the same kind was): never "done".
        NOT_APPLIED = "not_applied", _("not applied")

    task_id = models.UUIDField(unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provisioning_tasks")
    operation = models.CharField(max_length=32, choices=[(op.value, label) for op, label in OPERATION_LABELS.items()])
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The outbox: the validated task's fields (any password in them sealed for the workers) wait here until
    # the relay has signed them and has the broker's confirmation; then published_at is set and they are dropped.
    # Signed when sent, so an envelope's issue time is when it left the portal (the outbox module says why).
    payload = models.JSONField(null=True, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)
    # A new account's "create user" is held until the person proves the address: the relay leaves it, and an
    # unconfirmed registration that expires takes it along, so the directory never sees that registration.
    held = models.BooleanField(default=False, editable=False)

    class Meta:
        db_table = "accounts_provisioningtask"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The status page's question: one account's newest tasks, without sorting all of its tasks.
            models.Index(fields=["user", "-created_at", "-id"], name="task_user_newest"),
            # The relay's question: the tasks still to publish (not held), in the order they were written.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True, held=False), name="task_outbox_ready"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} for {self.user.username}: {self.state}"

    @property
    def label(self) -> str:
        return OPERATION_LABELS[Operation(self.operation)]
