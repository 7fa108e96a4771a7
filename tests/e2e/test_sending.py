"""Closures in, Stella requests out, over real HTTP: the portal runs as a live server and its sandbox
plays Stella and Intercom; a scripted server on 127.0.0.1 plays Stella's failures."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from sandbox.demo import BOT, BOT_EMPLOYEE_ID, CUSTOMERS, TEAMMATES, sandbox_conversation_create, sandbox_people_create
from sandbox.models import StellaSandboxRequest
from sandbox.samples import closed_conversation, closed_conversation_v1, reopened_conversation
from surveys.accounts.account import integration_settings_update
from surveys.delivery.sending import survey_request_send, survey_requests_send_due
from surveys.models import (
    ApiRequest,
    ConversationEvent,
    IntegrationHealth,
    IntegrationSettings,
    SurveyRequest,
    Teammate,
)
from tests.factories import AccountFactory
from tests.helpers import load_fixture, run_queued_tasks, sign
from tests.servers import Answer, scripted_stella

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WS = "ws1test"
ADA, BEA, CAI, DEE = CUSTOMERS
TESS, OMAR, INES = TEAMMATES
S = SurveyRequest.Status
O = ApiRequest.Outcome  # noqa: E741


@pytest.fixture
def account(live_server, settings):
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.STELLA_RETRY_BASE_SECONDS = 30
    sandbox_people_create()
    account = AccountFactory(
        intercom_workspace_id=WS,
        integration__test_api_key="sandbox-test-key-0001",
        integration__production_api_key="sandbox-live-key-0002",
        integration__intercom_access_token="sandbox-token-0003",
    )
    Teammate.objects.create(
        account=account, intercom_id=BOT[0], name="Fin", is_bot=True, stella_custom_id=BOT_EMPLOYEE_ID
    )
    return account


def configure(account, **fields):
    """What a CSM does in the admin: the settings change through the service."""
    integration_settings_update(IntegrationSettings.objects.get(account=account), **fields)


def deliver(*payloads):
    """POST signed webhooks to the portal, then run what the cluster would run."""
    for payload in payloads:
        body = json.dumps(payload).encode()
        response = Client().post(
            "/webhooks/intercom/", data=body, content_type="application/json", headers={"X-Hub-Signature": sign(body)}
        )
        assert response.status_code == 200, response.content
    run_queued_tasks()


def closed(conversation_id="1001", *, at=None, customer=ADA, teammate=TESS, **kwargs):
    at = at or int(time.time())
    return closed_conversation(
        app_id=WS, conversation_id=conversation_id, at=at, customer=customer, teammate=teammate, **kwargs
    )


def stella_received():
    return list(StellaSandboxRequest.objects.order_by("pk"))


def test_closed_chat_in_test_mode_is_one_post_with_the_test_key(account):
    deliver(closed())
    [received] = stella_received()
    assert (received.mode, received.status_code, received.api_key) == ("test", 200, "••••0001")
    assert received.body == {
        "channel": "chat",
        "employee": {"email": "tess@support.example"},
        "customer": {"name": "Ada Customer", "email": "ada@customer.example"},
        "ext_interaction_id": "1001",
        "external_url": "https://app.intercom.com/a/apps/ws1test/conversations/1001",
        "tags": [],
    }
    survey_request = SurveyRequest.objects.get()
    assert (survey_request.status, survey_request.mode, survey_request.attempts) == (S.SENT, "test", 1)
    [api_request] = survey_request.api_requests.all()
    assert (api_request.outcome, api_request.status_code, api_request.mode) == (O.SENT, 200, "test")
    assert api_request.url == f"{account.integration.stella_base_url}/v1/requests"
    assert api_request.request_headers["x-api-key"] == "••••0001"
    assert "sandbox-test-key-0001" not in json.dumps([api_request.request_headers, api_request.request_body])


def test_live_mode_sends_with_the_production_key(account):
    configure(account, mode="live")
    deliver(closed())
    [received] = stella_received()
    assert (received.mode, received.api_key) == ("live", "••••0002")
    assert SurveyRequest.objects.get().mode == "live"


def test_bot_closure_is_one_post_flagged_do_not_send(account):
    deliver(closed(teammate=BOT, bot=True))
    [received] = stella_received()
    assert received.body["do_not_send"] is True
    assert received.body["employee"] == {"custom_id": BOT_EMPLOYEE_ID}
    assert SurveyRequest.objects.get().status == S.SENT


def test_tagged_first_message_is_one_post_flagged_do_not_send(account):
    payload = closed()
    payload["data"]["item"]["tags"]["tags"] = [{"type": "tag", "id": "1", "name": "fraud"}]
    deliver(payload)
    [received] = stella_received()
    assert (received.body["do_not_send"], received.body["tags"]) == (True, ["fraud"])


def test_reopened_within_the_delay_is_never_posted(account):
    configure(account, channel_delay=timedelta(minutes=10))
    now = int(time.time())
    deliver(closed(at=now), reopened_conversation(app_id=WS, conversation_id="1001", at=now + 5))
    survey_requests_send_due(now=timezone.now() + timedelta(minutes=11))
    run_queued_tasks()
    assert stella_received() == []
    assert SurveyRequest.objects.get().status == S.CANCELLED


def test_delayed_request_is_sent_once_due(account):
    configure(account, channel_delay=timedelta(minutes=10))
    deliver(closed())
    assert stella_received() == []
    survey_request = SurveyRequest.objects.get()
    survey_request_send(survey_request.pk, now=survey_request.send_after)
    assert len(stella_received()) == 1


def test_duplicate_notification_is_one_post(account):
    payload = closed()
    deliver(payload, payload)
    deliver(payload)
    assert len(stella_received()) == 1


def test_a_last_check_before_sending_catches_a_cancel_the_intake_missed(account):
    configure(account, channel_delay=timedelta(minutes=10))
    deliver(closed())
    survey_request = SurveyRequest.objects.get()
    ConversationEvent.objects.create(
        account=account,
        conversation_id="1001",
        kind="customer_replied",
        occurred_at=survey_request.closed_at + timedelta(minutes=1),
    )
    survey_request_send(survey_request.pk, now=survey_request.send_after)
    assert stella_received() == []
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.status_detail) == (
        S.CANCELLED,
        "Customer replied during the channel delay",
    )


def test_two_senders_for_one_request_make_one_post(account):
    configure(account, channel_delay=timedelta(minutes=10))
    deliver(closed())
    survey_request = SurveyRequest.objects.get()
    barrier = threading.Barrier(4)

    def sender():
        barrier.wait()
        survey_request_send(survey_request.pk, now=survey_request.send_after)
        connection.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stella_received()) == 1
    assert SurveyRequest.objects.get().status == S.SENT


def test_stella_503_twice_then_200_is_sent_after_retries(account):
    with scripted_stella(Answer(503), Answer(503, headers={"Retry-After": "120"}), Answer(200)) as stella:
        configure(account, stella_api_url=stella.url)
        deliver(closed())
        survey_request = SurveyRequest.objects.get()
        assert survey_request.status == S.SCHEDULED
        assert survey_request.status_detail == "Attempt 1 failed, retrying: Stella answered 503"
        first_retry = survey_request.send_after
        assert timedelta(seconds=15) <= first_retry - timezone.now() <= timedelta(seconds=46)

        survey_request_send(survey_request.pk, now=first_retry)
        survey_request.refresh_from_db()
        assert survey_request.send_after >= first_retry + timedelta(seconds=120)  # Retry-After honoured

        survey_request_send(survey_request.pk, now=survey_request.send_after)
        assert len(stella.received) == 3
        assert [r.headers["x-api-key"] for r in stella.received] == ["sandbox-test-key-0001"] * 3
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.attempts) == (S.SENT, 3)
    assert list(survey_request.api_requests.order_by("pk").values_list("outcome", flat=True)) == [
        O.RETRY,
        O.RETRY,
        O.SENT,
    ]


def test_retries_are_bounded(account, settings):
    settings.STELLA_MAX_ATTEMPTS = 3
    with scripted_stella(Answer(500)) as stella:
        configure(account, stella_api_url=stella.url)
        deliver(closed())
        survey_request = SurveyRequest.objects.get()
        for _ in range(5):
            survey_request_send(survey_request.pk, now=survey_request.send_after)
            survey_request.refresh_from_db()
        assert len(stella.received) == 3
    assert (survey_request.status, survey_request.status_detail) == (
        S.FAILED,
        "Gave up after 3 attempts: Stella answered 500",
    )


def test_connection_refused_is_retried(account, refused_url):
    configure(account, stella_api_url=refused_url)
    deliver(closed())
    survey_request = SurveyRequest.objects.get()
    assert survey_request.status == S.SCHEDULED
    assert survey_request.api_requests.get().outcome == O.RETRY


def test_stella_400_is_invalid_with_stellas_message(account):
    deliver(closed(teammate=("4100777", "Nora New", "nora@support.example")))  # not a Stella employee yet
    survey_request = SurveyRequest.objects.get()
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, "Employee not found")
    api_request = survey_request.api_requests.get()
    assert (api_request.outcome, api_request.status_code, api_request.error_message) == (
        O.INVALID,
        400,
        "Employee not found",
    )
    assert json.loads(api_request.response_body) == {"message": "Employee not found"}


def test_timeout_after_the_request_went_out_is_ambiguous_after_one_post(account, settings):
    settings.STELLA_READ_TIMEOUT = 0.3
    with scripted_stella(Answer(200, delay=1.5)) as stella:
        configure(account, stella_api_url=stella.url)
        deliver(closed())
        survey_request = SurveyRequest.objects.get()
        assert survey_request.status == S.AMBIGUOUS
        assert survey_request.status_detail == "No answer within 0.3 s: Stella may have accepted it"
        survey_requests_send_due(now=timezone.now() + timedelta(hours=1))
        run_queued_tasks()
        assert len(stella.received) == 1
    assert survey_request.api_requests.get().outcome == O.AMBIGUOUS


def test_rejected_api_key_pauses_the_account_until_a_csm_changes_it(account):
    configure(account, test_api_key="revoked-key-0009")
    deliver(closed("1001"))
    first = SurveyRequest.objects.get()
    assert (first.status, first.status_detail) == (S.INVALID, "API key rejected")
    health = IntegrationHealth.objects.get(account=account)
    assert health.sending_paused_at is not None
    assert health.sending_paused_reason == "Stella rejected the test API key"

    deliver(closed("1002"))
    survey_requests_send_due(now=timezone.now())
    run_queued_tasks()
    assert len(stella_received()) == 1  # no storm of doomed calls
    assert SurveyRequest.objects.get(conversation_id="1002").status == S.SCHEDULED

    configure(account, test_api_key="sandbox-test-key-0001")
    assert IntegrationHealth.objects.get(account=account).sending_paused_at is None
    survey_requests_send_due(now=timezone.now())
    run_queued_tasks()
    assert SurveyRequest.objects.get(conversation_id="1002").status == S.SENT


def test_older_shape_closure_looks_the_channel_up_in_intercom(account):
    now = int(time.time())
    sandbox_conversation_create("2001", channel="email", customer=CAI, teammate=OMAR, started_at=now - 600)
    deliver(closed_conversation_v1(app_id=WS, conversation_id="2001", at=now, customer=CAI, teammate=OMAR))
    [received] = stella_received()
    assert (received.body["channel"], received.body["customer"]["email"]) == ("email", "cai@client.example")
    assert SurveyRequest.objects.get().channel_source == "email"


def test_ids_only_closure_looks_up_customer_and_teammate_and_caches_the_teammate(account):
    deliver(closed("3001", channel="email", customer=(BEA[0], None, None), teammate=(INES[0], INES[1], None)))
    [received] = stella_received()
    assert received.body["customer"] == {"name": "Bea Buyer", "email": "bea@customer.example"}
    assert received.body["employee"] == {"email": "ines@support.example"}
    teammate = Teammate.objects.get(account=account, intercom_id=INES[0])
    fetched_at = teammate.fetched_at

    deliver(closed("3002", customer=(CAI[0], None, None), teammate=(INES[0], INES[1], None)))
    assert len(stella_received()) == 2
    assert Teammate.objects.get(pk=teammate.pk).fetched_at == fetched_at  # served from the cache


def test_rejected_intercom_token_is_invalid_and_flags_the_account(account):
    configure(account, intercom_access_token="expired-token")
    deliver(closed("3001", customer=(BEA[0], None, None)))
    survey_request = SurveyRequest.objects.get()
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, "Intercom access token rejected")
    api_request = survey_request.api_requests.get()
    assert (api_request.outcome, api_request.url, api_request.error_message) == (
        O.INVALID,
        "",
        "Intercom access token rejected",
    )
    assert IntegrationHealth.objects.get(account=account).intercom_token_rejected_at is not None
    assert stella_received() == []


def test_conversation_gone_from_intercom_is_invalid(account):
    deliver(closed_conversation_v1(app_id=WS, conversation_id="4040", at=int(time.time()), customer=ADA, teammate=TESS))
    survey_request = SurveyRequest.objects.get()
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, "Conversation not found in Intercom")


def test_intake_invalid_is_logged_in_stellas_words_without_a_call(account):
    configure(account, chat_enabled=False)
    deliver(closed())
    api_request = ApiRequest.objects.get()
    assert (api_request.outcome, api_request.url, api_request.status_code) == (O.INVALID, "", None)
    assert api_request.error_message == "Channel not enabled for company"
    assert api_request.request_body["channel"] == "chat"
    assert stella_received() == []


def test_a_reply_after_a_send_without_delay_doesnt_cancel_its_retry(account):
    """No channel delay: nothing cancels the send, not even while Stella's 503 makes it wait."""
    with scripted_stella(Answer(503), Answer(200)) as stella:
        configure(account, stella_api_url=stella.url)
        now = int(time.time())
        deliver(closed(at=now))
        reply = load_fixture("conversation_user_replied")
        reply.update(app_id=WS, created_at=now + 5, id="notif_reply_after_close")
        reply["data"]["item"]["id"] = "1001"
        deliver(reply)
        survey_request = SurveyRequest.objects.get()
        assert survey_request.status == S.SCHEDULED
        survey_request_send(survey_request.pk, now=survey_request.send_after)
        assert len(stella.received) == 2
    survey_request.refresh_from_db()
    assert survey_request.status == S.SENT
