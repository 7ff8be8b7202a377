"""Users, the tasks published for them and the tokens mailed to them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from es4ps_contract.events import REASON_MAX_LENGTH
from es4ps_contract.tasks import Operation

OPERATION_LABELS = {
    Operation.CREATE_USER: "create the account",
    Operation.ENABLE_USER: "enable the account",
    Operation.DISABLE_USER: "disable the account",
    Operation.UPDATE_ATTRIBUTES: "update your name",
    Operation.SET_PASSWORD: "set the password",
    Operation.DELETE_USER: "delete the account",
}


class User(AbstractUser):
    """A person with a directory account (or a staff member of the portal).

    End users have no usable password here: the directory owns it, and login
    checks it with an LDAP bind. Staff keep a local password for the admin.
    """

    class DirectoryState(models.TextChoices):
        NONE = "", "not in the directory"
        PENDING = "pending", "being created"
        CREATED = "created", "created, disabled"
        ENABLED = "enabled", "enabled"
        FAILED = "failed", "failed"

    email = models.EmailField("e-mail address", max_length=254, blank=True)
    email_verified_at = models.DateTimeField("e-mail verified at", null=True, blank=True)
    directory_state = models.CharField(
        "directory account", max_length=16, choices=DirectoryState.choices, default="", blank=True
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="unique_email_address"),
        ]

    @property
    def is_email_verified(self) -> bool:
        return self.email_verified_at is not None


class ProvisioningTask(models.Model):
    """One task published to the directory workers, and what became of it."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    task_id = models.UUIDField(unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="provisioning_tasks")
    operation = models.CharField(max_length=32, choices=[(op.value, label) for op, label in OPERATION_LABELS.items()])
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.operation} for {self.user.username}: {self.state}"

    @property
    def label(self) -> str:
        return OPERATION_LABELS[Operation(self.operation)]


class EmailToken(models.Model):
    """A single-use token mailed to a user: a long one for the link and a short code to type in.

    Only digests are stored, so a copy of the database does not verify anybody.
    """

    class Purpose(models.TextChoices):
        VERIFY_EMAIL = "verify", "verify the e-mail address"
        RESET_PASSWORD = "reset", "reset the password"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="email_tokens")
    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    token_digest = models.CharField(max_length=64, unique=True)
    code_digest = models.CharField(max_length=64, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose"])]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} for {self.user.username}"
