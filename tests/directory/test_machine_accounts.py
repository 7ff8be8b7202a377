"""Ordinary users do not join computers: the domain's machine account quota is 0, and every way in is refused.

Against the real DC, as an attacker holding a person's own password would try
it: an LDAP add of a computer object, SAMR's CreateUser2 (what `net rpc join`
and Windows' join dialog use) and `net ads join` from a workstation.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import ldb
import pytest
from es4ps_testkit.plugins.services import started
from es4ps_testkit.samba import find_account
from es4ps_testkit.workstation import Workstation
from samba.credentials import Credentials
from samba.dcerpc import lsa, samr, security
from samba.dsdb import UF_WORKSTATION_TRUST_ACCOUNT
from samba.ntstatus import NT_STATUS_ACCESS_DENIED
from samba.param import LoadParm

pytestmark = pytest.mark.services

PERSON_PASSWORD = "Person-Horse-4242"
QUOTA = "ms-DS-MachineAccountQuota"


def machine_account_quota(samba_dc) -> int:
    samdb = samba_dc.samdb()
    return int(samdb.search(base=samdb.domain_dn(), scope=ldb.SCOPE_BASE, attrs=[QUOTA])[0][QUOTA][0])


@pytest.fixture
def person(samba_dc, username) -> str:
    """An ordinary domain user with a password of their own (what every registered person is)."""
    samba_dc.samdb().newuser(username, PERSON_PASSWORD)
    return username


def test_the_dc_sets_the_machine_account_quota_to_zero_and_keeps_it_there(samba_dc):
    assert machine_account_quota(samba_dc) == 0  # Samba provisions 10, as Windows does
    # Raised by hand: the DC's next start closes it again.
    samdb = samba_dc.samdb()
    message = ldb.Message(ldb.Dn(samdb, str(samdb.domain_dn())))
    message[QUOTA] = ldb.MessageElement("10", ldb.FLAG_MOD_REPLACE, QUOTA)
    samdb.modify(message)
    samba_dc.stop()
    started(samba_dc)
    assert machine_account_quota(samba_dc) == 0
    assert "ms-DS-MachineAccountQuota set to 0" in samba_dc.log.read_text()


def test_a_person_cannot_create_a_computer_over_ldap(samba_dc, person):
    samdb = samba_dc.samdb(person, PERSON_PASSWORD)
    name = f"pc-{person}"[:15]
    with pytest.raises(ldb.LdbError) as refused:
        samdb.add(
            {
                "dn": f"CN={name},CN=Computers,{samba_dc.base_dn}",
                "objectClass": "computer",
                "sAMAccountName": f"{name}$",
                "userAccountControl": str(UF_WORKSTATION_TRUST_ACCOUNT),
            }
        )
    assert refused.value.args[0] == ldb.ERR_INSUFFICIENT_ACCESS_RIGHTS
    assert find_account(samba_dc, f"{name}$", attrs=[]) is None


def test_a_person_cannot_create_a_computer_over_samr(samba_dc, person):
    lp = LoadParm()
    lp.set("realm", samba_dc.realm)
    lp.set("workgroup", samba_dc.netbios_name)
    credentials = Credentials()
    credentials.guess(lp)
    credentials.set_domain(samba_dc.netbios_name)
    credentials.set_username(person)
    credentials.set_password(PERSON_PASSWORD)
    connection = samr.samr(f"ncacn_ip_tcp:{samba_dc.address}[seal]", lp, credentials)
    server = connection.Connect2(None, security.SEC_FLAG_MAXIMUM_ALLOWED)
    domain_sid = connection.LookupDomain(server, lsa.String(samba_dc.netbios_name))
    domain = connection.OpenDomain(server, security.SEC_FLAG_MAXIMUM_ALLOWED, domain_sid)
    name = f"pc-{person}"[:15] + "$"
    with pytest.raises(Exception) as refused:  # samba.NTSTATUSError
        connection.CreateUser2(domain, lsa.String(name), samr.ACB_WSTRUST, security.SEC_FLAG_MAXIMUM_ALLOWED)
    assert refused.value.args[0] == NT_STATUS_ACCESS_DENIED
    assert find_account(samba_dc, name, attrs=[]) is None


def test_a_person_cannot_join_a_workstation(tmp_path, samba_dc, person):
    machine = Workstation(tmp_path / "ws", samba_dc, hostname=f"pc{person[-8:]}")
    machine.start()
    try:
        result = machine.run(
            "net", "ads", "join", "-U", person, "-S", machine.dc_fqdn, "--no-dns-updates",
            env={"PASSWD": PERSON_PASSWORD},
        )  # fmt: skip
    finally:
        machine.close()
    assert result.returncode != 0
    assert find_account(samba_dc, f"{machine.hostname}$".upper(), attrs=[]) is None
