"""Delayed sends and retries go out on time: the cluster's poller (surveys/delivery/on_time.py) queues a request the
moment it comes due, with no django-q2 scheduler tick in between, claims nothing that isn't due or is
already someone's, and leaves the minute sweep to recover whatever it missed. The real cluster, with two
of them running at once, is in tests/e2e/test_on_time.py."""

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.db.models import F
from django_q.models import Schedule

from portal.schedules import SCHEDULES, SEND_TASK
from surveys.delivery.on_time import DuePoller, survey_requests_queue_coming_due
from surveys.delivery.sending import survey_request_send, survey_requests_send_due
from surveys.models import SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import notification, post_webhook, queued_tasks, run_queued_tasks, wait_until

pytestmark = pytest.mark.django_db

S = SurveyRequest.Status
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def queued_sends() -> list[int]:
    """The survey requests waiting on the broker for a sender."""
    return [task["args"][0] for task in queued_tasks() if task["func"] == SEND_TASK]


def test_a_request_that_just_came_due_is_queued_without_the_scheduler(account, django_capture_on_commit_callbacks):
    survey_request = SurveyRequestFactory(account=account, send_after=NOW - SECOND)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=NOW) == [survey_request.pk]
    assert queued_sends() == [survey_request.pk]
    assert SurveyRequest.objects.get(pk=survey_request.pk).queued_at == NOW


def test_it_claims_nothing_not_yet_due_already_queued_or_not_sendable(account, django_capture_on_commit_callbacks):
    not_yet = SurveyRequestFactory(account=account, send_after=NOW + timedelta(microseconds=1))
    queued = SurveyRequestFactory(account=account, send_after=NOW - SECOND, queued_at=NOW - SECOND)
    SurveyRequestFactory(account=account, send_after=NOW - SECOND, status=S.SENDING, claimed_at=NOW - SECOND)
    SurveyRequestFactory(account=account, send_after=NOW - SECOND, status=S.CANCELLED)
    SurveyRequestFactory(account=account, send_after=NOW - SECOND, status=S.SENT)
    SurveyRequestFactory(account=AccountFactory(health__sending_paused_at=NOW), send_after=NOW - SECOND)
    SurveyRequestFactory(account=AccountFactory(integration__enabled=False), send_after=NOW - SECOND)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=NOW) == []
    assert queued_sends() == []
    assert SurveyRequest.objects.get(pk=not_yet.pk).queued_at is None
    assert SurveyRequest.objects.get(pk=queued.pk).queued_at == NOW - SECOND
    assert not SurveyRequest.objects.filter(queued_at=NOW).exists()


def test_an_idle_tick_is_one_query(account, django_assert_num_queries):
    SurveyRequestFactory(account=account, send_after=NOW + timedelta(minutes=5))
    SurveyRequestFactory(account=account, send_after=NOW - timedelta(hours=1), queued_at=NOW - SECOND)  # in flight
    with django_assert_num_queries(1):
        assert survey_requests_queue_coming_due(now=NOW) == []


def test_pollers_and_the_sweep_queue_a_request_once(account, django_capture_on_commit_callbacks):
    """Two clusters' pollers, and the minute sweep, all look: the first to mark a request queues it."""
    survey_request = SurveyRequestFactory(account=account, send_after=NOW - SECOND)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=NOW) == [survey_request.pk]
        assert survey_requests_queue_coming_due(now=NOW) == []
        assert survey_requests_queue_coming_due(now=NOW + SECOND) == []
        assert survey_requests_send_due(now=NOW + 30 * SECOND) == 0
    assert queued_sends() == [survey_request.pk]


def test_a_delayed_closure_waits_in_no_schedule_and_is_queued_when_its_delay_ends(
    client, account, django_capture_on_commit_callbacks
):
    account.integration.channel_delay = timedelta(seconds=15)
    account.integration.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, notification("conversation_admin_closed_v2", created_at=int(time.time())))
    survey_request = SurveyRequest.objects.get()
    assert (survey_request.status, survey_request.queued_at) == (S.SCHEDULED, None)
    # Nothing rides django-q2's scheduler: its schedules are the declared ones, unmoved.
    assert set(Schedule.objects.values_list("name", flat=True)) == {every.name for every in SCHEDULES}
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=survey_request.send_after - timedelta(microseconds=1)) == []
        assert survey_requests_queue_coming_due(now=survey_request.send_after) == [survey_request.pk]
    assert queued_sends() == [survey_request.pk]


