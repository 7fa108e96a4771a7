"""What the hot paths cost in queries: a webhook request, processing a batch of closures, one send."""

from datetime import timedelta

import pytest
import responses
from django.conf import settings
from django.utils import timezone

from integrations.models import InboundWebhook
from surveys.intake import inbound_webhooks_process_pending
from surveys.models import SurveyRequest
from surveys.sending import survey_request_send
from tests.factories import SurveyRequestFactory
from tests.helpers import notification, post_webhook

BATCH = 100
# Per closure today (about 8): its conversation's history and the suppression window, its record, queueing its send,
# and the savepoints around it. Counts, webhook statuses and the claim are per batch. Reading histories and last
# surveys for the whole batch at once (a bound independent of BATCH, as issue 10 asks) is not done yet.
PER_CLOSURE = 9
PER_BATCH = 10
# 10 statements (read, conversation history, claim, call row, count; call result, sent, counts) and the savepoints of
# the transitions' nested transactions: the issue's 8 is not reached yet.
SEND_QUERIES = 16


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


@pytest.mark.django_db
def test_processing_a_batch_of_closures_costs_a_bounded_number_of_queries_per_closure(
    client, account, settings, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_BATCH_TRANSACTION_SECONDS = BATCH, 600
    for n in range(BATCH):
        post_webhook(client, closure(n), process=False)
    with (
        django_assert_max_num_queries(PER_BATCH + PER_CLOSURE * BATCH),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert inbound_webhooks_process_pending() == BATCH
    assert SurveyRequest.objects.filter(status=SurveyRequest.Status.SCHEDULED).count() == BATCH


@pytest.mark.django_db
@responses.activate
def test_one_send_costs_a_bounded_number_of_queries(account, django_assert_max_num_queries):
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={}, status=201)
    past = timezone.now() - timedelta(minutes=1)
    survey_request = SurveyRequestFactory(account=account, channel="chat", closed_at=past, send_after=past)
    with django_assert_max_num_queries(SEND_QUERIES):
        assert survey_request_send(survey_request.pk, now=timezone.now()).status == SurveyRequest.Status.SENT
