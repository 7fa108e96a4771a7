"""A webhook's body is parsed once: the request keeps what the parser read beside the body, and acting on the
webhook reads that back; the body again only when nothing usable was kept."""

import json
from datetime import UTC, datetime

import pytest

from integrations.intercom import payloads
from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from surveys.intake.process import inbound_webhook_replay
from surveys.models import SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.helpers import CAPTURED_FIXTURES, FIXTURES, load_fixture, post_webhook

pytestmark = pytest.mark.django_db

NOW = int(datetime.now(UTC).timestamp())


def closed(notification_id: str = "notif_parse_once") -> dict:
    payload = load_fixture("conversation_admin_closed_v2")
    payload.update(id=notification_id, created_at=NOW)
    return payload


def _refuse(*args, **kwargs):
    raise AssertionError("a body was parsed again")


def test_acting_on_a_webhook_reads_what_the_request_parsed_not_the_body(client, account, monkeypatch):
    assert post_webhook(client, closed(), process=False).status_code == 200
    webhook = InboundWebhook.objects.get()
    assert IntercomNotification.from_stored(webhook.parsed) == IntercomNotification.from_json(webhook.body)
    monkeypatch.setattr(IntercomNotification, "from_json", _refuse)
    process_inbound_webhooks()
    webhook.refresh_from_db()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.PROCESSED, "")
    assert SurveyRequest.objects.filter(inbound_webhook=webhook).exists()


@pytest.mark.parametrize(
    "kept",
    [
        "",  # stored before the parser's reading was kept
        json.dumps({"version": payloads.STORED_VERSION - 1, "notification": {}}),  # kept by an earlier parser
        '{"version": 1, "notification": {"id": 5}}',  # a shape this parser doesn't read
        "not JSON",
    ],
)
def test_without_a_usable_reading_kept_the_body_is_parsed_again(client, account, kept):
    assert post_webhook(client, closed(), process=False).status_code == 200
    InboundWebhook.objects.update(parsed=kept)
    process_inbound_webhooks()
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.PROCESSED, "")
    assert SurveyRequest.objects.filter(inbound_webhook=webhook).exists()


def test_a_replay_reads_what_was_kept_too(client, account, monkeypatch):
    assert post_webhook(client, closed(), process=False).status_code == 200
    InboundWebhook.objects.update(status=InboundWebhook.Status.IGNORED, error="No account for workspace")
    monkeypatch.setattr(IntercomNotification, "from_json", _refuse)
    webhook = inbound_webhook_replay(InboundWebhook.objects.get())
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.PROCESSED, "")
    assert SurveyRequest.objects.filter(inbound_webhook=webhook).exists()


def test_a_body_the_parser_refused_keeps_no_reading(client, account):
    payload = closed()
    payload["created_at"] = "yesterday"
    assert post_webhook(client, payload, process=False).status_code == 400
    assert InboundWebhook.objects.get().parsed == ""


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.glob("*.json")) + sorted(CAPTURED_FIXTURES.glob("*.json")), ids=lambda path: path.name
)
def test_what_is_kept_reads_back_as_parsed(path):
    notification = IntercomNotification.from_json(path.read_bytes())
    assert IntercomNotification.from_stored(notification.stored()) == notification
