"""Brute force: who is knocking (the client's address), the sign-in lockout page, and wrong API tokens.

Sign-in lockouts are django-axes' (settings: AXES_*); this module gives it the client's address and the page to
show. Wrong API tokens are counted here, per address, in Django's cache (settings: API_TOKEN_FAILURE_*).
"""

import ipaddress
import math
from datetime import datetime, timedelta
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


def client_ip(request: HttpRequest | Request) -> str:
    """The address a request comes from: the peer, or behind the TLS proxy the one the proxy saw.

    The proxy appends the address it saw to X-Forwarded-For, so only the last entry is trusted: the ones before
    it are whatever the client sent. Without the proxy the header is ignored, as anyone can set it.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not settings.BEHIND_TLS_PROXY:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        return peer


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
