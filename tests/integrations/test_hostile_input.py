"""What strangers and Intercom's worst day can send: every case found from outside, by name.

The rule: a signed body gets 200, 400 or 413, never a 5xx, while the database is up; an unsigned
one gets 400, 401 or 413; whatever got 200 is stored and ends processed or ignored.
"""

import gzip
import json
import time
from datetime import UTC, datetime

import pytest
import responses

from integrations.intercom.client import IntercomClient, IntercomError
from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook, UnverifiedWebhookCount
from integrations.stella.client import CallOutcome, StellaClient
from surveys.models import ConversationEvent, SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.helpers import notification, post_webhook, sign

pytestmark = pytest.mark.django_db


def closed(**envelope):
    return notification("conversation_admin_closed_v2", **envelope)


def post_raw(client, body: bytes, *, signature: str | None = None, **extra):
    return client.generic(
        "POST",
        "/webhooks/intercom/",
        body,
        content_type="application/json",
        headers={"X-Hub-Signature": signature if signature is not None else sign(body)},
        **extra,
    )


def assert_refused(response, status, field_or_words):
    assert response.status_code == status, response.content
    assert field_or_words in response.json()["error"]


@pytest.mark.parametrize("seconds", [1000000000000, -1000000000000, 10**30, 253402300800, 0, 1293839999])
def test_a_created_at_outside_2011_to_tomorrow_is_400_naming_it(client, account, seconds):
    assert_refused(post_webhook(client, closed(created_at=seconds)), 400, "created_at is not a time between")
    assert InboundWebhook.objects.get().status == InboundWebhook.Status.INVALID


def test_a_parts_created_at_out_of_range_is_400_naming_the_part(client, account):
    payload = closed()
    payload["data"]["item"]["conversation_parts"]["conversation_parts"][0]["created_at"] = 10**30
    assert_refused(post_webhook(client, payload), 400, "conversation_parts[0].created_at")


def test_a_body_nested_ten_thousand_deep_is_400_without_recursing(client, account):
    body = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    assert_refused(post_raw(client, body), 400, "nests deeper than 64 levels")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("app_id", "\ud800", "app_id holds a NUL or half a surrogate pair"),
        ("app_id", "a" * 65, "app_id is longer than 64 characters"),
        ("id", "n" * 101, "id is longer than 100 characters"),
        ("topic", "t" * 101, "topic is longer than 100 characters"),
        ("id", "", "id is empty"),
        ("id", "notif\u0000", "id holds a NUL"),
    ],
)
def test_an_envelope_field_that_could_not_be_stored_is_400_naming_it(client, account, field, value, words):
    assert_refused(post_webhook(client, closed(**{field: value})), 400, words)


def test_a_second_webhook_with_an_empty_id_is_refused_too_not_dropped_as_a_duplicate(client, account):
    for _ in range(2):
        assert post_webhook(client, closed(id="")).status_code == 400
    assert InboundWebhook.objects.filter(status=InboundWebhook.Status.INVALID).count() == 2


@pytest.mark.parametrize(
    ("encode", "words"),
    [
        (lambda text: b"\xef\xbb\xbf" + text.encode(), "byte order mark"),
        (lambda text: text.encode("utf-16"), "not UTF-8"),
        (lambda text: gzip.compress(text.encode()), "not UTF-8"),
        (lambda text: text.encode()[:-1] + b"\x00}", "not JSON"),
    ],
)
def test_bodies_that_are_not_plain_utf8_json_are_400_and_stored_escaped(client, account, encode, words):
    body = encode(json.dumps(closed()))
    assert_refused(post_raw(client, body), 400, words)
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.INVALID and "\x00" not in webhook.body
    assert webhook.body_size == len(body)


