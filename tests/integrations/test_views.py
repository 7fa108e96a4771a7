import json
import threading
from datetime import timedelta

import pytest
import responses
from django.db import connection, transaction
from django.test import Client

from integrations.models import InboundWebhook
from surveys.intake import process as intake
from surveys.models import SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.factories import AccountFactory
from tests.helpers import load_fixture, notification, post_webhook, queued_tasks, queued_tasks_purge, sign

pytestmark = pytest.mark.django_db


def test_head_answers_200_for_intercoms_url_check(client):
    assert client.head("/webhooks/intercom/").status_code == 200


def test_get_is_not_allowed(client):
    assert client.get("/webhooks/intercom/").status_code == 405


def test_missing_signature_is_400_and_stores_nothing(client, account):
    body = json.dumps(load_fixture("conversation_admin_closed")).encode()
    response = client.post("/webhooks/intercom/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "X-Hub-Signature header is missing"}
    assert not InboundWebhook.objects.exists()


def test_wrong_signature_is_401_stored_invalid_and_not_acted_on(client, account):
    payload = load_fixture("conversation_admin_closed")
    response = post_webhook(client, payload, signature=sign(b"other body"))
    assert response.status_code == 401
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.INVALID, "Signature mismatch")
    # A forged copy must not block the genuine delivery under the same id.
    assert webhook.notification_id is None
    assert not SurveyRequest.objects.exists()
    assert post_webhook(client, payload).status_code == 200
    assert SurveyRequest.objects.count() == 1


def test_signature_from_another_secret_is_401(client, account):
    body = json.dumps(load_fixture("conversation_admin_closed")).encode()
    assert post_webhook(client, body, signature=sign(body, "someone-elses-secret")).status_code == 401


def test_body_over_one_mib_is_413_without_storing(client, account):
    body = b'{"padding": "' + b"x" * (1024 * 1024) + b'"}'
    response = post_webhook(client, body)
    assert response.status_code == 413
    assert not InboundWebhook.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>not json</html>", "body is not JSON"),
        (b'{"type": "something"}', "type is not notification_event"),
    ],
)
def test_not_an_intercom_notification_is_400_naming_the_problem(client, account, body, message):
    response = post_webhook(client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.INVALID
    assert message in webhook.error
    assert webhook.body == body.decode()


def test_missing_item_id_is_400_with_its_path(client, account):
    payload = load_fixture("conversation_admin_closed")
    del payload["data"]["item"]["id"]
    response = post_webhook(client, payload)
    assert (response.status_code, response.json()) == (400, {"error": "data.item.id is missing"})


def test_ping_is_200_and_ignored(client, account):
    response = post_webhook(client, load_fixture("ping"))
    assert response.status_code == 200
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.IGNORED
    assert webhook.error == "Topic ping is not acted on"


def test_topic_not_acted_on_is_200_and_ignored(client, account):
    payload = notification("conversation_admin_closed", topic="conversation.admin.noted")
    assert post_webhook(client, payload).status_code == 200
    assert InboundWebhook.objects.get().status == InboundWebhook.Status.IGNORED
    assert not SurveyRequest.objects.exists()


def test_unknown_workspace_is_200_and_ignored_with_the_reason(client, db):
    response = post_webhook(client, notification("conversation_admin_closed", app_id="nobody1"))
    assert response.status_code == 200
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.IGNORED, "No account for workspace nobody1")
    assert not SurveyRequest.objects.exists()


def test_disabled_integration_is_200_and_ignored(client, account):
    account.integration.enabled = False
    account.integration.save()
    assert post_webhook(client, load_fixture("conversation_admin_closed")).status_code == 200
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.IGNORED, "Integration disabled for this account")
    assert webhook.workspace_id == account.intercom_workspace_id
    assert not SurveyRequest.objects.exists()


def test_closed_conversation_is_stored_and_gets_one_survey_request(client, account):
    response = post_webhook(
        client, load_fixture("conversation_admin_closed_v2"), **{"Authorization": "Bearer s3cret-token-value"}
    )
    assert response.status_code == 200
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.PROCESSED
    assert webhook.notification_id == "notif_0a4e8d52-1c3b-4f7a-9a61-5d2b7c9e0201"
    assert webhook.topic == "conversation.admin.closed"
    assert webhook.workspace_id == account.intercom_workspace_id
    assert webhook.headers["Authorization"] == "••••alue"
    survey_request = SurveyRequest.objects.get()
    assert survey_request.inbound_webhook == webhook
    assert (survey_request.channel, survey_request.status) == ("chat", SurveyRequest.Status.SCHEDULED)


