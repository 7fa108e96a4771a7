"""One account's burst never starves another (issue 18): the intake claims waiting webhooks in turns across
workspaces, each conversation still in order; sends are queued a fair share per account (surveys/delivery/dispatch.py): never
more than SEND_ACCOUNT_IN_FLIGHT of an account queued or sending, at most SEND_ACCOUNT_PER_TICK a tick, and a send
that ends hands its slot to its account's next. bench/fairness.py measures what users get from it."""

from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import InboundWebhook
from portal.heartbeat import cluster_heartbeat_record
from portal.queue import TaskBatch
from portal.schedules import SEND_TASK
from surveys.delivery.dispatch import survey_request_take_next, survey_requests_dispatch
from surveys.delivery.on_time import survey_requests_queue_coming_due
from surveys.intake import process as intake
from surveys.intake.claim import inbound_webhooks_claim
from surveys.models import SurveyRequest
from surveys.tasks import send_survey_request
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import notification, post_webhook, queued_tasks

pytestmark = pytest.mark.django_db

S = SurveyRequest.Status
AT = datetime(2025, 11, 28, 10, 0, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def store(client, name, *, id, seconds: int, workspace: str = "ws1test", conversation: str | None = None) -> None:
    """A webhook stored by the request and left waiting, `seconds` after AT, of `workspace`."""
    payload = notification(name, id=id, created_at=int((AT + seconds * SECOND).timestamp()), app_id=workspace)
    if conversation is not None:
        payload["data"]["item"]["id"] = conversation
    assert post_webhook(client, payload, process=False).status_code == 200


def claimed(limit: int) -> list[str]:
    with transaction.atomic():
        return [webhook.notification_id for webhook in inbound_webhooks_claim(limit=limit).webhooks]


def test_a_claim_takes_turns_across_workspaces_rather_than_the_oldest_overall(client, account):
    for n in range(5):  # a burst of one workspace...
        store(client, "conversation_admin_closed", id=f"a{n}", seconds=n, conversation=f"a{n}")
    store(client, "conversation_admin_closed", id="b0", seconds=10, workspace="ws2other", conversation="b0")
    # ...doesn't hold back another's, newer though it is: each workspace's oldest first, then each one's second.
    assert claimed(limit=2) == ["a0", "b0"]


def test_each_conversation_stays_in_created_at_order_across_turns(client, account):
    store(client, "conversation_admin_opened", id="reopen", seconds=30, conversation="x")
    store(client, "conversation_admin_closed", id="close", seconds=0, conversation="x")
    store(client, "conversation_admin_closed", id="other", seconds=10, conversation="y")
    store(client, "conversation_admin_closed", id="b0", seconds=40, workspace="ws2other", conversation="b0")
    assert claimed(limit=10) == ["close", "b0", "other", "reopen"]


def test_a_batch_acts_on_another_workspace_before_the_rest_of_a_burst(client, account, settings):
    settings.INTAKE_BATCH_SIZE = 3
    other = AccountFactory(intercom_workspace_id="ws2other")
    for n in range(6):
        store(client, "conversation_admin_closed", id=f"a{n}", seconds=n, conversation=f"a{n}")
    store(client, "conversation_admin_closed", id="b0", seconds=10, workspace=other.intercom_workspace_id)
    with transaction.atomic():
        claim = inbound_webhooks_claim(limit=settings.INTAKE_BATCH_SIZE)
        intake.inbound_webhooks_process_batch(claim, deadline=float("inf"), now=timezone.now(), tasks=TaskBatch())
    done = set(InboundWebhook.objects.exclude(status=InboundWebhook.Status.RECEIVED).values_list("notification_id"))
    assert done == {("a0",), ("a1",), ("b0",)}
    assert SurveyRequest.objects.filter(account=other).count() == 1


def queued_sends() -> list[int]:
    return [task["args"][0] for task in queued_tasks() if task["func"] == SEND_TASK]


def due(account, count: int, *, start: int = 0, **fields) -> list[SurveyRequest]:
    return [
        SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=10) + (start + n) * SECOND, **fields)
        for n in range(count)
    ]


