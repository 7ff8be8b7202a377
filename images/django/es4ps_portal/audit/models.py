"""The audit records: appended, read, exported, and deleted only when older than the retention.

Append-only in code: the model refuses to save a record twice or delete one,
and its querysets refuse `update()` and `delete()`; the only deletion is
`AuditRecord.objects.prune()` for records past `AUDIT_RETENTION_DAYS`. In the
database, a trigger refuses every UPDATE (and TRUNCATE on PostgreSQL): see
migration 0001 and docs/portal.md for what a database administrator can still do.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

DETAIL_MAX_LENGTH = 500


class AppendOnly(RuntimeError):
    """Something tried to change or delete an audit record."""


class AuditRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("audit records are never changed")

    def delete(self):
        raise AppendOnly("audit records are only deleted by the retention prune")

    def prune(self) -> int:
        """Delete the records older than settings.AUDIT_RETENTION_DAYS; returns how many."""
        cutoff = timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS)
        deleted, _per_model = models.QuerySet.delete(self.filter(at__lt=cutoff))
        return deleted


class AuditRecord(models.Model):
    """Who did what to which account (or computer: its account's name, "NAME$"), when, from where, and how it
    ended."""

    class ActorKind(models.TextChoices):
        PERSON = "person", _("person")
        STAFF = "staff", _("staff")
        SYSTEM = "system", _("the portal")
        DIRECTORY = "directory", _("directory worker")

    class Action(models.TextChoices):
        # What people do
        REGISTER = "register", _("register")
        VERIFY_EMAIL = "verify_email", _("confirm the e-mail address")
        CHANGE_PASSWORD = "change_password", _("change the password")  # noqa: S105 - an action's name
        RESET_PASSWORD = "reset_password", _("reset the password")  # noqa: S105 - an action's name
        CHANGE_PROFILE = "change_profile", _("change the name")
        WITHDRAW_REGISTRATION = "withdraw_registration", _("withdraw a registration the directory refused")
        CLAIM_ACCOUNT = "claim_account", _("claim an imported account")
        # What the portal does by itself
        EXPIRE_REGISTRATION = "expire_registration", _("expire an unconfirmed registration")
        IMPORT_ACCOUNT = "import_account", _("import a person from ES4PS-Containers")
        # What staff do
        STAFF_SIGN_IN = "staff_sign_in", _("sign in to the admin")
        ENROLL_SECOND_FACTOR = "enroll_second_factor", _("enrol a second factor")
        DISABLE_ACCOUNT = "disable_account", _("disable the account")
        ENABLE_ACCOUNT = "enable_account", _("enable the account")
        DELETE_ACCOUNT = "delete_account", _("delete the account")
        RESEND_VERIFICATION_MAIL = "resend_verification_mail", _("send the verification mail again")
        SEND_PASSWORD_RESET_MAIL = "send_password_reset_mail", _("send a password-reset mail")  # noqa: S105
        APPROVE_REGISTRATION = "approve_registration", _("approve the registration")
        REFUSE_REGISTRATION = "refuse_registration", _("refuse the registration")
        APPLY_POLICY = "apply_policy", _("move the account to its policy")
        PRESTAGE_COMPUTER = "prestage_computer", _("pre-stage a computer")
        DISABLE_COMPUTER = "disable_computer", _("disable the computer")
        ENABLE_COMPUTER = "enable_computer", _("enable the computer")
        RESET_COMPUTER = "reset_computer", _("reset the computer")
        MOVE_COMPUTER = "move_computer", _("move the computer")
        DELETE_COMPUTER = "delete_computer", _("delete the computer")
        # What the directory answered
        DIRECTORY_RESULT = "directory_result", _("directory task finished")

    class Outcome(models.TextChoices):
        REQUESTED = "requested", _("requested")  # a task was published (its result follows as its own record)
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        REJECTED = "rejected", _("rejected")

    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True, editable=False)
    actor = models.CharField(_("who"), max_length=255)
    actor_kind = models.CharField(_("who is it"), max_length=16, choices=ActorKind.choices)
    address = models.GenericIPAddressField(_("from address"), null=True, blank=True)
    action = models.CharField(_("what"), max_length=32, choices=Action.choices)
    # The account acted on, by name and registration (no foreign key: records outlive the people they name).
    subject = models.CharField(_("account"), max_length=150, blank=True, db_index=True)
    registration = models.UUIDField(_("registration"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    task_id = models.UUIDField(_("directory task"), null=True, blank=True, db_index=True)
    detail = models.CharField(_("detail"), max_length=DETAIL_MAX_LENGTH, blank=True)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.subject}: {self.outcome}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnly("audit records are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("audit records are only deleted by the retention prune")

    def as_json(self) -> dict:
        """One line of `export_audit`."""
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "address": self.address,
            "action": self.action,
            "subject": self.subject,
            "registration": str(self.registration) if self.registration else None,
            "outcome": self.outcome,
            "task_id": str(self.task_id) if self.task_id else None,
            "detail": self.detail,
        }
