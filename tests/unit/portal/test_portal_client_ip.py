"""Which address the rate limits count (the one our trusted proxies saw, not the client's claim), and how much."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from es4ps_portal.client_address import client_ip
from es4ps_portal.environment import parse_rate_limits
from es4ps_portal.web.ratelimit import address_key
from es4ps_testkit.domains import portal_spec_env


def test_without_proxies_the_peer_address_counts():
    meta = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}
    assert client_ip(meta, trusted_proxies=0) == "10.0.0.9"


def test_behind_one_proxy_the_last_forwarded_entry_counts():
    # The client claims 6.6.6.6; the Ingress appended the address it really saw.
    meta = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    assert client_ip(meta, trusted_proxies=1) == "203.0.113.7"


def test_behind_two_proxies_the_entry_the_outer_proxy_wrote_counts():
    meta = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 10.0.0.2"}
    assert client_ip(meta, trusted_proxies=2) == "203.0.113.7"


def test_a_missing_header_falls_back_to_the_peer():
    assert client_ip({"REMOTE_ADDR": "10.0.0.9"}, trusted_proxies=1) == "10.0.0.9"


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # an IPv4 client seen through an IPv6 socket
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one host may hold its whole /64
        ("2001:DB8:1:2::99", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
    ],
)
def test_an_address_is_counted_by_what_identifies_one_client(address, counted_as):
    assert address_key(address) == counted_as


def test_a_partial_set_of_limits_is_refused_not_defaulted():
    """The defaults live in the CRD only: the portal does not fill in an action or a scope it was not given."""
    limits = json.loads(portal_spec_env()["ES4PS_RATE_LIMITS"])
    del limits["reset"]
    with pytest.raises(ImproperlyConfigured, match="must name each of register, login, verify, reset"):
        parse_rate_limits(json.dumps(limits))
    limits = json.loads(portal_spec_env()["ES4PS_RATE_LIMITS"])
    del limits["login"]["perAccount"]
    with pytest.raises(ImproperlyConfigured, match="login must hold perAddress and perAccount"):
        parse_rate_limits(json.dumps(limits))


def test_the_shipped_limits_let_a_class_register_from_one_address_and_stop_a_script():
    limits = parse_rate_limits(portal_spec_env()["ES4PS_RATE_LIMITS"])  # what a domain gets by default
    attempts, window_s = limits["register"]["ip"]
    assert attempts >= 300 * 2 and window_s <= 3600  # 300 people, each may send the form twice
    assert attempts / window_s < 1  # a script gets less than one registration a second
    assert limits["register"]["account"][0] <= 5
    assert limits["login"]["account"][0] <= 5 and limits["verify"]["account"][0] <= 5
    assert limits["reset"]["account"][0] <= 3
