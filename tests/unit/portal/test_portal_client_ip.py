"""Which address the rate limits count: the one our trusted proxies saw, not what the client claims."""

from es4ps_portal.accounts.ratelimit import client_ip


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
