"""What the hot paths cost in queries: a webhook request, processing a batch of closures, one send."""

import math
from datetime import timedelta

import pytest
import responses
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import InboundWebhook
from surveys.delivery.sending import survey_request_send
from surveys.intake.process import inbound_webhooks_process_pending
from surveys.models import IntegrationSettings, SurveyRequest
from tests.factories import SurveyRequestFactory
from tests.helpers import notification, post_webhook

# Processing a batch of closures: the claim, the accounts, the conversations' requests and events, the customers'
# surveys in the window; the records in one insert, the send tasks in another, the counts, the webhooks' statuses,
# and the claim that finds nothing left: however many closures. Then the sends, each account's fair share of the queue
# (surveys/delivery/dispatch.py): their accounts, given back, counted in flight, the accounts that send, whether another
# account has sends in flight and how many clusters are alive (for an account's share alone; a process reads the
# heartbeats once every CLUSTER_HEARTBEAT_SECONDS), each one's oldest due, marked queued: 8 more.
BATCH_QUERIES = 18
# One send: read it, check the rules against other requests, claim it with its call's row and count; record the answer,
# mark it sent and count. Transaction control (BEGIN, COMMIT: SQLite shows them, PostgreSQL's driver doesn't) aside.
SEND_QUERIES = 8
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def closure(n: int) -> dict:
    payload = notification("conversation_admin_closed_v2", id=f"n{n}", created_at=int(timezone.now().timestamp()))
    item = payload["data"]["item"]
    item["id"] = f"c{n}"
    item["source"]["author"].update(id=f"u{n}", email=f"customer{n}@example.com")
    item["contacts"]["contacts"][0]["id"] = f"u{n}"
    return payload


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: no test transaction's savepoints
def test_a_webhook_request_costs_at_most_four_queries(client, account, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # the first one also queues the processing task
        assert post_webhook(client, closure(1), process=False).status_code == 200
    with django_assert_max_num_queries(4):
        assert post_webhook(client, closure(2), process=False).status_code == 200
    assert InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED).count() == 2


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: no test transaction's savepoints
@pytest.mark.parametrize("closures", [10, 100])
def test_processing_a_batch_of_closures_costs_the_same_queries_however_many(client, account, settings, closures):
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_BATCH_TRANSACTION_SECONDS = 100, 600
    IntegrationSettings.objects.filter(account=account).update(suppression_window=timedelta(days=7))
    for n in range(closures):
        post_webhook(client, closure(n), process=False)
    with CaptureQueriesContext(connection) as captured:
        assert inbound_webhooks_process_pending() == closures
    assert SurveyRequest.objects.filter(status=SurveyRequest.Status.SCHEDULED).count() == closures
    # One insert for the records, but SQLite takes at most 999 parameters a statement: 30 records each.
    fields = [field for field in SurveyRequest._meta.concrete_fields if not field.primary_key]
    inserts = math.ceil(closures / connection.ops.bulk_batch_size(fields, [None] * closures))
    # Parallel drains on PostgreSQL: a drain's slot (take, let go), and the claim's lease and reads of the leased
    # conversations (see surveys/intake/process.py), each once a batch; and the dispatch's advisory locks
    # (surveys/delivery/dispatch.py).
    parallel = 8 if connection.vendor == "postgresql" else 0
    assert len(statements(captured)) <= BATCH_QUERIES + parallel + inserts - 1, "\n".join(statements(captured))


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)]


@pytest.mark.django_db(transaction=True)  # autocommit, as in production
@responses.activate
def test_one_send_costs_a_bounded_number_of_queries(account):
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={}, status=201)
    IntegrationSettings.objects.filter(account=account).update(suppression_window=timedelta(days=7))
    account.refresh_from_db()
    past = timezone.now() - timedelta(minutes=1)
    survey_request = SurveyRequestFactory(account=account, channel="chat", closed_at=past, send_after=past)
    with CaptureQueriesContext(connection) as captured:
        assert survey_request_send(survey_request.pk, now=timezone.now()).status == SurveyRequest.Status.SENT
    statements = [
        query["sql"] for query in captured.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)
    ]
    assert len(statements) <= SEND_QUERIES, "\n".join(statements)
