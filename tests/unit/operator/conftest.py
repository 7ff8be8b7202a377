"""Fixtures of the operator's unit tests (see es4ps_testkit.domains for how domains are made)."""

from __future__ import annotations

import pytest
import yaml
from es4ps_operator.config import Images, OperatorConfig
from es4ps_operator.domain import Domain
from es4ps_testkit.domains import EXAMPLE, MINIMAL_SPEC, domain_body


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig(
        images=Images(samba="es4ps/samba:test", portal="es4ps/portal:test", broker="rabbitmq:test"),
        cluster_dns_ip="10.96.0.10",
    )


@pytest.fixture
def minimal() -> Domain:
    """A domain with only the required fields."""
    return Domain.from_body(domain_body(MINIMAL_SPEC))


@pytest.fixture
def acme() -> Domain:
    """examples/acme.yaml as the operator sees it."""
    example = yaml.safe_load(EXAMPLE.read_text())
    return Domain.from_body(domain_body(example["spec"], example["metadata"]["name"], example["metadata"]["namespace"]))
