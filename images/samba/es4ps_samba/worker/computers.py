"""The worker's operations on computers: pre-stage, disable, reset, move in the computers OU; the domain's list.

Only computer objects inside the managed computers OU (`COMPUTERS_OU` under
the managed OU) are ever looked up or written: the DC delegated the worker's
account rights on computer objects there and nowhere else
(es4ps_samba.dc.access), so the DCs' own accounts and computers an
administrator joined elsewhere stay out of reach whatever a task says.

A pre-staged computer carries a binding line like an account (`binding`),
naming the portal's record of it (`computer_id`) instead of a registration,
with the same marks: state (enable, disable), password (pre-stage, reset,
disable) and policy (move). Enable and delete are the account operations
(`directory`), which find the computer through its task.

- Pre-stage: one add, enabled, with its one-time join password and its line;
  the computer's join (`adcli join --one-time-password`) replaces that
  password at once. A name the domain holds elsewhere is refused; a record
  deleted before is never pre-staged again (a replayed task).
- Disable: the account is disabled *and* its password replaced with a random
  one nobody keeps, in one modify. Disabling alone does not stop a joined
  Linux computer: it keeps its Kerberos ticket, and Samba's KDC still issues
  the service ticket the computer validates each login with. With the
  password gone, the computer's keys no longer open that ticket and every
  login is refused from the next one on (docs/directory.md measures it).
  To use the computer again, staff enable it and reset it, and it joins again.
- Reset: a new one-time join password (the old keys stop working too).
"""

from __future__ import annotations

import logging
import secrets

import ldb
from es4ps_contract.events import REASON_COMPUTER_DELETED, REASON_COMPUTER_NAME_TAKEN
from es4ps_contract.inventory import MAX_REPORTED, ComputerFacts, unix_time
from es4ps_contract.signing import SignedTask
from samba.dsdb import UF_ACCOUNTDISABLE, UF_WORKSTATION_TRUST_ACCOUNT

from ..managed import BINDING_ATTRIBUTE
from .binding import PASSWORD, POLICY
from .directory import Directory
from .errors import DirectoryRefused, refusal
from .managed_ou import ManagedOU, child
from .records import encode_password

logger = logging.getLogger(__name__)

INVENTORY_ATTRIBUTES = [
    "sAMAccountName", "userAccountControl", "operatingSystem", "operatingSystemVersion", "lastLogon",
    "lastLogonTimestamp", "dNSHostName", BINDING_ATTRIBUTE,
]  # fmt: skip


def unknown_password() -> str:
    """A password nobody keeps (what a disabled computer gets): 120 random characters, as long as adcli's own."""
    return secrets.token_urlsafe(90)[:120]


class Computers:
    """Computer operations on one DC, over the connection of the account operations (`directory`)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def prestage(self, signed: SignedTask, password: str, must_answer: bool = False) -> str:
        """Create the computer account, enabled, with its one-time join password and its binding, in one add.

        A redelivered task finds its own computer and writes nothing (the
        join may have replaced the password already); any other object of
        that name is refused. A name another DC holds waits until it has replicated
        here, as an account's create does (`peers`).
        """
        task = signed.task
        directory = self.directory

        def prestage(ou: ManagedOU) -> str:
            if ou.is_deleted(task.computer_id):
                raise DirectoryRefused(REASON_COMPUTER_DELETED)
            record = {
                "dn": child(ou.samdb, ou.computers_container(task.ou), "CN", task.computer),
                "objectClass": "computer",
                "sAMAccountName": task.username,
                "userAccountControl": str(UF_WORKSTATION_TRUST_ACCOUNT),
                "unicodePwd": encode_password(password),
                BINDING_ATTRIBUTE: directory.line(task.computer_id, signed),
            }
            if directory.peers is not None:
                directory.peers.first_here(ou.samdb, task.username, must_answer, REASON_COMPUTER_NAME_TAKEN)
            try:
                ou.samdb.add(record)
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    raise refusal(exc, "pre-stage the computer") from None
                found = ou.find_computer(task.computer)
                binding = directory.binding(found, task.username) if found is not None else None
                if binding is None or binding.registration != task.computer_id:
                    raise DirectoryRefused(REASON_COMPUTER_NAME_TAKEN) from None
                return "already existed"
            return "pre-staged"

        return directory.run(prestage)

    def disable(self, signed: SignedTask) -> str:
        """Disable the computer and replace its password with one nobody keeps (module docstring)."""
        return self.directory.set_disabled(signed, True, unknown_password())

    def reset(self, signed: SignedTask, password: str) -> str:
        """Give the computer a new one-time join password, so it can join again."""
        element = ldb.MessageElement(encode_password(password), ldb.FLAG_MOD_REPLACE, "unicodePwd")
        done = self.directory.change(signed, PASSWORD, "reset the computer", lambda _computer: {"unicodePwd": element})
        return "reset" if done == "done" else done

    def move(self, signed: SignedTask) -> str:
        """Move the computer to the OU the task names under the computers OU (created there if missing)."""
        task = signed.task
        directory = self.directory

        def move(ou: ManagedOU) -> str:
            computer, binding = directory.owned(ou, signed)
            if settled := binding.standing(POLICY, signed.issued_at, signed.task_id):
                return settled
            container = ou.computers_container(task.ou)
            computer, moved = ou.move_under(computer, container, "computer", lambda: ou.find_computer(task.computer))
            # The mark last: a crash before it leaves the task to be applied again (the move converges).
            ou.modify(directory.marked(computer, binding, (POLICY,), signed), "record the computer's move")
            return f"moved to {task.ou or 'the computers OU'}" if moved else "already there"

        return directory.run(move)

    def report(self) -> tuple[ComputerFacts, ...]:
        """Every computer of the domain, as staff see it in the portal (`es4ps_contract.inventory`)."""
        directory = self.directory

        def report(ou: ManagedOU) -> tuple[ComputerFacts, ...]:
            domain = ou.samdb.domain_dn()
            found = ou.samdb.search(
                base=domain, scope=ldb.SCOPE_SUBTREE, expression="(objectClass=computer)", attrs=INVENTORY_ATTRIBUTES
            )
            if len(found) > MAX_REPORTED:
                logger.warning("the domain has %d computers; the report lists the first %d", len(found), MAX_REPORTED)
            return tuple(_facts(directory, computer, str(domain)) for computer in list(found)[:MAX_REPORTED])

        return directory.run(report)


def _facts(directory: Directory, computer: ldb.Message, domain: str) -> ComputerFacts:
    """What the inventory says of one computer object."""
    account = str(computer.get("sAMAccountName", idx=0) or computer.dn.get_rdn_value())
    parent = str(computer.dn.parent())
    binding = directory.binding(computer, account) if computer.get(BINDING_ATTRIBUTE) is not None else None
    logons = [int(str(computer.get(name, idx=0) or 0)) for name in ("lastLogon", "lastLogonTimestamp")]
    return ComputerFacts(
        name=account.removesuffix("$")[:64],
        container=parent[: -len(domain) - 1] if parent.lower().endswith("," + domain.lower()) else parent[:1024],
        operating_system=str(computer.get("operatingSystem", idx=0) or "")[:128],
        os_version=str(computer.get("operatingSystemVersion", idx=0) or "")[:64],
        last_logon=unix_time(max(logons)),
        enabled=not int(str(computer.get("userAccountControl", idx=0) or 0)) & UF_ACCOUNTDISABLE,
        joined=computer.get("dNSHostName") is not None,
        computer_id=binding.registration if binding is not None and binding.authentic else "",
    )
