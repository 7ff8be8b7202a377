"""The tasks published for each account or computer (the table keeps its first name, accounts_provisioningtask),
and the domain's computers as the workers last reported them."""

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
    Operation.PRESTAGE_COMPUTER: _("pre-stage the computer"),
    Operation.ENABLE_COMPUTER: _("enable the computer"),
    Operation.DISABLE_COMPUTER: _("disable the computer"),
    Operation.RESET_COMPUTER: _("reset the computer"),
    Operation.MOVE_COMPUTER: _("move the computer"),
    Operation.DELETE_COMPUTER: _("delete the computer"),
    Operation.REPORT_COMPUTERS: _("report the domain's computers"),
}


class Computer(models.Model):
    """A computer of the domain: one the portal pre-staged (`record_id`, which its directory object carries), or
    one the workers reported that someone else joined (no `record_id`: listed, never acted on).

    The facts (OS, last logon, where it is, enabled, joined) are the newest
    report's (`reported_at`); a task's result updates what it changed.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("being pre-staged")
        PRESENT = "present", _("in the directory")
        FAILED = "failed", _("pre-staging failed")

    name = models.CharField(_("name"), max_length=64, unique=True)
    # The portal's record of a computer it pre-staged (the tasks' computer_id); None for any other computer.
    record_id = models.UUIDField(_("record"), null=True, blank=True, unique=True, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PRESENT)
    # The OU under the product's computers OU the portal last asked for ("" is the computers OU itself).
    ou = models.CharField(_("OU"), max_length=64, blank=True)
    container = models.CharField(_("where"), max_length=1024, blank=True)
    operating_system = models.CharField(_("operating system"), max_length=128, blank=True)
    os_version = models.CharField(_("OS version"), max_length=64, blank=True)
    last_logon = models.DateTimeField(_("last logon"), null=True, blank=True)
    enabled = models.BooleanField(_("enabled"), null=True)
    joined = models.BooleanField(_("joined"), default=False)
    reported_at = models.DateTimeField(_("reported at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The person who pre-staged it from their account page (their policy's computers.perPerson); None: staff's
    # or someone else's. Their computer stays in the domain, staff's to manage, when their record goes.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="computers",
    )

    class Meta:
        ordering = ["name"]
        permissions = [("manage_computers", _("Can pre-stage, disable, enable, reset, move and delete computers"))]

    def __str__(self) -> str:
        return self.name

    @property
    def username(self) -> str:
        """Its directory account's name (what its tasks and the audit trail name)."""
        return f"{self.name}$"

    @property
    def registration_id(self):
        """What the audit trail records as the subject's binding: the portal's record of the computer."""
        return self.record_id


class ProvisioningTask(models.Model):
    """One task for the directory workers: in the outbox until the relay publishes it, then what became of it."""

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        # The worker did not apply it on purpose (a newer change of the same kind was): never "done".
        NOT_APPLIED = "not_applied", _("not applied")

    task_id = models.UUIDField(unique=True, editable=False)
    # The account or the computer it acts on (neither: a report of the domain's computers).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provisioning_tasks", null=True, blank=True
    )
    computer = models.ForeignKey(Computer, on_delete=models.CASCADE, related_name="tasks", null=True, blank=True)
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
        return f"{self.operation} for {self.subject_name}: {self.state}"

    @property
    def subject_name(self) -> str:
        """The directory account the task acts on: the username its result event names ("" for a report)."""
        subject = self.user or self.computer
        return subject.username if subject is not None else ""

    @property
    def label(self) -> str:
        return OPERATION_LABELS[Operation(self.operation)]
