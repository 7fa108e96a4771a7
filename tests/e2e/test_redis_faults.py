"""The real cluster on the Redis broker, killed with SIGKILL in the middle of a batch of sends, then restarted.
Redis keeps no receipts: the tasks the dead cluster had taken are gone, not delivered again after `retry`, so
only the sweep brings their requests back. Every request must still reach a final state, none sent twice."""

import signal
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from sandbox.demo import sandbox_people_create
from sandbox.models import StellaSandboxRequest
from surveys.delivery.sending import survey_requests_send_due
from surveys.models import SurveyRequest
from tests.e2e.test_cluster_faults import BATCH, CLUSTER, FINAL, start_cluster, statuses, stop
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import queued_tasks, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_broker(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://… (CI's third run, with Redis, does)")
    if not settings.Q_CLUSTER.get("redis"):
        pytest.skip("needs the Redis broker: set Q_REDIS_URL=redis://127.0.0.1:6379/<db> (CI's third run does)")
    try:
        get_broker().ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis at {settings.Q_CLUSTER['redis']} is not answering")


def test_killed_cluster_on_redis_loses_its_tasks_but_the_sweep_sends_each_request_once(
    redis_broker, live_server, settings
):
    settings.SANDBOX_STELLA_LATENCY_MS = 250
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 2, "retry": 3}
    # Room for the whole batch in the queue at once (the fair share would hold all but a few back in the database),
    # so the kill takes many tasks with it, as it would with many accounts sending.
    settings.SEND_ACCOUNT_IN_FLIGHT = settings.SEND_ACCOUNT_PER_TICK = BATCH
    cluster_settings = {**CLUSTER, "SEND_ACCOUNT_IN_FLIGHT": str(BATCH), "SEND_ACCOUNT_PER_TICK": str(BATCH)}
    sandbox_people_create()
    account = AccountFactory(integration__test_api_key="sandbox-test-key-0001")
    past = timezone.now() - timedelta(minutes=1)
    for _ in range(BATCH):
        SurveyRequestFactory(account=account, closed_at=past, send_after=past, teammate_email="tess@support.example")
    stella_url = f"{live_server.url}/sandbox/stella"
    survey_requests_send_due(now=timezone.now())
    # The sends wait in Redis, not in the database's queue table.
    assert len(queued_tasks()) == BATCH
    assert not OrmQ.objects.exists()

    cluster = start_cluster(stella_url, settings=cluster_settings)
    try:
        wait_until(lambda: statuses()[SurveyRequest.Status.SENT] >= 5, timeout=60, message=statuses, interval=0.2)
        stop(cluster, signal.SIGKILL)
        at_kill = statuses()
        unfinished = sum(n for status, n in at_kill.items() if status not in FINAL)
        assert unfinished, "the batch finished before the kill: nothing was tested"
        # What the dead cluster had taken off the list (in flight or fetched ahead) is gone with it.
        assert len(queued_tasks()) < unfinished, (len(queued_tasks()), at_kill)

        cluster = start_cluster(stella_url, settings=cluster_settings)

        def all_final() -> bool:
            # What the every-minute sweep does in production, run here as often as the test waits.
            survey_requests_send_due(now=timezone.now())
            return set(statuses()) <= FINAL

        wait_until(all_final, timeout=90, message=statuses, interval=0.2)
    finally:
        stop(cluster, signal.SIGTERM)

    posted = Counter(body["ext_interaction_id"] for body in StellaSandboxRequest.objects.values_list("body", flat=True))
    final = statuses()
    assert final[SurveyRequest.Status.SENT] + final[SurveyRequest.Status.AMBIGUOUS] == BATCH, final
    # Each request reached Stella once at most: sent ones exactly once, ambiguous ones (their call was cut off,
    # by the kill or by the task timeout on a busy machine) never called again.
    for status, conversation_id in SurveyRequest.objects.values_list("status", "conversation_id"):
        assert posted[conversation_id] == 1 if status == SurveyRequest.Status.SENT else posted[conversation_id] <= 1
