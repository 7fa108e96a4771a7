"""The inbox app's Canvas Kit endpoints, driven with signed requests shaped like Intercom's (inbox, conversation
details): what the canvas says, Don't survey, and what forged, replayed, oversized and hostile requests get."""

import hashlib
import hmac
import json
from typing import Any

import pytest
import responses
from django.conf import settings
from django.contrib.auth.models import User

from integrations.intercom.signature import body_signature_for, signature_for
from surveys.accounts.checklist import DONE, TODO, account_checklist
from surveys.decisions.rules import CancelReason, Decision, InvalidReason
from surveys.models import ApiRequest, SurveyRequest
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory
from tests.helpers import WORKSPACE_ID

pytestmark = pytest.mark.django_db
INITIALIZE = "/intercom/canvas/initialize/"
SUBMIT = "/intercom/canvas/submit/"
S = SurveyRequest.Status


def canvas_request(conversation_id: str = "9000123", *, workspace_id: str = WORKSPACE_ID, **more: Any) -> dict:
    """An inbox initialize request as Intercom sends it (Canvas Kit 2.x: workspace_id, admin, context, conversation,
    contact); a submit adds component_id, input_values and current_canvas."""
    return {
        "workspace_id": workspace_id,
        "workspace_region": "us",
        "admin": {"id": "4100007", "type": "admin", "name": "Maximiliana Oyelaran-Whitcombe", "email": "max@x.example"},
        "context": {"conversation_id": int(conversation_id) if conversation_id.isdigit() else conversation_id,
                    "location": "conversation", "locale": "en"},
        "conversation": {"type": "conversation", "id": conversation_id, "state": "closed"},
        "contact": {"type": "user", "id": "contact-1", "email": "ada@customer.example"},
        **more,
    }  # fmt: skip


def submit_request(conversation_id: str, stored_data: dict, component_id: str = "dont_survey") -> dict:
    return canvas_request(
        conversation_id,
        component_id=component_id,
        input_values={},
        current_canvas={"content": {"components": []}, "stored_data": stored_data},
    )


def post(client, url: str, payload: dict | bytes, *, signature: str | None = None, **extra):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = body_signature_for(body, settings.INTERCOM_CLIENT_SECRET) if signature is None else signature
    headers = {"X-Body-Signature": signature} if signature else {}
    return client.generic("POST", url, body, content_type="application/json", headers=headers, **extra)


