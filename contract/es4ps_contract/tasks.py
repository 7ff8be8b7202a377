"""The provisioning tasks: their names, queues and argument schemas.

A task travels as one Celery task whose single argument is a signed envelope
(see `signing`). The envelope's payload is the task's fields below; the
worker rebuilds the task with `parse_payload`, which validates every field, so
a task that breaks the contract is refused before anything touches the
directory.

Every task names the registration it belongs to (`registration`, the
portal's id of it, and `email`, its address). The account carries that
binding from its creation on, and the worker refuses to touch an account
bound to another registration: a username registered again after the
portal lost its record can never enable, reset or delete someone else's
account.

A create task may also say where the account goes and what it gets (its
policy: an OU under the managed OU, groups, Unix attributes, see `policies`);
those fields are left out of the payload when empty, so a task without a
policy reads as it always did.

Computer tasks (`ComputerTask`) act on a computer account in the managed
computers OU (`directory.COMPUTERS_OU`): pre-stage it with a sealed one-time
join password, disable, enable, reset it (a new one-time password, so the
computer can join again), move it to an OU under the computers OU, delete it.
Each names the portal's record of the computer (`computer_id`), which the
computer account carries from its pre-staging on, as an account carries its
registration. `report_computers` asks a worker for the domain's computers
(the result event carries them, see `events`).
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

from .policies import UnixAttributes, normalize_computer_ou, normalize_groups, normalize_ou
from .validation import (
    DISPLAY_NAME_MAX_LENGTH,
    InvalidField,
    computer_account_name,
    normalize_computer_name,
    normalize_email,
    normalize_name,
    normalize_registration,
    normalize_username,
)

# The portal publishes tasks to this queue; every directory worker consumes it.
PROVISIONING_QUEUE = "es4ps.provisioning"
# Workers publish result events to this queue; the portal's consumer records them.
RESULTS_QUEUE = "es4ps.results"
# The Celery task name of a result event (run by the portal's consumer).
RESULT_TASK_NAME = "es4ps.portal.record_result"
# Every provisioning task's Celery name starts with this (`Operation.task_name`).
TASK_NAME_PREFIX = "es4ps.directory."
# Sealed passwords are base64 text of a sealed box: bounded to refuse junk early.
SEALED_PASSWORD_MAX_LENGTH = 2048


class Operation(enum.StrEnum):
    """What a task asks the directory to do."""

    CREATE_USER = "create_user"
    ENABLE_USER = "enable_user"
    DISABLE_USER = "disable_user"
    UPDATE_ATTRIBUTES = "update_attributes"
    SET_PASSWORD = "set_password"  # noqa: S105 - an operation name, not a password
    DELETE_USER = "delete_user"
    APPLY_POLICY = "apply_policy"
    PRESTAGE_COMPUTER = "prestage_computer"
    ENABLE_COMPUTER = "enable_computer"
    DISABLE_COMPUTER = "disable_computer"
    RESET_COMPUTER = "reset_computer"
    MOVE_COMPUTER = "move_computer"
    DELETE_COMPUTER = "delete_computer"
    REPORT_COMPUTERS = "report_computers"

    @property
    def task_name(self) -> str:
        """The Celery task name the worker registers for this operation."""
        return f"{TASK_NAME_PREFIX}{self.value}"


# Attributes a task may change after creation: a fixed allow-list of contract
# field names (the worker maps them to LDAP attributes), never arbitrary LDAP.
UPDATABLE_ATTRIBUTES = ("given_name", "surname", "display_name")


def _sealed(value: object, field: str = "sealed_password") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "must be a non-empty string")
    if len(value) > SEALED_PASSWORD_MAX_LENGTH:
        raise InvalidField(field, "is too long")
    return value


def _attribute_value(field: str, value: object) -> str:
    if field == "display_name":
        return normalize_name(value, field, max_length=DISPLAY_NAME_MAX_LENGTH)
    return normalize_name(value, field)


@dataclass(frozen=True)
class Task:
    """Base of every task: its fields are the envelope's payload.

    Every kind has a `username`: the name of the directory account it acts on
    (a computer's ends with "$"), which its sealed password is sealed for and
    its result event names; those acting on one object have its `owner`: what
    the object is bound to (a registration, or the portal's record of a
    computer).
    """

    operation: ClassVar[Operation]

    def payload(self) -> dict[str, Any]:
        """The JSON-ready fields of this task (what the envelope carries); optional fields left empty are left out."""
        values = asdict(self)
        for field in fields(self):
            if field.default is not MISSING and values[field.name] == field.default:
                del values[field.name]
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}

    def _validated(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class AccountTask(Task):
    """Base of the account tasks: the account it acts on and the registration that owns it."""

    username: str
    registration: str
    email: str

    @property
    def owner(self) -> str:
        """What the account is bound to: its registration."""
        return self.registration

    def _validated(self) -> dict[str, Any]:
        return {
            "username": normalize_username(self.username),
            "registration": normalize_registration(self.registration),
            "email": normalize_email(self.email),
        }


def _unix(value: object) -> dict[str, Any] | None:
    return None if value is None else UnixAttributes.parse(value).as_dict()


@dataclass(frozen=True)
class CreateUser(AccountTask):
    """Create the account, disabled, with the sealed password already set.

    `ou` (a name under the managed OU; "" is the managed OU itself), `groups`
    (inside the managed OU) and `unix` (UnixAttributes' fields, or None) come
    from the registration's policy. `address_proven`: the portal sends this
    create after the person proved the address (the verification link); only
    such a create may take on an existing account the product never bound
    whose `mail` is that address (an account made before bindings existed).
    """

    operation: ClassVar[Operation] = Operation.CREATE_USER
    given_name: str
    surname: str
    sealed_password: str
    ou: str = ""
    groups: tuple[str, ...] = ()
    unix: dict[str, Any] | None = None
    address_proven: bool = False

    def _validated(self) -> dict[str, Any]:
        if not isinstance(self.address_proven, bool):
            raise InvalidField("address_proven", "must be true or false")
        return {
            **super()._validated(),
            "given_name": normalize_name(self.given_name, "given_name"),
            "surname": normalize_name(self.surname, "surname"),
            "sealed_password": _sealed(self.sealed_password),
            "ou": normalize_ou(self.ou),
            "groups": normalize_groups(self.groups),
            "unix": _unix(self.unix),
            "address_proven": self.address_proven,
        }


@dataclass(frozen=True)
class EnableUser(AccountTask):
    operation: ClassVar[Operation] = Operation.ENABLE_USER


@dataclass(frozen=True)
class DisableUser(AccountTask):
    operation: ClassVar[Operation] = Operation.DISABLE_USER


@dataclass(frozen=True)
class DeleteUser(AccountTask):
    operation: ClassVar[Operation] = Operation.DELETE_USER


@dataclass(frozen=True)
class SetPassword(AccountTask):
    operation: ClassVar[Operation] = Operation.SET_PASSWORD
    sealed_password: str

    def _validated(self) -> dict[str, Any]:
        return {**super()._validated(), "sealed_password": _sealed(self.sealed_password)}


@dataclass(frozen=True)
class UpdateAttributes(AccountTask):
    """Change allow-listed attributes; `attributes` maps contract field names to new values."""

    operation: ClassVar[Operation] = Operation.UPDATE_ATTRIBUTES
    attributes: dict[str, str]

    def _validated(self) -> dict[str, Any]:
        if not isinstance(self.attributes, dict) or not self.attributes:
            raise InvalidField("attributes", "must be a non-empty mapping")
        unknown = sorted(set(self.attributes) - set(UPDATABLE_ATTRIBUTES), key=str)
        if unknown:
            raise InvalidField(
                "attributes",
                f"may only change {', '.join(UPDATABLE_ATTRIBUTES)}; refused: {', '.join(map(str, unknown))[:200]}",
            )
        return {
            **super()._validated(),
            "attributes": {k: _attribute_value(k, v) for k, v in sorted(self.attributes.items())},
        }


@dataclass(frozen=True)
class ApplyPolicy(AccountTask):
    """Move the account to another policy's OU and groups (staff do this after a policy changed).

    Its groups inside the managed OU become exactly `groups`. `unix` gives Unix
    attributes to an account that has none (made before they were turned on);
    existing ones never change (a uid that changes would orphan the person's files).
    """

    operation: ClassVar[Operation] = Operation.APPLY_POLICY
    ou: str
    groups: tuple[str, ...]
    unix: dict[str, Any] | None = None

    def _validated(self) -> dict[str, Any]:
        return {
            **super()._validated(),
            "ou": normalize_ou(self.ou),
            "groups": normalize_groups(self.groups),
            "unix": _unix(self.unix),
        }


@dataclass(frozen=True)
class ComputerTask(Task):
    """Base of the computer tasks: the computer (its name, canonical: upper case, no "$") and the portal's record
    of it, which the computer account carries."""

    computer: str
    computer_id: str

    @property
    def username(self) -> str:
        """The computer's account name (sAMAccountName)."""
        return computer_account_name(self.computer)

    @property
    def owner(self) -> str:
        """What the computer account is bound to: the portal's record of it."""
        return self.computer_id

    def _validated(self) -> dict[str, Any]:
        return {
            "computer": normalize_computer_name(self.computer),
            "computer_id": normalize_registration(self.computer_id, "computer_id"),
        }


@dataclass(frozen=True)
class PrestageComputer(ComputerTask):
    """Create the computer account, enabled, with a one-time join password (sealed for its account name), in
    the computers OU or the OU named `ou` under it; the computer joins with that password, which the join
    replaces."""

    operation: ClassVar[Operation] = Operation.PRESTAGE_COMPUTER
    sealed_password: str
    ou: str = ""

    def _validated(self) -> dict[str, Any]:
        return {
            **super()._validated(),
            "sealed_password": _sealed(self.sealed_password),
            "ou": normalize_computer_ou(self.ou),
        }


@dataclass(frozen=True)
class EnableComputer(ComputerTask):
    operation: ClassVar[Operation] = Operation.ENABLE_COMPUTER


@dataclass(frozen=True)
class DisableComputer(ComputerTask):
    """Disable the computer account and replace its password with a random one nobody keeps, so the computer
    can no longer prove who it is (nor validate a person's login); it joins again after a reset."""

    operation: ClassVar[Operation] = Operation.DISABLE_COMPUTER


@dataclass(frozen=True)
class ResetComputer(ComputerTask):
    """Set a new one-time join password (sealed), so the computer can join again."""

    operation: ClassVar[Operation] = Operation.RESET_COMPUTER
    sealed_password: str

    def _validated(self) -> dict[str, Any]:
        return {**super()._validated(), "sealed_password": _sealed(self.sealed_password)}


@dataclass(frozen=True)
class MoveComputer(ComputerTask):
    """Move the computer to the OU named `ou` under the computers OU ("" is the computers OU itself)."""

    operation: ClassVar[Operation] = Operation.MOVE_COMPUTER
    ou: str

    def _validated(self) -> dict[str, Any]:
        return {**super()._validated(), "ou": normalize_computer_ou(self.ou)}


@dataclass(frozen=True)
class DeleteComputer(ComputerTask):
    operation: ClassVar[Operation] = Operation.DELETE_COMPUTER


@dataclass(frozen=True)
class ReportComputers(Task):
    """Report the domain's computers (all of them, not only the managed ones) in the result event."""

    operation: ClassVar[Operation] = Operation.REPORT_COMPUTERS

    @property
    def username(self) -> str:
        return ""


TASK_TYPES: dict[Operation, type[Task]] = {
    cls.operation: cls
    for cls in (
        CreateUser, EnableUser, DisableUser, UpdateAttributes, SetPassword, DeleteUser, ApplyPolicy,
        PrestageComputer, EnableComputer, DisableComputer, ResetComputer, MoveComputer, DeleteComputer,
        ReportComputers,
    )
}  # fmt: skip


def validated(task: Task) -> Task:
    """Return the task with every field normalised, or raise InvalidField naming the first bad one."""
    return type(task)(**task._validated())


def parse_payload(operation: Operation | str, payload: object) -> Task:
    """Build and validate the task of `operation` from an envelope's payload.

    Refuses unknown operations, missing or extra fields and invalid values; optional fields may be absent.
    """
    try:
        operation = Operation(operation)
    except ValueError:
        raise InvalidField("operation", "is not a known operation") from None
    if not isinstance(payload, dict):
        raise InvalidField("payload", "must be a mapping")
    cls = TASK_TYPES[operation]
    expected = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING}
    missing = sorted(required - set(payload))
    extra = sorted(set(payload) - expected, key=str)
    if missing:
        raise InvalidField(missing[0], "is required")
    if extra:
        raise InvalidField(str(extra[0])[:64], "is not a field of this task")
    return validated(cls(**payload))