def test_an_unsigned_body_with_a_nul_byte_is_401_and_kept_as_a_bounded_excerpt(client, account):
    body = b"\x00" + b"x" * 100_000
    response = post_raw(client, body, signature="sha1=" + "0" * 40)
    assert response.status_code == 401
    webhook = InboundWebhook.objects.get()
    assert (webhook.body_size, len(webhook.body_sha256)) == (100_001, 64)
    assert webhook.body.startswith("\\x00") and len(webhook.body) < 5000


def test_past_sixty_a_minute_wrongly_signed_requests_are_only_counted(client, account):
    for _ in range(65):
        assert post_raw(client, b"{}", signature="sha1=" + "0" * 40).status_code == 401
    assert InboundWebhook.objects.count() == 60
    assert sum(UnverifiedWebhookCount.objects.values_list("count", flat=True)) == 5


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_content_length_that_is_not_a_number_is_400(client, account, length):
    response = post_raw(client, json.dumps(closed()).encode(), CONTENT_LENGTH=length)
    assert_refused(response, 400, "Content-Length")


def test_a_customer_name_with_half_a_surrogate_pair_is_kept_readable_and_the_closure_processed(client, account):
    payload = closed()
    payload["data"]["item"]["source"]["author"]["name"] = "Bea \ud800 Buyer\u0000"
    assert post_webhook(client, payload).status_code == 200
    assert InboundWebhook.objects.get().status == InboundWebhook.Status.PROCESSED
    assert SurveyRequest.objects.get().customer_name == "Bea \ufffd Buyer\ufffd"


def put(payload: dict, path: str, value) -> dict:
    """`payload` with the field at a dotted path (`data.item.conversation_parts.conversation_parts.0.state`) set."""
    *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
    target = payload
    for key in parents:
        target = target[key]
    target[last] = value
    return payload


IDS_LINK = "https://app.intercom.com/a/apps/ws1test/conversations/"
PART = "data.item.conversation_parts.conversation_parts.0"


def _survey_request(_notification):
    return SurveyRequest.objects.get()


@pytest.mark.parametrize(
    ("fixture", "field", "value", "read", "expected"),
    [
        ("closed_v2", "data.item.source.type", "chat\ud800", lambda n: _survey_request(n).channel_source, "chat\ufffd"),
        ("closed_v2", "data.item.source.type", "chat\x00", lambda n: _survey_request(n).channel_source, "chat\ufffd"),
        ("closed_v2", "data.item.channel", {"initial": "sms\udfff"}, lambda n: _survey_request(n).channel_source, "sms\ufffd"),
        ("closed_v2", "data.item.channel", {"initial": "sms\x00"}, lambda n: n.conversation.channel_source, "sms\ufffd"),
        # A source author that is no customer role: the customer is the contact, looked up later.
        ("closed_v2", "data.item.source.author.type", "user\ud800", lambda n: _survey_request(n).customer_role, "contact"),
        ("closed", "data.item.user.type", "lead\ud800", lambda n: _survey_request(n).customer_role, "lead\ufffd"),
        ("closed", "data.item.user.type", "lead\x00", lambda n: _survey_request(n).customer_role, "lead\ufffd"),
        ("closed", "data.item.user.email", "ada\ud800@customer.example", lambda n: _survey_request(n).customer_email, "ada\ufffd@customer.example"),
        ("closed", "data.item.assignee.type", "admin\ud800", lambda n: _survey_request(n).teammate_name, "Tess Teammate"),
        ("closed", "data.item.assignee.name", "Tess\x00", lambda n: _survey_request(n).teammate_name, "Tess\ufffd"),
        ("closed_v2", "data.item.state", "closed\ud800", lambda n: n.conversation.state, "closed\ufffd"),
        ("closed_v2", f"{PART}.part_type", "close\x00", lambda n: n.conversation.closure, None),
        ("closed_v2", f"{PART}.author.type", "admin\ud800", lambda n: n.conversation.closure.closer.type, "admin\ufffd"),
        ("closed_v2", f"{PART}.assigned_to", {"type": "bot\ud800", "id": "1"}, lambda n: n.conversation.assignee.kind, "admin"),
        ("closed_v2", "data.item.tags.tags", [{"name": "vip\ud800"}], lambda n: _survey_request(n).tags, ["vip\ufffd"]),
        # A role or source longer than its column is cut to fit, not a failed insert.
        ("closed", "data.item.user.type", "lead" * 20, lambda n: _survey_request(n).customer_role, "lead" * 4),
        ("closed_v2", "data.item.source.type", "s" * 100, lambda n: _survey_request(n).channel_source, "s" * 32),
        *[
            ("closed", "data.item.links.conversation_web", link, lambda n: _survey_request(n).conversation_url, IDS_LINK + "30100000001")
            for link in [
                f"{IDS_LINK}\ud800", f"{IDS_LINK}\x00", f"{IDS_LINK}1\x07", f"{IDS_LINK}1 2", f"{IDS_LINK}1\t",
                f"{IDS_LINK}\u202e1", "https://evil.example\\@app.intercom.com/a", "https://x@app.intercom.com/a",
                "https://[app.intercom.com/a",
            ]
        ],
    ],
)  # fmt: skip
def test_text_no_database_stores_becomes_u_fffd_and_the_webhook_is_processed(
    client, account, fixture, field, value, read, expected
):
    payload = put(notification(f"conversation_admin_{fixture}"), field, value)
    assert post_webhook(client, payload).status_code == 200
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.PROCESSED, "")
    assert read(IntercomNotification.from_json(webhook.body)) == expected


