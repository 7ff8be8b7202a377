"""The DC's health endpoint says how many of the domain's RIDs are handed out and left (the real DC, its real
health server): what the RID and uid alerts (builders/monitoring.py) watch, long before a create would fail."""

from __future__ import annotations

import uuid

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.metrics import scrape
from samba.dcerpc import security
from samba.ndr import ndr_unpack

pytestmark = pytest.mark.services

HEALTH_PORT = 9931  # the DC's default (ES4PS_HEALTH_PORT)
RID_LIMIT = 2**30 - 1  # Samba's last RID


def test_the_health_endpoint_counts_the_domains_rids(samba_dc, test_ca):
    # Read as Prometheus does: the monitoring certificate shown, the DC's certificate checked.
    url = f"https://{samba_dc.address}:{HEALTH_PORT}/metrics"
    monitoring = test_ca.issue("rids-monitoring", "monitoring", client=True)
    server_name = f"{samba_dc.hostname}.{samba_dc.dns_domain}"

    def counted():
        found = scrape(url, monitoring, server_name)
        return found if "es4ps_dc_rids_remaining" in found.names() else None

    metrics = wait_until(counted, 120, "the RIDs in the health endpoint's metrics", interval_s=2)
    issued, remaining = metrics.value("es4ps_dc_rids_issued"), metrics.value("es4ps_dc_rids_remaining")
    assert issued + remaining == RID_LIMIT and remaining > RID_LIMIT * 0.99

    # An account made now takes a RID from a pool already handed out to this DC: counted as issued.
    name = f"rid{uuid.uuid4().hex[:10]}"
    samdb = samba_dc.samdb()
    samdb.add({"dn": f"CN={name},CN=Users,{samba_dc.base_dn}", "objectClass": "user", "sAMAccountName": name})
    sid = samdb.search(samba_dc.base_dn, expression=f"(sAMAccountName={name})", attrs=["objectSid"])[0]["objectSid"][0]
    rid = int(str(ndr_unpack(security.dom_sid, sid)).rsplit("-", 1)[1])
    assert rid <= issued