def test_same_notification_again_is_200_and_nothing_new(client, account):
    payload = load_fixture("conversation_admin_closed")
    assert post_webhook(client, payload).status_code == 200
    response = post_webhook(client, payload)
    assert (response.status_code, response.json()) == (200, {"status": "duplicate"})
    assert InboundWebhook.objects.count() == 1
    assert SurveyRequest.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_same_notification_delivered_concurrently_is_stored_once():
    AccountFactory(intercom_workspace_id="ws1test")
    body = json.dumps(load_fixture("conversation_admin_closed")).encode()
    barrier = threading.Barrier(6)
    statuses = []

    def deliver():
        barrier.wait()
        statuses.append(post_webhook(Client(), body).status_code)
        connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert InboundWebhook.objects.count() == 1
    assert SurveyRequest.objects.count() == 1


def test_database_failure_is_503_and_stores_nothing(client, account):
    payload = load_fixture("conversation_admin_closed")
    savepoint = transaction.savepoint()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE integrations_inboundwebhook RENAME TO integrations_inboundwebhook_away")
    response = post_webhook(client, payload, process=False)
    assert (response.status_code, response.json()) == (503, {"error": "could not store the webhook; please retry"})
    transaction.savepoint_rollback(savepoint)
    assert not InboundWebhook.objects.exists()

    # Intercom's retry, once the database is back, goes through in full.
    assert post_webhook(client, payload).status_code == 200
    assert SurveyRequest.objects.count() == 1


def test_acknowledged_webhook_waits_as_received_until_processed(client, account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_webhook(client, load_fixture("conversation_admin_closed"), process=False)
    assert (response.status_code, response.json()) == (200, {"status": "received"})
    assert InboundWebhook.objects.get().status == InboundWebhook.Status.RECEIVED
    assert not SurveyRequest.objects.exists()
    # The commit queued the processing task on the broker (a row in the database, or an entry in Redis).
    assert len(callbacks) == 1
    assert len(queued_tasks()) == 1

    assert process_inbound_webhooks() == 1
    assert InboundWebhook.objects.get().status == InboundWebhook.Status.PROCESSED
    assert SurveyRequest.objects.count() == 1


def test_webhooks_are_processed_in_the_order_intercom_created_them(client, account):
    """A reopen created after the close but delivered first still cancels the waiting send."""
    account.integration.channel_delay = timedelta(minutes=10)
    account.integration.save()
    closed = load_fixture("conversation_admin_closed")
    reopened = notification("conversation_admin_opened", created_at=closed["created_at"] + 60)
    post_webhook(client, reopened, process=False)
    post_webhook(client, closed, process=False)
    process_inbound_webhooks()
    processed = InboundWebhook.objects.order_by("processed_at").values_list("topic", flat=True)
    assert list(processed) == ["conversation.admin.closed", "conversation.admin.opened"]
    assert SurveyRequest.objects.get().status == SurveyRequest.Status.CANCELLED


def test_a_bug_in_processing_keeps_the_webhook_as_failed(client, account, monkeypatch):
    def broken_handler(*args):
        raise KeyError("assignee")

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", broken_handler)
    assert post_webhook(client, load_fixture("conversation_admin_closed")).status_code == 200
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.FAILED, "KeyError: 'assignee'")
    # ...and doesn't hold up the webhooks behind it.
    monkeypatch.undo()
    assert post_webhook(client, load_fixture("conversation_admin_closed_v2")).status_code == 200
    assert SurveyRequest.objects.get().conversation_id == "215000000000201"


def test_webhook_calls_nothing_outside_the_portal(client, account):
    with responses.RequestsMock() as outbound:
        for name in ("conversation_admin_closed", "conversation_admin_closed_v2", "conversation_admin_closed_email_v2"):
            assert post_webhook(client, load_fixture(name)).status_code == 200
        assert len(outbound.calls) == 0
    assert SurveyRequest.objects.count() == 3


def test_a_burst_of_webhooks_queues_one_processing_task(client, account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("conversation_admin_closed", "conversation_admin_closed_v2", "conversation_admin_closed_email_v2"):
            post_webhook(client, load_fixture(name), process=False)
    assert len(queued_tasks()) == 1  # the task drains all three
    assert process_inbound_webhooks() == 3
    queued_tasks_purge()
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, load_fixture("conversation_admin_closed_bot_v2"), process=False)
    assert len(queued_tasks()) == 1  # nothing waiting before it: it queues its own
