"""The binding an account carries: which registration owns it, and which of its tasks came last."""

import pytest
from es4ps_samba.worker.binding import ATTRIBUTES, PASSWORD, STATE, Binding, Mark

REGISTRATION = "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b"


def test_a_binding_round_trips_through_the_info_attribute():
    binding = Binding.new(REGISTRATION, 1_800_000_000, "task-1").marked(PASSWORD, 1_800_000_050, "task-2")
    text = str(binding)

    assert text == (
        f"es4ps registration={REGISTRATION} state=1800000000/task-1 password=1800000050/task-2"
        " attributes=1800000000/task-1 policy=1800000000/task-1"
    )
    assert Binding.parse(text) == binding


@pytest.mark.parametrize("info", ["", "Staff note: on leave", "es4ps", "es4ps state=1/x", "ES4PS registration=x"])
def test_anything_else_in_info_is_no_binding(info):
    assert Binding.parse(info) is None


def test_only_newer_tasks_apply_and_older_ones_never_overwrite():
    binding = Binding(REGISTRATION, {PASSWORD: Mark(1000, "b")})

    assert binding.applies(PASSWORD, 1001, "c")  # newer
    assert not binding.applies(PASSWORD, 999, "a")  # a captured older task, replayed
    assert not binding.applies(PASSWORD, 1000, "b")  # the same task again
    assert binding.applies(PASSWORD, 1000, "c")  # same second, another task: in arrival order
    assert binding.applies(STATE, 1, "z") and binding.applies(ATTRIBUTES, 1, "z")  # other kinds are independent