def components(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["canvas"]["content"]["components"]


def words(response) -> str:
    return "\n".join(c.get("text") or c.get("label") or "" for c in components(response))


def buttons(response) -> list[str]:
    return [c["id"] for c in components(response) if c["type"] == "button"]


@pytest.fixture
def waiting(account):
    return SurveyRequestFactory(account=account, conversation_id="9000123")


def test_a_waiting_survey_says_until_when_to_whom_and_offers_dont_survey(client, waiting):
    response = post(client, INITIALIZE, canvas_request())
    text = words(response)
    assert "**Waiting** until" in text
    assert "To ada@customer.example, credited to Tess Teammate" in text
    assert buttons(response) == ["dont_survey"]
    assert response.json()["canvas"]["stored_data"] == {"survey_request": waiting.pk}


@responses.activate  # no call may leave the machine: an unregistered URL raises
def test_dont_survey_ends_the_request_without_a_stella_call_saying_who_and_when(client, waiting):
    response = post(client, SUBMIT, submit_request("9000123", {"survey_request": waiting.pk}))
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == (S.CANCELLED, CancelReason.STOPPED_IN_INTERCOM)
    stopped = waiting.verdicts["stopped_in_intercom"]
    assert stopped["admin_id"] == "4100007" and stopped["admin_name"] == "Maximiliana Oyelaran-Whitcombe"
    assert stopped["at"]
    assert waiting.status_detail.startswith("Stopped by Maximiliana Oyelaran-Whitcombe on ")
    assert not ApiRequest.objects.exists() and len(responses.calls) == 0
    text = words(response)
    assert "**Cancelled**" in text and "Why: Stopped by a teammate in Intercom" in text
    assert buttons(response) == []


def test_a_replayed_press_changes_nothing(client, waiting):
    payload = submit_request("9000123", {"survey_request": waiting.pk})
    first = post(client, SUBMIT, payload)
    waiting.refresh_from_db()
    stopped_at = waiting.updated_at
    again = post(client, SUBMIT, payload)
    waiting.refresh_from_db()
    assert waiting.updated_at == stopped_at
    assert components(again) == components(first)


def test_a_press_stops_only_the_request_the_canvas_showed_for_this_conversation(client, account, waiting):
    other = SurveyRequestFactory(account=account, conversation_id="9000999")
    post(client, SUBMIT, submit_request("9000123", {"survey_request": other.pk}))
    post(client, SUBMIT, submit_request("9000123", {"survey_request": str(waiting.pk)}))  # not the int stored
    post(client, SUBMIT, submit_request("9000123", {"survey_request": waiting.pk}, component_id="something_else"))
    assert set(SurveyRequest.objects.values_list("status", flat=True)) == {S.SCHEDULED}


def test_a_press_after_the_survey_went_out_stops_nothing_and_says_it_was_sent(client, account):
    sent = SurveyRequestFactory(account=account, conversation_id="9000123", sent=True)
    response = post(client, SUBMIT, submit_request("9000123", {"survey_request": sent.pk}))
    sent.refresh_from_db()
    assert sent.status == S.SENT
    assert "**Sent** on" in words(response)


def test_a_sent_survey_shows_the_stars_and_the_comment_as_typed(client, account):
    sent = SurveyRequestFactory(account=account, conversation_id="9000123", sent=True)
    FeedbackFactory(account=account, survey_request=sent, star_rating=2, comment="Slow. [click](https://evil.example)")
    text = words(post(client, INITIALIZE, canvas_request()))
    assert "★★☆☆☆ (2 of 5 stars)" in text
    assert r"Slow. \[click\]\(https://evil.example\)" in text  # escaped: Intercom shows it, never as a link


def test_an_invalid_survey_says_why_and_what_fixes_it(client, account):
    SurveyRequestFactory(
        account=account, conversation_id="9000123", status=S.INVALID, decision=Decision.INVALID,
        reason=InvalidReason.CHANNEL_DISABLED,
    )  # fmt: skip
    text = words(post(client, INITIALIZE, canvas_request()))
    assert "**Invalid**" in text and "Why: Channel not enabled for company" in text
    assert "To fix: Turn the channel on" in text


def test_a_do_not_send_survey_says_so(client, account):
    SurveyRequestFactory(account=account, conversation_id="9000123", sent=True, decision=Decision.DO_NOT_SEND,
                         reason="suppressed_tag")  # fmt: skip
    text = words(post(client, INITIALIZE, canvas_request()))
    assert "**Sent, flagged do not send**" in text and "Why: First message tagged do not send" in text


def test_a_conversation_not_closed_yet_has_no_survey(client, account):
    assert "No survey yet." in words(post(client, INITIALIZE, canvas_request("9000555")))


def test_an_unknown_workspace_is_told_it_isnt_connected_and_whom_to_ask(client, db):
    text = words(post(client, INITIALIZE, canvas_request(workspace_id="wsnobody")))
    assert "isn't connected to Stella Connect" in text and "Ask your Stella Connect CSM" in text and "wsnobody" in text


def test_the_older_app_id_names_the_workspace_too(client, waiting):
    payload = canvas_request()
    payload["app_id"] = payload.pop("workspace_id")
    assert buttons(post(client, INITIALIZE, payload)) == ["dont_survey"]


# ---- forged, oversized and hostile ----


@pytest.mark.parametrize("url", [INITIALIZE, SUBMIT])
@pytest.mark.parametrize(
    "signature",
    [
        "0" * 64,
        hmac.new(b"another-secret", b"x", hashlib.sha256).hexdigest(),
        "sha256=" + "0" * 64,
    ],
)
def test_a_forged_signature_is_401(client, waiting, url, signature):
    response = post(client, url, submit_request("9000123", {"survey_request": waiting.pk}), signature=signature)
    assert response.status_code == 401
    waiting.refresh_from_db()
    assert waiting.status == S.SCHEDULED


def test_a_signature_of_another_body_or_the_webhooks_kind_is_401(client, waiting):
    payload = submit_request("9000123", {"survey_request": waiting.pk})
    body = json.dumps(payload).encode()
    other = body_signature_for(body + b" ", settings.INTERCOM_CLIENT_SECRET)
    assert post(client, SUBMIT, body, signature=other).status_code == 401
    webhook_style = signature_for(body, settings.INTERCOM_CLIENT_SECRET)
    assert post(client, SUBMIT, body, signature=webhook_style).status_code == 401
    waiting.refresh_from_db()
    assert waiting.status == S.SCHEDULED


def test_an_upper_case_signature_is_the_same_signature(client, waiting):
    body = json.dumps(canvas_request()).encode()
    upper = body_signature_for(body, settings.INTERCOM_CLIENT_SECRET).upper()
    assert post(client, INITIALIZE, body, signature=upper).status_code == 200


def test_no_secret_configured_refuses_everything(client, waiting, settings):
    settings.INTERCOM_CLIENT_SECRET = ""
    body = json.dumps(canvas_request()).encode()
    assert post(client, INITIALIZE, body, signature=body_signature_for(body, "")).status_code == 401


def test_a_missing_signature_is_400(client, waiting):
    response = post(client, INITIALIZE, canvas_request(), signature="")
    assert response.status_code == 400 and "X-Body-Signature header is missing" in response.json()["error"]


def test_a_body_over_the_webhook_limit_is_413_unread(client, waiting, settings):
    settings.INTERCOM_WEBHOOK_MAX_BYTES = 2000
    payload = canvas_request(padding="x" * 3000)
    assert post(client, INITIALIZE, payload).status_code == 413


def test_only_post(client, db):
    assert client.get(INITIALIZE).status_code == 405


@pytest.mark.parametrize(
    ("body", "words_"),
    [
        (b"not json", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"\xff\xfe{}", "body is not UTF-8"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nests deeper than 64 levels"),
        (json.dumps({"workspace_id": "ws\u0000"}).encode(), "workspace_id holds a NUL"),
        (json.dumps({"workspace_id": "w" * 65}).encode(), "workspace_id is longer than 64"),
        (json.dumps({"workspace_id": ""}).encode(), "workspace_id is empty"),
        (json.dumps({"workspace_id": 12}).encode(), "workspace_id is not a string"),
        (json.dumps({"workspace_id": "ws1", "conversation": {"id": "\ud800"}}).encode(), "conversation.id holds"),
        (json.dumps({"workspace_id": "ws1", "conversation": {"id": ".."}}).encode(), "names no record"),
        (json.dumps({"workspace_id": "ws1", "admin": "me"}).encode(), "admin is not an object"),
        (json.dumps({"workspace_id": "ws1", "component_id": "c" * 101}).encode(), "component_id is longer"),
        (json.dumps({"workspace_id": "ws1", "current_canvas": {"stored_data": [1]}}).encode(), "stored_data is not"),
    ],
)
def test_a_hostile_signed_body_is_400_naming_what_is_wrong(client, db, body, words_):
    response = post(client, SUBMIT, body)
    assert response.status_code == 400, response.content
    assert words_ in response.json()["error"]


def test_a_teammate_name_with_a_nul_or_markdown_still_stops_and_shows_as_typed(client, waiting):
    payload = submit_request("9000123", {"survey_request": waiting.pk})
    payload["admin"]["name"] = "Eve\u0000 **bold** [x](https://evil.example)"
    post(client, SUBMIT, payload)
    waiting.refresh_from_db()
    assert waiting.status == S.CANCELLED
    assert "\x00" not in waiting.status_detail and waiting.verdicts["stopped_in_intercom"]["admin_name"].startswith(
        "Eve"
    )


def test_another_workspace_never_sees_or_stops_this_ones_survey(client, waiting):
    other = AccountFactory(intercom_workspace_id="wsother")
    payload = submit_request("9000123", {"survey_request": waiting.pk})
    payload["workspace_id"] = other.intercom_workspace_id
    response = post(client, SUBMIT, payload)
    assert "No survey yet." in words(response) and "ada@customer.example" not in words(response)
    waiting.refresh_from_db()
    assert waiting.status == S.SCHEDULED


def test_the_checklist_gives_the_apps_urls_and_sees_it_installed_once_intercom_asks(client, waiting):
    assert account_checklist(waiting.account, webhook_url="", sandbox=False).inbox_app.state == TODO
    client.force_login(User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345"))
    page = client.get(f"/admin/surveys/account/{waiting.account.pk}/checklist/").content.decode()
    assert (
        "http://testserver/intercom/canvas/initialize/" in page and "http://testserver/intercom/canvas/submit/" in page
    )
    post(client, INITIALIZE, canvas_request())
    assert account_checklist(waiting.account, webhook_url="", sandbox=False).inbox_app.state == DONE


def test_a_teammate_name_of_a_megabyte_is_kept_to_two_hundred_characters(client, waiting):
    payload = submit_request("9000123", {"survey_request": waiting.pk})
    payload["admin"]["name"] = "N" * 500_000
    post(client, SUBMIT, payload)
    waiting.refresh_from_db()
    assert waiting.status == S.CANCELLED
    assert len(waiting.verdicts["stopped_in_intercom"]["admin_name"]) == 200