@pytest.mark.parametrize("value", ["notification_event\ud800", "notification_event\x00"])
def test_an_envelope_type_with_text_no_database_stores_is_400_naming_it(client, account, value):
    assert_refused(post_webhook(client, closed(type=value)), 400, "type is not notification_event")


@pytest.mark.parametrize("value", [".", ".."])
@pytest.mark.parametrize("field", ["data.item.id", "data.item.contacts.contacts.0.id", "app_id"])
def test_an_id_that_would_walk_a_url_path_is_400_naming_it(client, account, field, value):
    assert_refused(
        post_webhook(client, put(closed(), field, value)), 400, f"{field.replace('.0.', '[0].')} is {value!r}"
    )


def test_a_reopen_whose_conversation_id_would_not_fit_is_400_not_lost_silently(client, account):
    reopened = notification("conversation_admin_opened")
    reopened["data"]["item"]["id"] = "9" * 65
    assert_refused(post_webhook(client, reopened), 400, "data.item.id is longer than 64 characters")
    assert not ConversationEvent.objects.exists()


def test_a_notification_older_than_the_replay_window_is_stored_and_ignored(client, account, settings):
    settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS = 7
    eight_days_ago = int(time.time()) - 8 * 86400
    assert post_webhook(client, closed(created_at=eight_days_ago)).status_code == 200
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (
        InboundWebhook.Status.IGNORED,
        "Created more than 7 days ago: too old to act on",
    )
    assert not SurveyRequest.objects.exists()


def test_a_notification_from_the_near_future_is_ignored_and_from_the_far_future_refused(client, account, settings):
    settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS = 7
    assert post_webhook(client, closed(id="soon", created_at=int(time.time()) + 1200)).status_code == 200
    assert InboundWebhook.objects.get(notification_id="soon").status == InboundWebhook.Status.IGNORED
    assert post_webhook(client, closed(id="later", created_at=int(time.time()) + 3 * 86400)).status_code == 400
    assert not SurveyRequest.objects.exists()


@pytest.mark.parametrize(
    "link", ["javascript:alert(document.cookie)", "http://app.intercom.com/a/x", "https://evil.example/a/apps/x"]
)
def test_a_conversation_link_that_is_not_intercoms_is_built_from_the_ids_instead(client, account, link):
    payload = closed()
    payload["data"]["item"]["links"] = {"conversation_web": link}
    post_webhook(client, payload)
    url = SurveyRequest.objects.get().conversation_url
    assert url == "https://app.intercom.com/a/apps/ws1test/conversations/215000000000201"


