"""The directory tests use the session services of tests/support/service_fixtures.py."""

from support.service_fixtures import *  # noqa: F403 - the fixtures, by name
