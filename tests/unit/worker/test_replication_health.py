"""Which replication links of `samba-tool drs showrepl --json` count as failing (the DC's health server)."""

from es4ps_samba.dc.config import DCConfig
from es4ps_samba.dc.health import HealthMonitor, HealthReport, replication_links, samba_tool_complaint
from es4ps_samba.dc.locator import update_due

NEVER = "NTTIME(0)"  # how showrepl --json writes a success that never happened

NC = "DC=ad,DC=beta,DC=example"


def rep(dsa: str, failures: int = 0, last_success: str = "Fri Nov 27 15:40:00 2026 UTC") -> dict:
    return {
        "NC dn": NC,
        "DSA": dsa,
        "consecutive failures": failures,
        "last success": last_success,
        "last attempt message": "was successful" if not failures else "WERR_BADFILE",
        "is deleted": False,
    }


def test_an_outbound_link_that_records_no_success_is_not_failing():
    # repsTo only says whom this DC notifies: Samba leaves its "last success" at NTTIME(0).
    links, failing = replication_links({"repsFrom": [rep("dc1")], "repsTo": [rep("dc1", last_success=NEVER)]})
    assert len(links) == 2 and failing == []


def test_failures_in_either_direction_are_failing_and_a_fresh_inbound_link_is_not():
    showrepl = {
        # A DC that joined again: its attempts succeed before Samba records a success.
        "repsFrom": [rep("dc1", last_success=NEVER), rep("dc2", failures=3)],
        "repsTo": [rep("dc3", failures=2)],
    }
    _, failing = replication_links(showrepl)
    assert [(link.direction, link.failures) for link in failing] == [("inbound", 3), ("outbound", 2)]


def test_deleted_links_do_not_count():
    _, failing = replication_links({"repsFrom": [{**rep("dc1", failures=5), "is deleted": True}], "repsTo": []})
    assert failing == []


def test_the_dc_checks_again_sooner_while_a_link_or_the_check_fails():
    config = DCConfig.from_env(
        {
            "ES4PS_REALM": "ad.beta.example",
            "ES4PS_DC_HOSTNAME": "dc1",
            "ES4PS_ADMIN_PASSWORD_FILE": "/secret/pw",
            "ES4PS_WORKER_PASSWORD_FILE": "/secret/worker",
        }
    )
    monitor = HealthMonitor(config)
    assert monitor.next_check_in(HealthReport(healthy=True)) == 60
    assert monitor.next_check_in(HealthReport(healthy=False)) == 15
    assert monitor.next_check_in(HealthReport(healthy=None, error="replication status unknown")) == 15
    monitor.restart_reason = "dc0 joined the domain again"  # until samba restarted
    assert monitor.next_check_in(HealthReport(healthy=True)) == 15
    monitor.restart_reason = None
    monitor.missing_records = ["SRV _ldap._tcp.ad.beta.example"]  # until samba_dnsupdate wrote them
    assert monitor.next_check_in(HealthReport(healthy=True)) == 15


def test_samba_dnsupdate_runs_for_missing_records_after_sambas_own_try_and_not_again_at_once():
    missing, started = ["SRV _ldap._tcp.ad.beta.example"], 1000.0
    assert not update_due([], started, None, started + 600)  # nothing missing
    assert not update_due(missing, started, None, started + 10)  # samba's own first try may still run
    assert update_due(missing, started, None, started + 30)
    assert not update_due(missing, started, started + 30, started + 90)  # ours just ran
    assert update_due(missing, started, started + 30, started + 150)


def test_a_failed_showrepl_is_reported_by_samba_tools_error_line_not_its_traceback():
    stderr = (
        "ERROR(<class 'samba.drs_utils.drsException'>): uncaught exception - DRS connection to 10.244.0.9 failed: "
        "(-1073741801, 'NT_STATUS_NO_MEMORY')\n"
        '  File "/usr/lib/python3/dist-packages/samba/netcmd/__init__.py", line 186, in _run\n'
        '    raise drsException("DRS connection to %s failed: %s" % (server, e))\n'
    )
    assert samba_tool_complaint(stderr).startswith("ERROR(<class 'samba.drs_utils.drsException'>): uncaught")
    assert samba_tool_complaint("Could not connect\n") == "Could not connect"
    assert samba_tool_complaint("") == ""


def test_the_metrics_are_prometheus_text_a_parser_reads_back():
    from es4ps_samba.dc.health import HealthReport, Link
    from prometheus_client.parser import text_string_to_metric_families

    report = HealthReport(healthy=False, checked_at=1700000000.5, managed_accounts=42)
    report.links = [Link("inbound", 'Default-First-Site-Name\\DC1 "x"', "DC=ad,DC=acme", 3, "refused")]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(report.metrics().decode())
        for sample in family.samples
    }
    link = (("direction", "inbound"), ("nc", "DC=ad,DC=acme"), ("partner", 'Default-First-Site-Name\\DC1 "x"'))
    assert samples == {
        ("es4ps_dc_replication_healthy", ()): 0,
        ("es4ps_dc_replication_links", ()): 1,
        ("es4ps_dc_replication_consecutive_failures", link): 3,
        ("es4ps_dc_health_checked_timestamp_seconds", ()): 1700000000.5,
        ("es4ps_dc_managed_accounts", ()): 42,
    }
    # Not checked yet: no health sample at all, rather than a made-up one.
    unchecked = HealthReport().metrics().decode().splitlines()
    assert not [line for line in unchecked if line.startswith("es4ps_dc_replication_healthy")]
