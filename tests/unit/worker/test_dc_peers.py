"""What a DC keeps true about the other DCs: their addresses in the zone, and who joined again (pure parts)."""

from __future__ import annotations

from es4ps_samba.dc.peers import DomainController, address_template_for, replaced_since, stale_addresses

TEMPLATE = "acme-dc{index}.acme.svc.cluster.local"


def test_each_dc_name_maps_to_its_service_and_other_names_to_none():
    assert address_template_for("dc1", TEMPLATE, "dc0") == "acme-dc1.acme.svc.cluster.local"
    # A restored or joined domain's DCs: the suffix of the DC asking.
    assert address_template_for("dc1-1a2b", TEMPLATE, "dc0-1a2b") == "acme-dc1.acme.svc.cluster.local"
    assert address_template_for("winserver", TEMPLATE, "dc0") is None  # a DC this operator does not run
    assert address_template_for("dc1", "", "dc0") is None


def test_a_joined_domains_own_dc_of_a_like_name_is_never_taken_for_ours():
    """A domain the operator joined may have named its DC dc1: its address is its own, never our dc1's Service."""
    assert address_template_for("dc1", TEMPLATE, "dc0-1a2b") is None
    assert address_template_for("dc1-9f9f", TEMPLATE, "dc0-1a2b") is None
    assert address_template_for("dc1-1a2b", TEMPLATE, "dc0") is None


def test_only_records_that_are_not_just_the_current_address_are_rewritten():
    controllers = [
        DomainController("dc0", "g0", ("10.0.0.8",)),  # moved: its Pod has a new address
        DomainController("dc1", "g1", ("10.0.0.14",)),  # current
        DomainController("dc2", "g2", ("10.0.0.3", "10.0.0.9")),  # an old address beside the current one
        DomainController("dc3", "g3", ()),  # its record is gone
        DomainController("dc4", "g4", ("10.0.0.5",)),  # its Service does not resolve now: left alone
    ]
    current = {"dc0": "10.0.0.13", "dc1": "10.0.0.14", "dc2": "10.0.0.9", "dc3": "10.0.0.20", "dc4": ""}
    assert stale_addresses(controllers, current) == {"dc0": "10.0.0.13", "dc2": "10.0.0.9", "dc3": "10.0.0.20"}


def test_a_dc_whose_former_self_was_removed_since_samba_started_is_told_apart():
    """dc0's samba started at 100; dc1 joined later, lost its volume, removed its former self at 250 and joined
    again: samba may hold tickets for dc1's former key. dc2's former self went before samba started (no ticket)."""
    removed = [("dc1", 250.0), ("dc2", 50.0), ("dc3", 300.0)]  # dc3 removed and not back (replicas lowered)
    assert replaced_since(100.0, ["dc1", "dc2"], removed) == ["dc1"]
    assert replaced_since(260.0, ["dc1", "dc2"], removed) == []  # samba restarted since: no ticket of before
    assert replaced_since(100.0, ["dc1"], []) == []
