"""Result events and the broker settings both sides share."""

import ssl

import pytest
from es4ps_contract.environment import SettingError
from es4ps_contract.events import (
    REASON_MAX_LENGTH,
    EventSignatureError,
    Outcome,
    ResultEvent,
    open_event,
    result_event,
    sign_event,
)
from es4ps_contract.keys import generate_signing_keypair, load_verify_keys
from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULT_TASK_NAME, RESULTS_QUEUE, Operation
from es4ps_contract.transport import celery_settings
from nacl.signing import SigningKey

ENV = {
    "ES4PS_BROKER_URL": "amqps://rabbitmq.ns.svc:5671/es4ps",
    "ES4PS_BROKER_CA_FILE": "/tls/ca.crt",
    "ES4PS_BROKER_CERT_FILE": "/tls/tls.crt",
    "ES4PS_BROKER_KEY_FILE": "/tls/tls.key",
}


def test_an_event_round_trips_and_bounds_its_reason():
    event = result_event("id-1", "create_user", "ana", Outcome.FAILED, "x" * 1000, "dc0")
    again = ResultEvent.from_message(event.to_message())

    assert again == event
    assert len(again.reason) == REASON_MAX_LENGTH
    assert event.to_message()["outcome"] == "failed"


EVENT = {"task_id": "x", "operation": "enable_user", "username": "ana", "outcome": "succeeded"}


@pytest.mark.parametrize(
    "message",
    [
        None,
        [],
        {"task_id": "x"},
        {**EVENT, "outcome": "won"},
        # Times that are no times: dropped with a reason, never a traceback further on.
        {**EVENT, "finished_at": "soon"},
        {**EVENT, "finished_at": float("nan")},
        {**EVENT, "finished_at": float("inf")},
        {**EVENT, "finished_at": 10**400},
        {**EVENT, "finished_at": -1},
        {**EVENT, "finished_at": 2.0**40},
    ],
)
def test_malformed_events_are_refused(message):
    with pytest.raises(ValueError):
        ResultEvent.from_message(message)


def test_settings_log_in_with_the_certificate_and_check_the_broker_name():
    settings = celery_settings(ENV)

    assert settings["broker_login_method"] == "EXTERNAL"
    assert settings["broker_use_ssl"]["cert_reqs"] == ssl.CERT_REQUIRED
    assert settings["broker_use_ssl"]["server_hostname"] == "rabbitmq.ns.svc"
    assert celery_settings({**ENV, "ES4PS_BROKER_SERVER_NAME": "rmq"})["broker_use_ssl"]["server_hostname"] == "rmq"


def test_tasks_are_routed_through_named_exchanges_and_never_declared():
    settings = celery_settings(ENV)
    queues = {queue.name: queue for queue in settings["task_queues"]}

    assert set(queues) == {PROVISIONING_QUEUE, RESULTS_QUEUE}
    assert all(queue.no_declare and queue.exchange.name == name for name, queue in queues.items())
    routes = settings["task_routes"]
    assert routes[RESULT_TASK_NAME]["exchange"] == RESULTS_QUEUE
    assert routes[Operation.CREATE_USER.task_name[: -len("create_user")] + "*"]["exchange"] == PROVISIONING_QUEUE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ES4PS_BROKER_URL": None}, "ES4PS_BROKER_URL is not set"),
        ({"ES4PS_BROKER_KEY_FILE": None}, "ES4PS_BROKER_KEY_FILE is not set"),
        ({"ES4PS_BROKER_URL": "amqp://rabbitmq:5672/es4ps"}, "amqps://"),
        ({"ES4PS_BROKER_URL": "amqps://portal:secret@rabbitmq:5671/es4ps"}, "must not carry credentials"),
    ],
)
def test_bad_broker_settings_are_refused(change, message):
    env = {**ENV, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(SettingError, match=message) as caught:
        celery_settings(env)
    assert "secret" not in str(caught.value)


def test_an_event_signed_by_its_dc_opens_and_nothing_else_does(tmp_path):
    dc0, dc1 = SigningKey.generate(), SigningKey.generate()
    keys = {"acme-dc0": dc0.verify_key, "acme-dc1": dc1.verify_key}
    event = result_event("t-1", "delete_user", "ana", Outcome.SUCCEEDED, "", "acme-dc0")
    message = sign_event(dc0, event)

    assert open_event(keys, message) == event
    for forged, why in [
        (event.to_message(), "not signed"),
        (sign_event(SigningKey.generate(), event), "not valid"),
        (sign_event(dc1, event), "not valid"),  # another DC's key: each DC signs only as itself
        ({**message, "username": "bob"}, "not valid"),
        ({**message, "extra": 1}, "not valid"),
        ({**message, "worker": "acme-dc9"}, "not known"),
        ({**message, "sig": "not base64!"}, "not valid"),
        ("junk", "not signed"),
    ]:
        with pytest.raises(EventSignatureError, match=why):
            open_event(keys, forged)


def test_the_dcs_public_keys_are_read_by_their_names(tmp_path):
    private, public = generate_signing_keypair()
    (tmp_path / "acme-dc0.key").write_text(public)
    (tmp_path / "..data").mkdir()  # what a projected volume holds besides the files
    (tmp_path / "README").write_text("not a key")

    assert list(load_verify_keys(tmp_path)) == ["acme-dc0"]
    assert load_verify_keys(tmp_path / "missing") == {}
