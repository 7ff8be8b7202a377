"""The binding an account carries: which registration owns it, which of its tasks came last, and its MAC."""

import pytest
from es4ps_samba.worker.binding import ATTRIBUTES, PASSWORD, POLICY, STATE, Binding, Mark, binding_key

REGISTRATION = "0b7c5e6e-3f4a-4c1e-9d2b-8a6f5e4d3c2b"
KEY = binding_key(b"k" * 32)


def test_a_binding_round_trips_with_its_mac():
    binding = Binding.new(REGISTRATION, 1_800_000_000, "task-1").marked(PASSWORD, 1_800_000_050, "task-2")
    line = binding.line(KEY, "ana")

    assert line.startswith(
        f"es4ps registration={REGISTRATION} state=1800000000/task-1 password=1800000050/task-2"
        " attributes=1800000000/task-1 policy=1800000000/task-1 mac="
    )
    assert Binding.parse(line, KEY, "ana") == binding
    assert Binding.parse(line, KEY, "ANA") == binding  # names compare as AD compares them


@pytest.mark.parametrize("line", ["", "Staff note: on leave", "es4ps", "es4ps state=1/x", "ES4PS registration=x"])
def test_anything_else_is_no_binding(line):
    assert Binding.parse(line, KEY, "ana") is None


def test_a_line_changed_by_anyone_but_a_worker_keeps_its_registration_and_loses_its_marks():
    line = Binding.new(REGISTRATION, 1_800_000_000, "task-1").line(KEY, "ana")
    raised = line.replace("state=1800000000", "state=9999999999")

    for tampered, username, key in [
        (raised, "ana", KEY),  # the reported attack: every mark raised
        (line, "bob", KEY),  # a line copied onto another account
        (line, "ana", binding_key(b"x" * 32)),  # a MAC made with another key
        (line.rsplit(" mac=", 1)[0], "ana", KEY),  # no MAC (an earlier version's line)
    ]:
        binding = Binding.parse(tampered, key, username)
        assert binding == Binding(REGISTRATION, {}, authentic=False)
        assert binding.applies(STATE, 1, "old") and binding.applies(POLICY, 1, "old")


@pytest.mark.parametrize(
    "mark",
    ["²/task", "1²/task", "99999999999999999999/task", "-1/task", "1/", "/task", "1/task/x", "1e9/task", "١٢/task"],
)
def test_malformed_marks_never_raise_and_order_nothing(mark):
    body = f"es4ps registration={REGISTRATION} state={mark}"
    binding = Binding.parse(body, KEY, "ana")

    assert binding is not None and STATE not in binding.marks
    assert Mark.parse(mark) is None


@pytest.mark.parametrize(
    "line",
    [
        "es4ps registration=" + "x" * 10_000,
        "es4ps registration=ünïcode",
        "es4ps \x00 registration=a\x01",
        "es4ps " * 5000,
    ],
)
def test_junk_lines_never_raise(line):
    Binding.parse(line, KEY, "ana")


def test_only_newer_tasks_apply_and_older_ones_never_overwrite():
    binding = Binding(REGISTRATION, {PASSWORD: Mark(1000, "b")})

    assert binding.applies(PASSWORD, 1001, "c")  # newer
    assert not binding.applies(PASSWORD, 999, "a")  # a captured older task, replayed
    assert not binding.applies(PASSWORD, 1000, "b")  # the same task again
    assert binding.applies(PASSWORD, 1000, "c")  # same second, another task: in arrival order
    assert binding.applies(STATE, 1, "z") and binding.applies(ATTRIBUTES, 1, "z")  # other kinds are independent