def test_the_intake_task_hands_over_when_its_time_is_up(client, account):
    from surveys.intake.process import inbound_webhooks_process_pending
    from tests.helpers import queued_tasks, queued_tasks_purge

    for n in range(3):
        post_webhook(client, closed(id=f"n{n}"), process=False)
    queued_tasks_purge()
    assert inbound_webhooks_process_pending(seconds=0) == 0
    assert len(queued_tasks()) == 1  # a fresh task takes over
    assert process_inbound_webhooks() == 3


@responses.activate
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_stella_is_failed_naming_the_location_and_the_key_goes_nowhere_else(status):
    responses.post(
        "https://stella.test/v1/requests", status=status, headers={"Location": "https://elsewhere.example/x"}
    )
    responses.get("https://elsewhere.example/x", json={})
    responses.post("https://elsewhere.example/x", json={})
    result = StellaClient(base_url="https://stella.test").create_request({"channel": "chat"}, api_key="key-12345678")
    assert result.outcome == CallOutcome.FAILED
    assert result.error_message == (
        f"Stella answered {status}, redirecting to https://elsewhere.example/x: check the account's Stella API URL"
    )
    assert [call.request.url for call in responses.calls] == ["https://stella.test/v1/requests"]


@responses.activate
def test_a_redirect_from_intercom_is_an_error_and_the_token_goes_nowhere_else():
    responses.get("https://api.intercom.test/admins/1", status=307, headers={"Location": "https://evil.example/"})
    responses.get("https://evil.example/", json={})
    with pytest.raises(IntercomError, match="redirecting to https://evil.example/"):
        IntercomClient("token-123456", base_url="https://api.intercom.test").admin("1")
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    "query",
    ["date_to=9999-12-31", "date_from=0001-01-01", "date_from=2030-13-45", "channel=carrier-pigeon", "reason=%00"],
)
def test_read_pages_answer_a_bad_filter_with_a_message_not_a_500(admin_client, account, query):
    page = admin_client.get(f"/status/?{query}")
    assert page.status_code == 200
    assert b'class="error"' in page.content
    assert admin_client.get(f"/status/export.csv?{query}").status_code == 400
    assert admin_client.get(f"/api/survey-requests/?{query}").status_code == 400


def test_a_typed_date_out_of_range_stays_in_the_field_with_the_reason(admin_client, account):
    page = admin_client.get("/status/?date_to=9999-12-31").content.decode()
    assert 'value="9999-12-31"' in page and "Choose a date between 2011-01-01 and 2099-12-31." in page


@pytest.mark.parametrize("cursor", ["cD0lMjc=", "cD0yMDI2LTAyLTMxKzAwOjAw", "garbage", "cj0xJnA9eA=="])
def test_a_tampered_api_cursor_is_404_invalid_cursor(admin_client, cursor):
    for url in ("/api/survey-requests/", "/api/api-requests/"):
        response = admin_client.get(f"{url}?cursor={cursor}")
        assert (response.status_code, response.json()) == (404, {"detail": "Invalid cursor"})


def test_created_at_is_read_as_a_utc_time(client, account):
    post_webhook(client, closed(created_at=1764324000))
    assert InboundWebhook.objects.get().occurred_at == datetime(2025, 11, 28, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [InboundWebhook.Status.INVALID, InboundWebhook.Status.PROCESSED])
def test_a_stored_body_nested_five_thousand_deep_shows_in_the_admin_as_text(admin_client, status):
    body = '{"a":' * 5000 + "1" + "}" * 5000
    webhook = InboundWebhook.objects.create(body=body, status=status)
    page = admin_client.get(f"/admin/integrations/inboundwebhook/{webhook.pk}/change/")
    assert page.status_code == 200
    assert "{&quot;a&quot;:{&quot;a&quot;:" in page.content.decode()
