"""What a DC keeps true about the other DCs: their addresses in the zone, and who joined again (pure parts)."""

from __future__ import annotations

from es4ps_samba.dc.peers import DomainController, address_template_for, rejoined, stale_addresses

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


def test_a_dc_that_joined_again_is_told_apart_from_a_new_one():
    at_start = {"dc0": "g0", "dc1": "g1"}
    now = [DomainController("dc0", "g0", ()), DomainController("dc1", "g1-new", ()), DomainController("dc2", "g2", ())]
    assert rejoined(at_start, now) == ["dc1"]  # dc2 is new: samba holds no ticket for it
    assert rejoined({}, now) == []
