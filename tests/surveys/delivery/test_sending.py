"""The sender's parts: queueing, the sweep, recovery after a crash, and how Stella's
answers and failures map to outcomes (faults mocked at the HTTP layer with responses)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import responses
import yaml
from django.core.checks import run_checks
from django.utils import timezone
from jsonschema import Draft7Validator

from integrations.stella.client import StellaClient
from surveys.decisions.rules import Decision
from surveys.delivery.sending import (
    api_request_finish,
    survey_request_send,
    survey_requests_recover_stale,
    survey_requests_send_due,
)
from surveys.delivery.survey_requests import survey_request_feedback_request, survey_requests_resend
from surveys.models import ApiRequest, SurveyRequest, Teammate
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import load_fixture, notification, post_webhook, queued_tasks

pytestmark = pytest.mark.django_db

S = SurveyRequest.Status
O = ApiRequest.Outcome  # noqa: E741
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
REFERENCE_SCHEMA = Path(__file__).resolve().parents[2] / "fixtures" / "stella" / "stellaconnect-requests-openapi.yml"


def test_closure_due_now_is_queued_when_committed(client, account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, load_fixture("conversation_admin_closed_v2"))
    survey_request = SurveyRequest.objects.get()
    assert survey_request.queued_at is not None
    assert len(queued_tasks()) == 2  # the processing task, then the send


def test_sweep_queues_what_is_due_and_unqueued(account):
    due = SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=1))
    queued_long_ago = SurveyRequestFactory(
        account=account, send_after=NOW - timedelta(hours=1), queued_at=NOW - timedelta(hours=1)
    )
    SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=1), queued_at=NOW - timedelta(seconds=10))
    SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=1), status=S.CANCELLED)
    SurveyRequestFactory(account=account, send_after=NOW + timedelta(minutes=7))
    paused = AccountFactory(health__sending_paused_at=NOW)
    SurveyRequestFactory(account=paused, send_after=NOW - timedelta(minutes=1))

    assert survey_requests_send_due(now=NOW) == 2
    assert set(SurveyRequest.objects.filter(queued_at=NOW).values_list("pk", flat=True)) == {due.pk, queued_long_ago.pk}


def test_sweep_queues_them_once(account, django_capture_on_commit_callbacks):
    SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        survey_requests_send_due(now=NOW)
        survey_requests_send_due(now=NOW + timedelta(seconds=30))
    assert len(queued_tasks()) == 1


def test_sender_ignores_a_request_not_yet_due_or_already_taken(account):
    not_due = SurveyRequestFactory(account=account, send_after=NOW + timedelta(minutes=1))
    taken = SurveyRequestFactory(account=account, send_after=NOW, status=S.SENDING)
    with responses.RequestsMock():  # any call out would fail the test
        assert survey_request_send(not_due.pk, now=NOW).status == S.SCHEDULED
        assert survey_request_send(taken.pk, now=NOW).status == S.SENDING


def test_crashed_sender_before_its_call_is_sent_again(account):
    survey_request = SurveyRequestFactory(
        account=account, status=S.SENDING, claimed_at=NOW - timedelta(minutes=5), queued_at=NOW
    )
    assert survey_requests_recover_stale(now=NOW) == 1
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.queued_at, survey_request.claimed_at) == (S.SCHEDULED, None, None)


def test_crashed_sender_during_its_call_leaves_it_ambiguous(account):
    survey_request = SurveyRequestFactory(account=account, status=S.SENDING, claimed_at=NOW - timedelta(minutes=5))
    api_request = ApiRequest.objects.create(
        survey_request=survey_request, account=account, mode="test", url="https://x/v1/requests"
    )
    survey_requests_recover_stale(now=NOW)
    survey_request.refresh_from_db()
    api_request.refresh_from_db()
    assert survey_request.status == S.AMBIGUOUS
    assert api_request.outcome == O.AMBIGUOUS
    assert "may have accepted it" in survey_request.status_detail


def test_a_sender_still_within_its_timeout_is_left_alone(account):
    SurveyRequestFactory(account=account, status=S.SENDING, claimed_at=NOW - timedelta(seconds=30))
    assert survey_requests_recover_stale(now=NOW) == 0


@responses.activate
def test_intercom_rate_limit_waits_until_the_reset(account):
    reset = int((timezone.now() + timedelta(minutes=2)).timestamp())
    responses.get(f"https://api.intercom.test/conversations/{9}", status=429, headers={"X-RateLimit-Reset": str(reset)})
    account.integration.intercom_access_token = "token-123456789"
    account.integration.save()
    survey_request = SurveyRequestFactory(account=account, conversation_id="9", channel="", send_after=NOW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.conf.settings.INTERCOM_API_URL", "https://api.intercom.test")
        result = survey_request_send(survey_request.pk, now=NOW)
    assert (result.status, result.send_after, result.attempts) == (
        S.SCHEDULED,
        datetime.fromtimestamp(reset, tz=UTC),
        0,
    )
    assert responses.calls[0].request.headers["Authorization"] == "Bearer token-123456789"
    assert responses.calls[0].request.headers["Intercom-Version"] == "2.14"


@pytest.mark.parametrize(
    ("answer", "outcome", "status_code", "message", "retry_after"),
    [
        ({"status": 200, "json": {"channel": "chat"}}, O.SENT, 200, "", None),
        ({"status": 201, "json": {}}, O.SENT, 201, "", None),
        ({"status": 400, "json": {"message": "Invalid customer"}}, O.INVALID, 400, "Invalid customer", None),
        ({"status": 400, "body": "Brand signifier not provided"}, O.INVALID, 400, "Brand signifier not provided", None),
        (
            {"status": 400, "json": {"errors": ["Language not specified"]}},
            O.INVALID,
            400,
            '["Language not specified"]',
            None,
        ),
        ({"status": 403, "json": {"message": "Forbidden"}}, O.INVALID, 403, "API key rejected", None),
        ({"status": 429, "headers": {"Retry-After": "30"}}, O.RETRY, 429, "Stella answered 429", 30.0),
        ({"status": 503}, O.RETRY, 503, "Stella answered 503", None),
        ({"status": 404}, O.FAILED, 404, "Stella answered 404", None),
        (
            {"body": requests.ConnectTimeout("connect timed out")},
            O.RETRY,
            None,
            "Could not connect to Stella (ConnectTimeout)",
            None,
        ),
        (
            {"body": requests.ReadTimeout("read timed out")},
            O.AMBIGUOUS,
            None,
            "No answer within 10 s: Stella may have accepted it",
            None,
        ),
        (
            {"body": requests.ConnectionError("Connection aborted: RemoteDisconnected")},
            O.AMBIGUOUS,
            None,
            "The connection broke after the request went out (ConnectionError): Stella may have accepted it",
            None,
        ),
    ],
)
def test_stella_answers_map_to_outcomes(account, answer, outcome, status_code, message, retry_after):
    survey_request = SurveyRequestFactory(account=account)
    client = StellaClient(base_url="https://stella.test")
    api_request = ApiRequest.objects.create(
        survey_request=survey_request,
        account=account,
        mode="test",
        url=client.requests_url,
        request_headers=client.logged_headers("secret-key-abcd"),
        request_body={"channel": "chat"},
    )
    with responses.RequestsMock() as stella:
        stella.post("https://stella.test/v1/requests", **answer)
        result = client.create_request(api_request.request_body, api_key="secret-key-abcd")
        assert stella.calls[0].request.headers["x-api-key"] == "secret-key-abcd"
    api_request_finish(api_request, result)
    api_request.refresh_from_db()
    assert (result.outcome, result.status_code, result.error_message, result.retry_after) == (
        outcome,
        status_code,
        message,
        retry_after,
    )
    assert (api_request.outcome, api_request.status_code, api_request.error_message) == (outcome, status_code, message)
    assert api_request.duration_ms is not None and api_request.finished_at is not None
    assert api_request.request_headers["x-api-key"] == "••••abcd"


def bodies(account) -> list[dict]:
    plain = SurveyRequestFactory(account=account, tags=["billing"])
    flagged = SurveyRequestFactory(account=account, decision=Decision.DO_NOT_SEND, customer_name="", channel="email")
    Teammate.objects.create(account=account, intercom_id="777", stella_custom_id="emp-777")
    integration = account.integration
    flagged_request = survey_request_feedback_request(flagged, integration=integration, employee_custom_id="emp-777")
    return [
        survey_request_feedback_request(plain, integration=integration).as_json(),
        replace(flagged_request, brand="acme", language="en-US").as_json(),
        survey_request_feedback_request(
            SurveyRequestFactory(account=account, tags=[f"t{i}" for i in range(30)]), integration=integration
        ).as_json(),
    ]


def test_request_body_follows_stellas_contract(account):
    plain, flagged, many_tags = bodies(account)
    assert set(plain) == {"channel", "employee", "customer", "ext_interaction_id", "external_url", "tags"}
    assert flagged["do_not_send"] is True and "do_not_send" not in plain
    assert flagged["employee"] == {"custom_id": "emp-777"}
    assert flagged["customer"] == {"email": "ada@customer.example"}  # no empty name
    assert (flagged["brand"], flagged["language"]) == ("acme", "en-US")
    assert len(many_tags["tags"]) == 20  # Stella takes up to 20


def test_request_body_validates_against_the_requests_api_schema(account):
    spec = yaml.safe_load(REFERENCE_SCHEMA.read_text())
    schema = {**spec["components"]["schemas"]["FeedbackRequestModel"], "components": spec["components"]}
    validator = Draft7Validator(schema)
    for body in bodies(account):
        assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors({"channel": "chat", "surprise": 1}))  # the schema does bite


@pytest.mark.parametrize(
    ("cluster", "ids"),
    [
        ({"timeout": 60, "retry": 90, "max_attempts": 3}, []),
        ({"timeout": 90, "retry": 90, "max_attempts": 3}, ["portal.E001"]),
        ({"timeout": None, "retry": 90, "max_attempts": 3}, ["portal.E001"]),
        ({"timeout": 60, "retry": 90, "max_attempts": 0}, ["portal.E002"]),
        ({"timeout": 20, "retry": 90, "max_attempts": 3}, ["portal.E003"]),
    ],
)
def test_queue_settings_check(settings, cluster, ids):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, **cluster}
    assert [message.id for message in run_checks(tags=["portal"])] == ids


def test_a_change_made_meanwhile_makes_a_stale_move_fail(account):
    """A sender that read the request before a tag turned it into do-not-send must not claim it as it was."""
    from surveys.delivery.survey_requests import InvalidTransition, survey_request_transition

    seen_by_sender = SurveyRequestFactory(account=account, send_after=NOW)
    current = SurveyRequest.objects.get(pk=seen_by_sender.pk)
    survey_request_transition(current, to=S.SCHEDULED, decision=Decision.DO_NOT_SEND)  # what a tag does
    with pytest.raises(InvalidTransition):
        survey_request_transition(seen_by_sender, to=S.SENDING, claimed_at=NOW)
    assert SurveyRequest.objects.get(pk=seen_by_sender.pk).decision == Decision.DO_NOT_SEND


def test_an_event_losing_the_race_to_a_sender_is_still_recorded(client, account, monkeypatch):
    from integrations.models import InboundWebhook
    from surveys.delivery import survey_requests as services
    from surveys.models import ConversationEvent

    account.integration.channel_delay = timedelta(minutes=10)
    account.integration.save()
    post_webhook(client, load_fixture("conversation_admin_closed"))

    def taken_meanwhile(*args, **kwargs):
        raise services.InvalidTransition("a sender took it")

    monkeypatch.setattr(services, "survey_request_transition", taken_meanwhile)
    reopened = notification(
        "conversation_admin_opened", created_at=load_fixture("conversation_admin_closed")["created_at"] + 60
    )
    post_webhook(client, reopened)
    assert InboundWebhook.objects.get(topic="conversation.admin.opened").status == InboundWebhook.Status.PROCESSED
    assert ConversationEvent.objects.filter(kind="reopened").count() == 1


@responses.activate
def test_a_sender_whose_claim_was_taken_during_its_lookups_makes_no_call(account, settings):
    """If the sweep gives up on a slow sender and another takes the request, the first must not call Stella."""
    settings.INTERCOM_API_URL = "https://api.intercom.test"
    survey_request = SurveyRequestFactory(account=account, send_after=NOW, customer_email="", customer_id="contact-9")

    def contact(request):
        SurveyRequest.objects.filter(pk=survey_request.pk).update(
            claimed_at=NOW + timedelta(minutes=5)
        )  # another sender's claim
        return 200, {}, '{"type": "contact", "id": "contact-9", "role": "user", "email": "nine@customer.example"}'

    responses.add_callback(responses.GET, "https://api.intercom.test/contacts/contact-9", callback=contact)
    survey_request_send(survey_request.pk, now=NOW)
    assert [call.request.url for call in responses.calls] == ["https://api.intercom.test/contacts/contact-9"]
    assert not ApiRequest.objects.exists()


def test_a_sender_that_keeps_dying_before_its_call_ends_failed(account, settings):
    settings.STELLA_MAX_ATTEMPTS = 3
    survey_request = SurveyRequestFactory(
        account=account, status=S.SENDING, attempts=1, claimed_at=NOW - timedelta(minutes=5)
    )
    survey_requests_recover_stale(now=NOW)
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.attempts) == (S.SCHEDULED, 2)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(status=S.SENDING, claimed_at=NOW - timedelta(minutes=5))
    survey_request.refresh_from_db()
    survey_requests_recover_stale(now=NOW)
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.attempts) == (S.FAILED, 3)
    assert "stopped 3 times before calling Stella" in survey_request.status_detail


def test_a_disabled_account_sends_nothing_until_enabled(account):
    survey_request = SurveyRequestFactory(account=account, send_after=NOW - timedelta(minutes=1))
    account.integration.enabled = False
    account.integration.save()
    assert survey_requests_send_due(now=NOW) == 0
    with responses.RequestsMock():  # any call out would fail the test
        assert survey_request_send(survey_request.pk, now=NOW).status == S.SCHEDULED
    account.integration.enabled = True
    account.integration.save()
    assert survey_requests_send_due(now=NOW) == 1


@responses.activate
def test_looked_up_names_are_cut_to_fit(account, settings):
    settings.INTERCOM_API_URL = "https://api.intercom.test"
    survey_request = SurveyRequestFactory(
        account=account, send_after=NOW, customer_email="", customer_name="", customer_id="c-long"
    )
    responses.get(
        "https://api.intercom.test/contacts/c-long",
        json={"id": "c-long", "role": "user", "name": "N" * 500, "email": "long@customer.example"},
    )
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
    assert survey_request_send(survey_request.pk, now=NOW).status == S.SENT
    assert SurveyRequest.objects.get(pk=survey_request.pk).customer_name == "N" * 200


@responses.activate
def test_two_closes_of_one_customer_recorded_side_by_side_survey_them_once_not_never(account, settings):
    """Parallel drains can each record a close of the same customer, in different conversations, unaware of the
    other: both wait to be sent. At send, the one that goes first is sent and the other suppressed."""
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={}, status=201)
    account.integration.suppression_window = timedelta(days=7)
    account.integration.save()
    past = timezone.now() - timedelta(minutes=5)
    first, second = (
        SurveyRequestFactory(
            account=account, channel="chat", customer_email="ada@example.com", closed_at=past, send_after=past
        )
        for _ in range(2)
    )
    # Sent in either order, the customer gets one survey.
    assert survey_request_send(second.pk, now=timezone.now()).status == S.SUPPRESSED
    assert survey_request_send(first.pk, now=timezone.now()).status == S.SENT
    assert len(responses.calls) == 1


@responses.activate
def test_a_teammate_stella_is_known_not_to_recognise_is_invalid_without_a_call(account, settings):
    """The last employee sync found no Stella employee for the teammate: Stella would answer Employee not found."""
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={}, status=201)
    Teammate.objects.create(
        account=account,
        intercom_id="4100001",
        email="tess@support.example",
        stella_match=Teammate.StellaMatch.UNMATCHED,
    )
    past = timezone.now() - timedelta(minutes=5)
    survey_request = SurveyRequestFactory(account=account, teammate_id="4100001", closed_at=past, send_after=past)
    survey_request = survey_request_send(survey_request.pk, now=timezone.now())
    assert (survey_request.status, survey_request.reason) == (S.INVALID, "employee_unknown")
    call = survey_request.api_requests.get()
    assert (call.outcome, call.error_message, call.url) == (O.INVALID, "Employee not found", "")
    assert not responses.calls
    # With employee sync turned off the portal doesn't presume: a resend goes to Stella.
    account.integration.employee_sync_enabled = False
    account.integration.save()
    survey_requests_resend([survey_request], by="csm")
    assert survey_request_send(survey_request.pk, now=timezone.now()).status == S.SENT
    assert len(responses.calls) == 1
