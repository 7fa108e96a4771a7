"""Guessing passwords: both login pages lock a username out from an address after a few wrong ones (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth.models import User
from django.db.models import F
from django.http import HttpRequest
from django.urls import reverse

pytestmark = pytest.mark.django_db
PASSWORD = "the-right-password-42"
# Each login page, who uses it, and where its form sends them.
LOGIN_PAGES = [("/login/", "helpdesk", "/status/"), ("/admin/login/", "csm", "/admin/")]


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def users(db):
    User.objects.create_user("helpdesk", password=PASSWORD)
    User.objects.create_superuser("csm", "csm@stella.example", PASSWORD)


def log_in(client, url: str, username: str, password: str, next_url: str = "", **extra):
    return client.post(url, {"username": username, "password": password, "next": next_url}, **extra)


def is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def cool_off_passes(settings) -> None:
    """Time moves on for the stored failures: each one now lies just beyond the cool-off."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


@pytest.mark.parametrize(("url", "username", "home"), LOGIN_PAGES)
def test_forty_wrong_passwords_lock_the_login_even_for_the_right_one(client, url, username, home):
    answers = [log_in(client, url, username, f"guess-{n}") for n in range(40)]
    assert {answer.status_code for answer in answers[:4]} == {200}  # the form again, with its error
    assert {answer.status_code for answer in answers[4:]} == {429}
    locked = log_in(client, url, username, PASSWORD)
    assert locked.status_code == 429 and not is_logged_in(client)
    page = locked.content.decode()
    assert "Try again in 15 minutes" in page and "CSM can unlock it from the admin" in page
    assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60


@pytest.mark.parametrize(("url", "username", "home"), LOGIN_PAGES)
def test_after_the_cool_off_the_right_password_works(client, settings, url, username, home):
    for n in range(40):
        log_in(client, url, username, f"guess-{n}")
    cool_off_passes(settings)
    answer = log_in(client, url, username, PASSWORD, home)
    assert (answer.status_code, answer["Location"]) == (302, home)
    assert is_logged_in(client)


def test_tries_during_the_lockout_never_push_the_end_back(client, settings):
    for n in range(5):
        log_in(client, "/login/", "helpdesk", f"guess-{n}")
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    answer = log_in(client, "/login/", "helpdesk", PASSWORD)
    assert answer.status_code == 429 and "Try again in 5 minutes" in answer.content.decode()
    assert 4 * 60 < int(answer["Retry-After"]) <= 5 * 60


def test_the_lock_holds_one_username_from_one_address(client):
    for n in range(5):
        log_in(client, "/login/", "helpdesk", f"guess-{n}")
    assert log_in(client, "/login/", "helpdesk", PASSWORD).status_code == 429
    # Someone guessing from elsewhere can't lock the real user out of their own network, nor another user.
    assert log_in(client, "/login/", "helpdesk", PASSWORD, REMOTE_ADDR="10.0.0.7").status_code == 302
    client.logout()
    assert log_in(client, "/login/", "csm", PASSWORD).status_code == 302


def test_a_right_password_clears_the_earlier_mistakes(client):
    for n in range(4):
        log_in(client, "/login/", "helpdesk", f"typo-{n}")
    assert log_in(client, "/login/", "helpdesk", PASSWORD).status_code == 302
    client.logout()
    for n in range(4):
        assert log_in(client, "/login/", "helpdesk", f"typo-{n}").status_code == 200


def test_failed_logins_show_in_the_admin_and_a_csm_unlocks_them(client, admin_client):
    for n in range(5):
        log_in(client, "/login/", "helpdesk", f"guess-{n}")
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Access attempts" in index and "Access failures" in index and "Access logs" in index
    attempts = admin_client.get(reverse("admin:axes_accessattempt_changelist"), {"locked_out": "yes"})
    assert "helpdesk" in attempts.content.decode()
    assert AccessFailureLog.objects.filter(username="helpdesk").count() == 5
    assert "helpdesk" in admin_client.get(reverse("admin:axes_accessfailurelog_changelist")).content.decode()

    attempt = AccessAttempt.objects.get(username="helpdesk")
    assert (attempt.failures_since_start, attempt.path_info) == (5, "/login/")
    admin_client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert not AccessAttempt.objects.exists()
    assert log_in(client, "/login/", "helpdesk", PASSWORD).status_code == 302


def test_the_test_clients_login_needs_a_request_for_axes(client):
    """django-axes counts failures per request, so authenticate() needs one: tests pass an empty request."""
    assert client.login(request=HttpRequest(), username="helpdesk", password=PASSWORD)
    with pytest.raises(ValueError, match="requires a request"):
        client.login(username="helpdesk", password=PASSWORD)


def test_behind_the_proxy_the_lock_follows_the_forwarded_address(client, behind_proxy):
    for n in range(5):
        log_in(client, "/login/", "helpdesk", f"guess-{n}", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 198.51.100.1")
    assert AccessAttempt.objects.get().ip_address == "198.51.100.1"
    assert log_in(client, "/login/", "helpdesk", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert log_in(client, "/login/", "helpdesk", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 302


@pytest.mark.parametrize(("url", "username", "home"), LOGIN_PAGES)
def test_a_client_reaching_gunicorn_directly_is_locked_out_whatever_x_forwarded_for_it_sends(
    client, behind_proxy, settings, url, username, home
):
    """Behind the proxy, someone who reaches gunicorn itself (not through the proxy) and rotates the header is
    counted by their own address: the header of a peer that is no trusted proxy is their own word."""
    direct = {"REMOTE_ADDR": "203.0.113.9"}
    answers = [
        log_in(client, url, username, f"guess-{n}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}", **direct)
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers[-1].status_code == 429
    assert AccessAttempt.objects.get().ip_address == "203.0.113.9"
    locked = log_in(client, url, username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.250", **direct)
    assert locked.status_code == 429 and not is_logged_in(client)
