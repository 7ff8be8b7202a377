"""The broker admits only clients with a certificate of the domain's CA, each with least privilege."""

from __future__ import annotations

import ssl

import amqp.exceptions
import pytest
from es4ps_contract.tasks import PROVISIONING_QUEUE, RESULTS_QUEUE
from es4ps_contract.transport import celery_settings
from es4ps_testkit.ca import ThrowawayCA
from kombu import Connection

pytestmark = pytest.mark.services


def _connect(url: str, **ssl_options) -> None:
    with Connection(
        url, login_method="EXTERNAL", ssl={"cert_reqs": ssl.CERT_REQUIRED, **ssl_options}, connect_timeout=5
    ) as connection:
        connection.connect()
        connection.default_channel.queue_declare(RESULTS_QUEUE, passive=True)


def test_a_client_with_the_portal_certificate_logs_in(rabbitmq):
    settings = celery_settings(rabbitmq.portal_env)
    _connect(rabbitmq.url, **settings["broker_use_ssl"])


def test_a_client_without_a_certificate_is_refused(rabbitmq):
    with pytest.raises((ssl.SSLError, OSError, amqp.exceptions.AMQPError)):
        _connect(rabbitmq.url, ca_certs=str(rabbitmq.client_certs["portal"].ca_file), server_hostname="localhost")


def test_a_client_with_a_certificate_of_another_ca_is_refused(rabbitmq, tmp_path):
    stranger = ThrowawayCA(tmp_path / "other-ca", name="Someone else's CA").issue("portal", "portal", client=True)
    with pytest.raises((ssl.SSLError, OSError, amqp.exceptions.AMQPError)):
        _connect(
            rabbitmq.url,
            ca_certs=str(rabbitmq.client_certs["portal"].ca_file),
            server_hostname="localhost",
            certfile=str(stranger.cert_file),
            keyfile=str(stranger.key_file),
        )


def test_a_certificate_of_the_right_ca_for_an_unknown_user_is_refused(rabbitmq, test_ca):
    intruder = test_ca.issue("broker-intruder", "intruder", client=True)
    with pytest.raises(amqp.exceptions.AccessRefused):
        _connect(
            rabbitmq.url,
            ca_certs=str(intruder.ca_file),
            server_hostname="localhost",
            certfile=str(intruder.cert_file),
            keyfile=str(intruder.key_file),
        )


def test_the_portal_cannot_read_the_provisioning_queue(rabbitmq):
    settings = celery_settings(rabbitmq.portal_env)
    with Connection(rabbitmq.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"]) as connection:
        channel = connection.channel()
        with pytest.raises(amqp.exceptions.AccessRefused):
            channel.basic_get(PROVISIONING_QUEUE)


def test_a_worker_cannot_read_the_results_queue(rabbitmq):
    settings = celery_settings(rabbitmq.worker_env)
    with Connection(rabbitmq.url, login_method="EXTERNAL", ssl=settings["broker_use_ssl"]) as connection:
        channel = connection.channel()
        with pytest.raises(amqp.exceptions.AccessRefused):
            channel.basic_get(RESULTS_QUEUE)
