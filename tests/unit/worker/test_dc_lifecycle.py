"""Which volume `remove` retires (pure part of es4ps_samba.dc.lifecycle)."""

from __future__ import annotations

from es4ps_samba.dc.config import MARKER_NAME
from es4ps_samba.dc.lifecycle import RETIRED_MARKER_NAME, retire_volume


def test_the_leaving_dcs_volume_is_retired(tmp_path):
    (tmp_path / MARKER_NAME).write_text("join ACME.EXAMPLE dc2\n")
    assert retire_volume(tmp_path, "DC2")
    assert not (tmp_path / MARKER_NAME).exists() and (tmp_path / RETIRED_MARKER_NAME).exists()


def test_the_volume_of_the_dc_that_stays_is_left_as_it_is(tmp_path):
    """The runbook runs remove in dc0's container, whose ES4PS_DATA_DIR is dc0's own volume."""
    (tmp_path / MARKER_NAME).write_text("join ACME.EXAMPLE dc0\n")
    assert not retire_volume(tmp_path, "legacydc")
    assert (tmp_path / MARKER_NAME).exists() and not (tmp_path / RETIRED_MARKER_NAME).exists()


def test_a_volume_without_a_dc_is_left_as_it_is(tmp_path):
    assert not retire_volume(tmp_path, "dc2")
    assert list(tmp_path.iterdir()) == []
