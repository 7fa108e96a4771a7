"""Guessing API tokens: too many wrong ones from an address, and that address waits (429, Retry-After)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from portal.authentication import api_token_failure_record, api_token_failures_wait
from portal.models import ApiToken

pytestmark = pytest.mark.django_db
LIMIT = 5
WINDOW = timedelta(minutes=15)
URL = "/api/survey-requests/"


@pytest.fixture(autouse=True)
def throttle(settings):
    settings.API_TOKEN_FAILURE_LIMIT = LIMIT
    settings.API_TOKEN_FAILURE_WINDOW = WINDOW
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def token(account) -> str:
    user = User.objects.create_user("helpdesk")
    account.support_users.add(user)
    return ApiToken.objects.create(user=user).key


def get(token: str, **extra):
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Token {token}", **extra)


def guess(times: int, **extra) -> list[int]:
    return [get(f"wrong-token-{n:034d}", **extra).status_code for n in range(times)]


def test_a_right_token_works_after_a_few_wrong_ones(token):
    assert guess(LIMIT - 1) == [401] * (LIMIT - 1)
    assert get(token).status_code == 200


def test_one_wrong_token_past_the_limit_gets_429_with_retry_after():
    assert guess(LIMIT) == [401] * LIMIT
    refused = get("wrong-token-again")
    assert refused.status_code == 429
    assert WINDOW.total_seconds() - 5 < int(refused["Retry-After"]) <= WINDOW.total_seconds()
    assert "Too many wrong API tokens" in refused.json()["detail"]


def test_once_over_the_limit_even_the_right_token_waits_for_the_window_to_end(token):
    guess(LIMIT)
    assert get(token).status_code == 429  # or guessing from here would still tell right tokens from wrong
    later = timezone.now() + WINDOW + timedelta(seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert get(token).status_code == 200


def test_other_addresses_and_spoofed_headers(token):
    guess(LIMIT)
    assert get(token, REMOTE_ADDR="10.0.0.7").status_code == 200
    # Not behind a proxy, X-Forwarded-For is the client's own word: it changes nothing.
    assert get(token, HTTP_X_FORWARDED_FOR="10.0.0.7").status_code == 429


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(token, behind_proxy):
    guess(LIMIT, HTTP_X_FORWARDED_FOR="10.1.1.1, 198.51.100.1")
    assert get(token, HTTP_X_FORWARDED_FOR="10.2.2.2, 198.51.100.1").status_code == 429
    assert get(token, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200


def test_a_client_reaching_gunicorn_directly_is_throttled_whatever_x_forwarded_for_it_sends(token, behind_proxy):
    """Behind the proxy, a peer that is no trusted proxy is counted by its own address, not by the header it
    rotates: its next token, even the right one, waits."""
    direct = {"REMOTE_ADDR": "203.0.113.9"}
    answers = [
        get(f"wrong-token-{n:034d}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}", **direct).status_code for n in range(LIMIT)
    ]
    assert answers == [401] * LIMIT
    assert get(token, HTTP_X_FORWARDED_FOR="198.51.100.250", **direct).status_code == 429
    # Through the proxy, the address it claimed last is someone else's, and counted as nobody's guesses.
    assert get(token, HTTP_X_FORWARDED_FOR="198.51.100.250").status_code == 200


def test_a_signed_in_session_is_not_throttled(account, client):
    """The browsable API's session was earned through the login page, which django-axes guards."""
    guess(LIMIT)
    user = User.objects.create_user("browser-user")
    account.support_users.add(user)
    client.force_login(user)
    assert client.get(URL).status_code == 200


def test_a_right_token_costs_its_lookup_and_nothing_more(token):
    with CaptureQueriesContext(connection) as queries:
        assert get(token).status_code == 200
    assert sum(ApiToken._meta.db_table in query["sql"] for query in queries.captured_queries) == 1
    assert not any("cache" in query["sql"] for query in queries.captured_queries)


def test_the_count_starts_over_when_its_window_ends():
    now = timezone.now()
    for _ in range(LIMIT):
        api_token_failure_record("203.0.113.9", now=now)
    assert api_token_failures_wait("203.0.113.9", now=now + timedelta(minutes=5)) == 10 * 60
    assert api_token_failures_wait("203.0.113.9", now=now + WINDOW) is None
    api_token_failure_record("203.0.113.9", now=now + WINDOW)
    assert api_token_failures_wait("203.0.113.9", now=now + WINDOW) is None
