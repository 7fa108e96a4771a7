"""Who a request comes from: the peer, or behind trusted proxies what they saw; one answer for everything that
counts by address (the login lockout, the API token throttle, DRF's throttles)."""

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle

from portal.authentication import ClientAddressMiddleware, client_address, client_ip

PROXY = "127.0.0.1"
LOAD_BALANCERS = "10.0.0.0/8"


@pytest.mark.parametrize(
    ("proxies", "count", "peer", "forwarded_for", "expected"),
    [
        # Not behind a proxy: anyone can send the header, so it is ignored.
        ([], 0, "203.0.113.9", "", "203.0.113.9"),
        ([], 0, "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ([], 0, PROXY, "198.51.100.1", PROXY),
        # One proxy on this machine: the entry it appended, whatever the client put before it.
        ([PROXY, "::1"], 1, PROXY, "198.51.100.1", "198.51.100.1"),
        ([PROXY, "::1"], 1, PROXY, "1.1.1.1, 198.51.100.1", "198.51.100.1"),
        ([PROXY, "::1"], 1, "::1", "2001:db8::1", "2001:db8::1"),
        ([PROXY, "::1"], 1, "::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),  # a dual-stack socket's IPv4 peer
        ([PROXY, "::1"], 1, PROXY, "not-an-address", PROXY),
        ([PROXY, "::1"], 1, PROXY, "", PROXY),
        # Someone reaching gunicorn directly: their own address, whatever header they send.
        ([PROXY, "::1"], 1, "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # A CDN in front of a load balancer: two hops, each read only while the one who added it is trusted.
        ([LOAD_BALANCERS, "192.0.2.0/24"], 2, "10.1.2.3", "1.1.1.1, 198.51.100.1, 192.0.2.7", "198.51.100.1"),
        ([LOAD_BALANCERS, "192.0.2.0/24"], 2, "10.1.2.3", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # CDN bypassed
        ([LOAD_BALANCERS, "192.0.2.0/24"], 2, "10.1.2.3", "192.0.2.7", "192.0.2.7"),  # nothing before the CDN
        ([LOAD_BALANCERS], 1, "10.1.2.3", "1.1.1.1, 192.0.2.7", "192.0.2.7"),  # one hop counted, never more
    ],
)
def test_the_client_address_is_the_peer_or_what_trusted_proxies_saw(
    settings, proxies, count, peer, forwarded_for, expected
):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = proxies, count
    assert client_address(peer, forwarded_for) == expected


def through_the_middleware(**meta: str) -> Request:
    request = RequestFactory().get("/api/survey-requests/", **meta)
    ClientAddressMiddleware(lambda request: HttpResponse())(request)
    return Request(request)


def test_the_lockout_the_token_count_and_drfs_throttles_count_one_address(behind_proxy):
    """Settled once, first of all: django-axes (client_ip), the API token count (client_ip) and any DRF throttle
    (its own get_ident) all read the same address, for a direct client and through the proxy alike."""
    direct = through_the_middleware(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert client_ip(direct) == AnonRateThrottle().get_ident(direct) == "203.0.113.9"
    proxied = through_the_middleware(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.1")
    assert client_ip(proxied) == AnonRateThrottle().get_ident(proxied) == "198.51.100.1"