def test_the_poller_queues_each_account_its_share_in_turns(account, settings, django_capture_on_commit_callbacks):
    settings.SEND_ACCOUNT_IN_FLIGHT = 2
    burst = due(account, 5)
    other = due(AccountFactory(), 1, start=100)  # due after all of the burst
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_queue_coming_due(now=NOW) == [burst[0].pk, other[0].pk, burst[1].pk]
        assert survey_requests_queue_coming_due(now=NOW + SECOND) == []  # both at their share, or done
    assert queued_sends() == [burst[0].pk, other[0].pk, burst[1].pk]  # in turns: each one's oldest first


def test_sending_requests_count_against_the_share(account, settings, django_capture_on_commit_callbacks):
    """An account whose calls hang (Stella times out, or answers slowly) holds at most its share of the workers."""
    settings.SEND_ACCOUNT_IN_FLIGHT = 2
    due(account, 2, status=S.SENDING, claimed_at=NOW)
    waiting = due(account, 3, start=2)
    other = due(AccountFactory(), 1, start=100)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=NOW) == [other[0].pk]
    assert SurveyRequest.objects.filter(pk__in=[r.pk for r in waiting], queued_at__isnull=False).count() == 0


def clusters(count: int, *, workers: int, settings) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": workers}
    for n in range(count):
        cluster_heartbeat_record(f"host:{n}", started_at=NOW, now=NOW, metrics=[])


def test_an_account_alone_may_use_every_live_worker_but_one(account, settings, django_capture_on_commit_callbacks):
    """Nobody else has anything to send: its burst goes out as fast as the workers can, not at its share's pace."""
    settings.SEND_ACCOUNT_IN_FLIGHT = 2
    clusters(2, workers=4, settings=settings)
    burst = due(account, 10)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=NOW) == [r.pk for r in burst[:7]]
        assert survey_requests_dispatch(now=NOW + SECOND) == []


def test_once_another_account_sends_the_one_alone_is_back_to_its_share(
    account, settings, django_capture_on_commit_callbacks
):
    """Its senders take no more of its requests (each stops after the send under way); the other's is queued."""
    settings.SEND_ACCOUNT_IN_FLIGHT = 2
    clusters(2, workers=4, settings=settings)
    due(account, 5, status=S.SENDING, claimed_at=NOW)
    due(account, 3, start=5)
    assert survey_request_take_next(account.pk, now=NOW) is not None  # alone: 6 of its 7
    other = due(AccountFactory(), 1, start=100)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=NOW) == [other[0].pk]
    assert survey_request_take_next(account.pk, now=NOW) is None  # 6 in flight, over its share of 2


def test_the_poller_queues_at_most_its_tick_of_an_account(account, settings, django_capture_on_commit_callbacks):
    settings.SEND_ACCOUNT_IN_FLIGHT, settings.SEND_ACCOUNT_PER_TICK = 10, 2
    burst = due(account, 5)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=NOW) == [burst[0].pk, burst[1].pk]
        assert survey_requests_dispatch(now=NOW + SECOND) == [burst[2].pk, burst[3].pk]


def test_closures_past_the_share_wait_in_the_database_unqueued(
    client, account, settings, django_capture_on_commit_callbacks
):
    settings.SEND_ACCOUNT_IN_FLIGHT = 2
    for n in range(4):
        payload = notification("conversation_admin_closed_v2", id=f"n{n}")
        payload["data"]["item"]["id"] = f"c{n}"
        payload["data"]["item"]["source"]["author"].update(id=f"u{n}", email=f"customer{n}@example.com")
        payload["data"]["item"]["contacts"]["contacts"][0]["id"] = f"u{n}"
        with django_capture_on_commit_callbacks(execute=True):
            post_webhook(client, payload)
    scheduled = SurveyRequest.objects.filter(status=S.SCHEDULED).order_by("pk")
    assert scheduled.count() == 4
    assert list(scheduled.filter(queued_at__isnull=False).values_list("pk", flat=True)) == sorted(queued_sends())
    assert len(queued_sends()) == 2


