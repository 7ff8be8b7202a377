"""What portal and workers agree on about computers: names, their tasks, and the signed report of the domain's list."""

import uuid

import pytest
from es4ps_contract.events import EventSignatureError, Outcome, ResultEvent, open_event, result_event, sign_event
from es4ps_contract.inventory import MAX_REPORTED, ComputerFacts, parse_report, unix_time
from es4ps_contract.policies import normalize_ou
from es4ps_contract.signing import envelope_username
from es4ps_contract.tasks import DisableComputer, MoveComputer, PrestageComputer, ReportComputers, validated
from es4ps_contract.validation import InvalidField, normalize_computer_name
from nacl.signing import SigningKey

RECORD = str(uuid.uuid4())
FACTS = ComputerFacts("WS01", "OU=Labs,OU=Computers,OU=ES4PS", "Debian", "12", 1_800_000_000, True, True, RECORD)


@pytest.mark.parametrize(
    ("given", "canonical"), [("ws01", "WS01"), ("WS01$", "WS01"), (" lab-pc-7 ", "LAB-PC-7"), ("A" * 15, "A" * 15)]
)
def test_a_computer_name_is_its_netbios_name_in_upper_case(given, canonical):
    assert normalize_computer_name(given) == canonical


@pytest.mark.parametrize(
    "bad", ["", "$", "A" * 16, "-ws", "ws-", "ws_01", "ws.lab", "1234", "système", "SYSTEM", "ws 1", None, 7]
)
def test_a_bad_computer_name_is_refused_with_its_field(bad):
    with pytest.raises(InvalidField) as refused:
        normalize_computer_name(bad)
    assert refused.value.field == "computer"


def test_computer_tasks_validate_their_fields_and_name_the_computer_account():
    task = validated(
        PrestageComputer(computer="ws01", computer_id=RECORD.upper(), sealed_password="c2VhbGVk", ou="Labs")  # noqa: S106
    )
    assert (task.computer, task.computer_id, task.username, task.owner) == ("WS01", RECORD, "WS01$", RECORD)
    with pytest.raises(InvalidField):
        validated(MoveComputer(computer="WS01", computer_id="not-a-uuid", ou="Labs"))
    with pytest.raises(InvalidField):
        validated(MoveComputer(computer="WS01", computer_id=RECORD, ou="../Domain Controllers"))
    assert envelope_username({"payload": DisableComputer("ws01", RECORD).payload()}) == "WS01$"
    assert validated(ReportComputers()).payload() == {}


def test_no_account_policy_may_place_accounts_in_the_computers_ou():
    with pytest.raises(InvalidField):
        normalize_ou("computers")
    assert normalize_ou("Students") == "Students"


def test_a_report_round_trips_signed_and_a_changed_list_does_not_verify():
    key = SigningKey.generate()
    event = ResultEvent(
        "t", "report_computers", "", Outcome.SUCCEEDED, worker="dc0", finished_at=1.0, computers=(FACTS,)
    )
    message = sign_event(key, event)
    keys = {"dc0": key.verify_key}
    assert open_event(keys, message).computers == (FACTS,)
    message["computers"][0]["enabled"] = False
    with pytest.raises(EventSignatureError):
        open_event(keys, message)
    # An event without computers reads as every event always did.
    assert "computers" not in result_event("t", "enable_user", "ana", Outcome.SUCCEEDED).to_message()


@pytest.mark.parametrize(
    "bad",
    [
        [{**FACTS.as_dict(), "name": ""}],
        [{**FACTS.as_dict(), "operating_system": "x" * 129}],
        [{**FACTS.as_dict(), "last_logon": -1}],
        [{**FACTS.as_dict(), "enabled": "yes"}],
        [{**FACTS.as_dict(), "extra": 1}],
        [FACTS.as_dict()] * (MAX_REPORTED + 1),
        {"WS01": FACTS.as_dict()},
    ],
)
def test_a_malformed_report_is_refused(bad):
    with pytest.raises(ValueError):
        parse_report(bad)


def test_logon_times_convert_from_filetime():
    assert unix_time(0) == 0
    assert unix_time(116444736000000000 + 10_000_000 * 1_800_000_000) == 1_800_000_000
    assert unix_time(2**63 - 1) == 0