def test_a_retry_is_queued_when_its_backoff_ends_and_then_sent(account, settings, django_capture_on_commit_callbacks):
    settings.STELLA_RETRY_BASE_SECONDS = 1
    account.integration.test_api_key = "test-key-0000-1111-2222-abcd"
    account.integration.save()
    survey_request = SurveyRequestFactory(account=account, send_after=NOW)
    with responses.RequestsMock() as stella:
        stella.post(f"{settings.STELLA_API_URL}/v1/requests", status=503, json={"message": "unavailable"})
        retrying = survey_request_send(survey_request.pk, now=NOW)
    assert (retrying.status, retrying.attempts, retrying.queued_at) == (S.SCHEDULED, 1, None)
    assert NOW < retrying.send_after <= NOW + 1.5 * SECOND
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=retrying.send_after - timedelta(microseconds=1)) == []
        assert survey_requests_queue_coming_due(now=retrying.send_after) == [survey_request.pk]
    # Then the cluster sends it, on the wall clock: keep the request due whatever today's date is.
    SurveyRequest.objects.filter(pk=survey_request.pk).update(send_after=F("send_after") - timedelta(days=1))
    with responses.RequestsMock() as stella:
        stella.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
        assert run_queued_tasks() == ["surveys.tasks.send_survey_request"]
        assert len(stella.calls) == 1
    sent = SurveyRequest.objects.get(pk=survey_request.pk)
    assert (sent.status, sent.attempts) == (S.SENT, 2)


def test_the_sweep_still_recovers_what_the_poller_missed(account, django_capture_on_commit_callbacks):
    """Due long ago (the poller was down): the poller's, as soon as it runs. Queued and the message lost: the
    sweep's, which gives its slot back and queues it again."""
    missed = SurveyRequestFactory(account=account, send_after=NOW - timedelta(hours=2))
    lost = SurveyRequestFactory(account=account, send_after=NOW - 10 * SECOND, queued_at=NOW - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=NOW) == [missed.pk]
        assert survey_requests_send_due(now=NOW) == 1
    assert sorted(queued_sends()) == sorted([missed.pk, lost.pk])


@pytest.mark.django_db(transaction=True)
def test_the_poller_thread_queues_what_comes_due_and_stops_when_asked():
    """Each tick reads the poller's clock, here one that moves a second a tick: the request comes due at the third."""
    account = AccountFactory()
    survey_request = SurveyRequestFactory(account=account, send_after=NOW + 2 * SECOND)
    ticks = itertools.count()
    clock_read = []

    def clock() -> datetime:
        clock_read.append(NOW + next(ticks) * SECOND)
        return clock_read[-1]

    poller = DuePoller(interval=0.01, clock=clock)
    poller.start()
    try:
        wait_until(queued_sends, timeout=30, message="the poller never queued the request that came due")
    finally:
        assert poller.stop(timeout=10)
    assert queued_sends() == [survey_request.pk]
    assert SurveyRequest.objects.get(pk=survey_request.pk).queued_at == NOW + 2 * SECOND
    assert len(clock_read) >= 3


@pytest.mark.django_db(transaction=True)
def test_the_poller_thread_outlives_a_failing_tick(monkeypatch):
    """A database error in one tick is logged, and the next tick tries again: the sweep covers the gap."""
    from surveys.delivery import on_time

    calls = []
    third_tick = threading.Event()

    def flaky(*, now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        if len(calls) == 3:
            third_tick.set()
        return []

    monkeypatch.setattr(on_time, "survey_requests_queue_coming_due", flaky)
    poller = DuePoller(interval=0.01)
    poller.start()
    try:
        assert third_tick.wait(timeout=30), "the poller stopped ticking after a failing tick"
    finally:
        assert poller.stop(timeout=10)
    assert len(calls) >= 3