def due_now(account, count: int, settings) -> tuple[datetime, list[SurveyRequest]]:
    """`count` chat requests of `account` due in the last seconds, oldest first, with Stella (mocked) accepting them."""
    account.integration.test_api_key = "test-key-0000-1111-2222-abcd"
    account.integration.save()
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
    now = datetime.now(UTC)
    made = [
        SurveyRequestFactory(account=account, channel="chat", send_after=now - (10 - n) * SECOND) for n in range(count)
    ]
    return now, made


@responses.activate
def test_a_sender_sends_its_accounts_next_while_it_has_time(account, settings, django_capture_on_commit_callbacks):
    settings.SEND_ACCOUNT_IN_FLIGHT = 1
    now, requests = due_now(account, 3, settings)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=now) == [requests[0].pk]
        assert send_survey_request(requests[0].pk) == S.SENT  # then the next two, in this task, one at a time
    assert set(SurveyRequest.objects.values_list("status", flat=True)) == {S.SENT}
    assert len(responses.calls) == 3
    assert queued_sends() == [requests[0].pk]  # nothing more queued (the first's task is still on this broker)


@responses.activate
def test_a_sender_hands_its_worker_over_when_another_accounts_send_waits_for_one(
    account, settings, django_capture_on_commit_callbacks
):
    """Every worker may be busy (the intake holds one): another account's queued send goes before this one's next."""
    settings.SEND_ACCOUNT_IN_FLIGHT = 1
    now, (first, second) = due_now(account, 2, settings)
    other = SurveyRequestFactory(account=AccountFactory(), channel="chat", send_after=now - SECOND, queued_at=now)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=now) == [first.pk]
        assert send_survey_request(first.pk) == S.SENT
    assert len(responses.calls) == 1  # the other's send waits in the queue: this worker goes to it
    assert queued_sends() == [first.pk, second.pk]  # this account's next behind it
    other.refresh_from_db()
    assert other.status == S.SCHEDULED


@responses.activate
def test_out_of_time_a_sender_hands_its_slot_on_through_the_queue(
    account, settings, django_capture_on_commit_callbacks
):
    settings.SEND_ACCOUNT_IN_FLIGHT, settings.SEND_CHAIN_SECONDS = 1, 0
    now, (first, second) = due_now(account, 2, settings)
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_requests_dispatch(now=now) == [first.pk]
        assert send_survey_request(first.pk) == S.SENT
    assert queued_sends() == [first.pk, second.pk]
    second.refresh_from_db()
    assert (second.status, second.queued_at is not None) == (S.SCHEDULED, True)


@responses.activate
def test_a_send_reads_its_conversation_and_the_few_in_flight_not_the_accounts_backlog(
    account, settings, django_capture_on_commit_callbacks
):
    """Each send of a burst runs these reads; on SQLite (no statistics) the planner read every scheduled request, or
    the account's whole backlog, for three of them, so one cluster sent 10,000 at about 17 a second. The plan of
    each names the index that keeps it to the conversation or to the requests in flight."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's planner, without statistics")
    settings.SEND_ACCOUNT_IN_FLIGHT = 1
    now, requests = due_now(account, 3, settings)
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as ran:
        survey_requests_dispatch(now=now)
        send_survey_request(requests[0].pk)

    def plan(*fragments: str) -> str:
        """The plan of the first query run with all these in its SQL (a send runs each once)."""
        sql = next(query["sql"] for query in ran.captured_queries if all(part in query["sql"] for part in fragments))
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return " ".join(str(row[-1]) for row in cursor.fetchall())

    candidates = plan('"surveys_surveyrequest"."conversation_id" = ', 'NOT ("surveys_surveyrequest"."id" = ')
    assert "conversation_id=?" in candidates  # send_candidates: the conversation's, not the account's by closed_at
    another_waits = plan('"queued_at" IS NOT NULL', 'NOT ("surveys_surveyrequest"."account_id" = ')
    assert "survey_request_queued" in another_waits  # not every scheduled request, by (status, send_after)
    assert "survey_request_in_flight" in plan("RETURNING id", "count(*)")  # the account's in flight, not its backlog
