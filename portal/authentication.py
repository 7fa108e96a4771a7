"""Brute force: who is knocking (the client's address), the sign-in lockout page, and wrong API tokens.

The client's address is settled once per request, before anything reads it (ClientAddressMiddleware; settings:
TRUSTED_PROXIES, TRUSTED_PROXY_COUNT). Sign-in lockouts are django-axes' (settings: AXES_*); this module gives it
that address and the page to show. Wrong API tokens are counted here, per address, in Django's cache (settings:
API_TOKEN_FAILURE_*).
"""

import ipaddress
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from portal.models import ApiToken

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted_proxy(address: str) -> bool:
    """Whether `address` is one of the proxies in front of the portal (TRUSTED_PROXIES)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # a dual-stack socket's view of an IPv4 peer
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(peer: str, forwarded_for: str) -> str:
    """The address a request comes from: the peer, or, while the address in hand is a trusted proxy, the one it
    says it saw, through at most TRUSTED_PROXY_COUNT proxies.

    Each proxy appends the address it saw to X-Forwarded-For, so the header is read from its end, one entry per
    proxy: the entries before those are whatever the client sent. A peer that is no trusted proxy (someone reaching
    gunicorn directly) is the client, whatever header it sends. An entry that is no address stops the reading at
    the proxy that added it.
    """
    address = peer
    entries = forwarded_for.split(",") if forwarded_for else []
    for _ in range(settings.TRUSTED_PROXY_COUNT):
        if not entries or not is_trusted_proxy(address):
            break
        try:
            address = str(ipaddress.ip_address(entries.pop().strip()))
        except ValueError:
            break
    return address


class ClientAddressMiddleware:
    """First of all: REMOTE_ADDR becomes the client's address (client_address), so that everything after it (the
    login lockout, the API token count, DRF's throttles) counts the same address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        meta["REMOTE_ADDR"] = client_address(meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR", ""))
        return self.get_response(request)


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address, as ClientAddressMiddleware settled it (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return request.META.get("REMOTE_ADDR", "")


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """The page a locked-out sign-in gets (django-axes' AXES_LOCKOUT_CALLABLE): when to try again, and who can help."""
    wait = _lockout_remaining(request, credentials)
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, math.ceil(wait.total_seconds() / 60)),
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(max(1, math.ceil(wait.total_seconds())))
    return response


def _lockout_remaining(request: HttpRequest, credentials: dict[str, Any] | None) -> timedelta:
    """The cool-off runs from the failure that locked the sign-in: attempts during the lockout don't extend it."""
    cool_off = get_cool_off(request) or timedelta(0)
    attempts = AxesProxyHandler.get_implementation().get_user_attempts(request, credentials)
    last = max(
        filter(None, (matching.aggregate(last=Max("attempt_time"))["last"] for matching in attempts)), default=None
    )
    return cool_off if last is None else last + cool_off - timezone.now()


def _failure_keys(address: str) -> tuple[str, str]:
    return f"api-token-failures:{address}:count", f"api-token-failures:{address}:window-ends"


def api_token_failure_record(address: str, *, now: datetime) -> None:
    """Count a wrong API token from this address, in a window that starts with its first wrong token."""
    count_key, ends_key = _failure_keys(address)
    window_ends = cache.get(ends_key)
    if window_ends is None or window_ends <= now:
        window = settings.API_TOKEN_FAILURE_WINDOW
        cache.set_many({count_key: 0, ends_key: now + window}, timeout=math.ceil(window.total_seconds()))
    try:
        cache.incr(count_key)
    except ValueError:  # the window ended between the two calls
        pass


def api_token_failures_wait(address: str, *, now: datetime) -> int | None:
    """Seconds until this address may try a token again, or None when it has not sent too many wrong ones."""
    count_key, ends_key = _failure_keys(address)
    found = cache.get_many([count_key, ends_key])
    window_ends = found.get(ends_key)
    if found.get(count_key, 0) < settings.API_TOKEN_FAILURE_LIMIT or window_ends is None or window_ends <= now:
        return None
    return max(1, math.ceil((window_ends - now).total_seconds()))


class ThrottledTokenAuthentication(TokenAuthentication):
    """DRF's token check, refusing every token from an address that sent too many wrong ones lately.

    DRF authenticates before it throttles, so a wrong token would answer 401 before any throttle ran: the count
    lives here. Once over the limit even a right token gets 429, or trying tokens from that address would still
    tell right from wrong. A request without a token (the browsable API's session) reads nothing from the cache.
    """

    model = ApiToken  # stored hashed: DRF's lookup by key finds it by the key's SHA-256

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        address, now = client_ip(request), timezone.now()
        if wait := api_token_failures_wait(address, now=now):
            raise Throttled(wait=wait, detail="Too many wrong API tokens from your address.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            api_token_failure_record(address, now=now)
            raise
