"""Readiness and liveness of the DC (the Pod's probes call `es4ps-samba-dc ready` and `live`)."""

from __future__ import annotations

import socket

from .config import DCConfig

LDAP_PORT = 389


def ldap_answers(address: str, timeout_s: float) -> bool:
    """True when the DC at `address` accepts a TCP connection on the LDAP port."""
    try:
        with socket.create_connection((address, LDAP_PORT), timeout=timeout_s):
            return True
    except OSError:
        return False


def ready(config: DCConfig) -> bool:
    """Readiness: the domain is provisioned and LDAP serves the root DSE."""
    if not config.marker.exists() or not ldap_answers(config.probe_address, 2):
        return False
    import samba
    from samba.credentials import Credentials
    from samba.param import LoadParm

    lp = LoadParm()
    lp.load(str(config.smb_conf))
    credentials = Credentials()
    credentials.set_anonymous()
    try:
        connection = samba.Ldb(f"ldap://{config.probe_address}", lp=lp, credentials=credentials)
        result = connection.search(base="", scope=samba.ldb.SCOPE_BASE, attrs=["dnsHostName", "isSynchronized"])
    except Exception:  # any failure means "not ready", the probe says no more
        return False
    return len(result) == 1 and str(result[0].get("isSynchronized", idx=0)).upper() == "TRUE"
