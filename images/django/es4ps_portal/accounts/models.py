"""The people of the portal and the tokens mailed to them."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

_SESSION_HASH_SALT = "es4ps_portal.accounts.User.session"
# The states of an imported person's account that a claim starts from: not claimed yet, or a claim whose create
# the directory refused (the account was not moved into the managed OU yet, docs/migration.md): claimed again.
CLAIMABLE_STATES = ("unclaimed", "failed")


class UserQuerySet(models.QuerySet):
    """Case-insensitive lookups written so they hit the functional indexes on SQLite and PostgreSQL alike.

    Django's `__iexact` compiles to `LIKE` (SQLite) or `UPPER(..) = UPPER(..)`
    (PostgreSQL), neither of which an index on LOWER(..) serves: at campus size
    every registration would read the whole table twice.
    """

    def named(self, username: str) -> UserQuerySet:
        """The user of this name, whatever its case (index user_username_lower)."""
        return self.alias(username_lower=Lower("username")).filter(username_lower=Lower(Value(username)))

    def with_address(self, email: str) -> UserQuerySet:
        """The user of this e-mail address, whatever its case (the index of unique_email_address)."""
        return (
            self.alias(email_lower=Lower("email"))
            .filter(email_lower=Lower(Value(email)))
            # The unique index covers non-empty addresses only; saying so lets the database use it.
            .exclude(email="")
        )

    def claimable(self) -> UserQuerySet:
        """People imported from ES4PS-Containers whose account waits to be claimed (`User.is_claimable`)."""
        return self.filter(imported_at__isnull=False, is_staff=False, directory_state__in=CLAIMABLE_STATES)


class PortalUserManager(UserManager.from_queryset(UserQuerySet)):
    """Django's user manager with the portal's lookups (`User.objects.named(...)`)."""


class User(AbstractUser):
    """A person with a directory account (or a staff member of the portal).

    End users have no usable password here: the directory owns it, and login
    checks it with an LDAP bind. Staff keep a local password for the admin;
    staff never log in through the directory and end users never become staff.
    """

    class DirectoryState(models.TextChoices):
        NONE = "", _("not in the directory")
        PENDING = "pending", _("being created")
        CREATED = "created", _("created, disabled")
        ENABLED = "enabled", _("enabled")
        DISABLED = "disabled", _("disabled by staff")
        FAILED = "failed", _("failed")
        # Imported from ES4PS-Containers (accounts.imports): the account is the old one until the person claims it.
        UNCLAIMED = "unclaimed", _("imported, not claimed yet")

    class Approval(models.TextChoices):
        NOT_NEEDED = "", _("not needed")
        WAITING = "waiting", _("waiting for approval")
        APPROVED = "approved", _("approved")
        REFUSED = "refused", _("refused")

    email = models.EmailField(_("e-mail address"), max_length=254, blank=True)
    email_verified_at = models.DateTimeField(_("e-mail verified at"), null=True, blank=True)
    directory_state = models.CharField(
        _("directory account"), max_length=16, choices=DirectoryState.choices, default="", blank=True
    )
    # The registration's id: every task names it and the directory account carries it, so an account
    # only ever follows the registration that created it (the contract's tasks module says why).
    registration_id = models.UUIDField("registration", default=uuid.uuid4, unique=True, editable=False)
    # When the directory password was last changed or reset here: sessions signed in before end.
    credentials_changed_at = models.DateTimeField("password changed at", null=True, blank=True)
    # The verification of the address, over all the mails sent for it (each mail also has its own limits).
    verification_mails = models.PositiveSmallIntegerField("verification mails sent", default=0)
    verification_code_failures = models.PositiveSmallIntegerField("wrong codes typed", default=0)
    # With manual approval (settings.REGISTRATION_APPROVAL), a confirmed registration waits for staff.
    approval = models.CharField(_("approval"), max_length=16, choices=Approval.choices, default="", blank=True)
    # What the portal last asked the directory to give the account (its policy, see provisioning.policies).
    directory_ou = models.CharField(_("OU"), max_length=64, blank=True)
    directory_groups = models.JSONField(_("groups"), default=list, blank=True)
    directory_unix = models.BooleanField(_("Unix attributes"), default=False)
    # The language the person last used the portal in: the mails the portal sends on its own speak it.
    language = models.CharField("language", max_length=8, blank=True)
    # The client address a registration came from, as the rate limits count it (an IPv6 client by its /64):
    # unconfirmed registrations are capped per address (es4ps_portal.provisioning.pending).
    registered_from = models.CharField("registered from", max_length=64, blank=True)
    # When the directory password was last set, as far as the portal knows (a change or reset it made, or
    # pwdLastSet read at sign-in), and the last expiry reminder sent for it (days before; 0: "expired").
    password_set_at = models.DateTimeField("password set at", null=True, blank=True)
    password_reminder_sent = models.PositiveSmallIntegerField("expiry reminder sent", null=True, blank=True)
    # When the person was imported from ES4PS-Containers' portal (accounts.imports); None: registered here.
    imported_at = models.DateTimeField(_("imported at"), null=True, blank=True)

    objects = PortalUserManager()

    class Meta:
        permissions = [
            ("manage_directory_account", _("Can disable, enable, delete and move directory accounts and mail people")),
            ("approve_registration", _("Can approve or refuse registrations (and is mailed when one waits)")),
        ]
        constraints = [
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="unique_email_address"),
        ]
        indexes = [
            # Every registration checks that the name and address are free, case-insensitively.
            models.Index(Lower("username"), name="user_username_lower"),
            # The admin's user list, newest first: a page without sorting every user.
            models.Index(fields=["date_joined", "id"], name="user_joined"),
            # The expiry job's question: unverified registrations older than the retention (the few, not all).
            models.Index(
                fields=["date_joined"], condition=models.Q(email_verified_at=None), name="user_unverified_joined"
            ),
            # The cap per client address: its unconfirmed registrations.
            models.Index(
                fields=["registered_from"], condition=models.Q(email_verified_at=None), name="user_unverified_from"
            ),
        ]

    @property
    def is_email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def is_claimable(self) -> bool:
        """Imported from ES4PS-Containers, its account not (or not successfully) claimed yet."""
        return self.imported_at is not None and not self.is_staff and self.directory_state in CLAIMABLE_STATES

    def note_password_set(self, when) -> None:
        """The directory password was set at `when` (as the directory or a worker says): reminders start over."""
        User.objects.filter(pk=self.pk).update(password_set_at=when, password_reminder_sent=None)
        self.password_set_at, self.password_reminder_sent = when, None

    def _get_session_auth_hash(self, secret=None) -> str:
        """Django derives it from the local password hash, which end users do not have (the directory
        holds their password): the time of the last change goes in too, so a change ends other sessions."""
        if self.credentials_changed_at is None:  # never changed here: Django's own hash (sessions stay valid)
            return super()._get_session_auth_hash(secret)
        changed = self.credentials_changed_at.isoformat()
        return salted_hmac(
            _SESSION_HASH_SALT, f"{self.password}|{changed}", secret=secret, algorithm="sha256"
        ).hexdigest()


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


class QueuedMail(models.Model):
    """A mail a request asked for, waiting for the consumer's mail relay (accounts.mail_outbox).

    Requests only write this row: the relay issues the token (if the mail
    carries one), renders the mail in `language` and hands it to the mail
    server, so no request waits for the mail server, and a request for an
    address nobody registered does the same work as one for an account.
    `message` holds the rendered mail while a failed send waits for its retry.
    """

    class Kind(models.TextChoices):
        VERIFY = "verify", "the verification link and code of a registration"
        RESET = "reset", "a reset link for an account"
        RESET_BY_ADDRESS = "reset_by_address", "a reset link for the enabled account of an address, if there is one"
        NOTICE = "notice", "a mail of its own template"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # Where a mail without an account goes (RESET_BY_ADDRESS, notices about an address).
    address = models.EmailField(max_length=254, blank=True)
    # A notice's other recipients (the approvers), its template and what it shows.
    recipients = models.JSONField(default=list, blank=True)
    template = models.CharField(max_length=100, blank=True)
    context = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    message = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["not_before", "id"], name="queued_mail_due")]


class RegistrationRequest(models.Model):
    """A registration form that passed its checks, waiting for the consumer (web.registrations) to make it, or
    to mail its address why not (the name or the address is taken): the request does the same work either way.

    The password is sealed for the workers before it is stored (as in a task's envelope). A made registration's
    row goes with its making (the user counts from then on); a taken one's stays, its password dropped, until
    the unconfirmed retention ends: the caps on unconfirmed registrations count it like a made one, so they
    cannot tell which was which either.
    """

    registration_id = models.UUIDField(unique=True, editable=False)
    username = models.CharField(max_length=150)
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    sealed_password = models.TextField(blank=True)
    language = models.CharField(max_length=8, blank=True)
    # Who sent it, for the audit record of the registration (the address the trusted proxies report).
    address = models.GenericIPAddressField(null=True, blank=True)
    # The same address as the caps on unconfirmed registrations count it (an IPv6 client by its /64).
    registered_from = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the consumer found the name or the address taken (and mailed the address why).
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
