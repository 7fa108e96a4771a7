"""Service recovery on a low rating: each action once per Stella feedback record, against the sandbox's Stella
(Data Return), Intercom and a Slack-compatible webhook over real HTTP, and the outbox's rules without them."""

from datetime import timedelta
from itertools import count

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from sandbox.demo import sandbox_people_create
from sandbox.models import IntercomSandboxNote, SandboxReceived, StellaSandboxFeedback
from sandbox.views import _sequence_ids_take, _star_rating_for
from surveys.delivery.sending import survey_request_send
from surveys.loop.recovery import CLAIM_LOST, low_ratings_find, recovery_actions_do, recovery_all, recovery_kinds
from surveys.loop.sync import stella_sync_all
from surveys.models import RecoveryAction, SurveyRequest
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory

S = SurveyRequest.Status
A = RecoveryAction.Status
AUTHOR = "4100001"


def one_star_conversation() -> str:
    """A conversation id the sandbox's made-up customer rates 1★."""
    return next(str(n) for n in count(215000900000) if _star_rating_for(str(n)) == 1)


def recovering(account, *, webhook: str = "", **changes):
    integration = account.integration
    integration.low_rating_threshold = 2
    integration.low_rating_tag = "low-rating"
    integration.low_rating_note = True
    integration.low_rating_assign = "team:5500001"
    integration.low_rating_webhook = webhook
    integration.alert_recipients = "lead@support.example, qa@support.example"
    integration.intercom_note_author_id = AUTHOR
    integration.intercom_access_token = "sandbox-intercom-token-ws1"
    for name, value in changes.items():
        setattr(integration, name, value)
    integration.save()
    return account


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_one_star_record_from_data_return_is_recovered_once_even_when_stella_sends_it_again_edited(
    live_server, settings
):
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.SANDBOX_STELLA_API_SECRET = "sandbox-api-secret"
    settings.SANDBOX_FEEDBACK_SHARE = 1.0
    settings.SANDBOX_FEEDBACK_DELAY_SECONDS = 3600  # answered when the test says so
    sandbox_people_create()
    account = recovering(
        AccountFactory(
            name="Northwind Traders Support",
            integration__test_api_key="sandbox-test-key-0001",
            integration__stella_api_secret="sandbox-api-secret",
        ),
        webhook=f"{live_server.url}/sandbox/webhook/support-leads",
    )
    now = timezone.now()
    conversation = one_star_conversation()
    request = SurveyRequestFactory(
        account=account, conversation_id=conversation, closed_at=now - timedelta(minutes=5),
        customer_email="ada@customer.example", teammate_name="Tess Teammate",
    )  # fmt: skip
    assert survey_request_send(request.pk, now=now).status == S.SENT
    stella_sync_all(now=now)
    recovery_all(now=now)
    assert not RecoveryAction.objects.exists()  # delivered, not answered yet

    StellaSandboxFeedback.objects.update(respond_at=timezone.now() - timedelta(seconds=1))
    stella_sync_all(now=now + timedelta(minutes=15))
    for _ in range(2):
        recovery_all(now=timezone.now())

    tags = SandboxReceived.objects.filter(kind=SandboxReceived.Kind.TAG)
    assert [(t.target, t.body) for t in tags] == [(conversation, {"id": "low-rating", "admin_id": AUTHOR})]
    assigned = SandboxReceived.objects.get(kind=SandboxReceived.Kind.ASSIGN)
    assert (assigned.target, assigned.body["type"], assigned.body["assignee_id"]) == (conversation, "team", "5500001")
    note = IntercomSandboxNote.objects.get(conversation_id=conversation)
    assert "1 of 5 stars" in note.body and "Teammate credited: Tess Teammate." in note.body
    webhook = SandboxReceived.objects.get(kind=SandboxReceived.Kind.WEBHOOK)
    assert webhook.target == "support-leads" and webhook.body["text"].startswith(
        "Northwind Traders Support: Low rating"
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["lead@support.example", "qa@support.example"]
    assert set(RecoveryAction.objects.values_list("status", flat=True)) == {A.DONE}

    # Stella sends the record again, edited (a new sequence id, another comment): nothing is done twice.
    record = StellaSandboxFeedback.objects.get()
    record.sequence_id = _sequence_ids_take(1)
    record.answers["agent_star_rating"]["comment"] = "Edited: still waiting for an answer."
    record.save()
    stella_sync_all(now=now + timedelta(minutes=30))
    recovery_all(now=timezone.now())
    request.feedback.refresh_from_db()
    assert request.feedback.comment == "Edited: still waiting for an answer."
    assert SandboxReceived.objects.count() == 3 and IntercomSandboxNote.objects.count() == 1
    assert len(mail.outbox) == 1 and RecoveryAction.objects.count() == 5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_webhook_waits_for_its_reset_and_is_then_posted_once(live_server, account):
    recovering(account, webhook=f"{live_server.url}/sandbox/webhook/ratelimited-ops", low_rating_tag="",
               low_rating_note=False, low_rating_assign="", alert_recipients="")  # fmt: skip
    FeedbackFactory(account=account, survey_request=SurveyRequestFactory(account=account, sent=True), star_rating=1,
                    response_received_at=timezone.now())  # fmt: skip
    now = timezone.now()
    recovery_all(now=now)
    action = RecoveryAction.objects.get()
    assert action.status == A.WAITING and action.do_after > now
    recovery_all(now=now)  # before the reset: nothing
    assert SandboxReceived.objects.filter(status_code=200).count() == 0
    recovery_all(now=now + timedelta(seconds=5))
    assert SandboxReceived.objects.filter(status_code=200).count() == 1
    assert RecoveryAction.objects.get().status == A.DONE


@pytest.mark.django_db
def test_two_overlapping_runs_write_one_action_per_kind(account):
    recovering(account, low_rating_tag="", low_rating_assign="")
    feedback = FeedbackFactory(account=account, survey_request=SurveyRequestFactory(account=account, sent=True),
                               star_rating=2, response_received_at=timezone.now())  # fmt: skip
    now = timezone.now()
    low_ratings_find(account, now=now)
    low_ratings_find(account, now=now)
    assert sorted(RecoveryAction.objects.filter(feedback=feedback).values_list("kind", flat=True)) == ["email", "note"]


@pytest.mark.django_db
def test_ratings_above_the_threshold_unanswered_or_old_start_nothing(account):
    recovering(account)
    now = timezone.now()
    sent = {"account": account, "sent": True}
    FeedbackFactory(
        account=account, survey_request=SurveyRequestFactory(**sent), star_rating=3, response_received_at=now
    )
    FeedbackFactory(account=account, survey_request=SurveyRequestFactory(**sent), star_rating=None)
    old = FeedbackFactory(account=account, survey_request=SurveyRequestFactory(**sent), star_rating=1,
                          response_received_at=now)  # fmt: skip
    type(old).objects.filter(pk=old.pk).update(updated_at=now - timedelta(days=2))
    assert low_ratings_find(account, now=now) == 0


@pytest.mark.django_db
def test_an_action_claimed_by_a_run_that_died_is_never_done_again(account):
    recovering(account, low_rating_tag="", low_rating_assign="", low_rating_note=False)
    FeedbackFactory(account=account, survey_request=SurveyRequestFactory(account=account, sent=True), star_rating=1,
                    response_received_at=timezone.now())  # fmt: skip
    now = timezone.now()
    low_ratings_find(account, now=now)
    # The run claimed it, sent the email, and died before recording it.
    RecoveryAction.objects.update(status=A.DOING, claimed_at=now)
    assert recovery_actions_do(account, now=now + CLAIM_LOST + timedelta(seconds=1)) == 0
    action = RecoveryAction.objects.get()
    assert action.status == A.FAILED and "isn't done again" in action.error
    assert len(mail.outbox) == 0


@pytest.mark.django_db
def test_no_threshold_no_recovery_and_only_the_chosen_actions(account):
    assert recovery_kinds(account.integration) == []
    recovering(account, low_rating_webhook="", alert_recipients="")
    assert recovery_kinds(account.integration) == ["tag", "note", "assign"]


@pytest.mark.django_db
def test_without_an_author_the_intercom_actions_fail_saying_why(account):
    recovering(account, intercom_note_author_id="", alert_recipients="")
    FeedbackFactory(account=account, survey_request=SurveyRequestFactory(account=account, sent=True), star_rating=1,
                    response_received_at=timezone.now())  # fmt: skip
    recovery_all(now=timezone.now())
    errors = set(RecoveryAction.objects.values_list("status", "error"))
    assert errors == {(A.FAILED, "No teammate set to act as in Intercom (the Intercom note author).")}


@pytest.mark.django_db
def test_the_survey_request_and_the_satisfaction_report_show_what_recovery_did(client, account):
    recovering(account, low_rating_tag="", low_rating_assign="", low_rating_note=False, intercom_note_author_id="")
    now = timezone.now()
    recovered = SurveyRequestFactory(account=account, sent=True)
    FeedbackFactory(account=account, survey_request=recovered, star_rating=1, response_received_at=now,
                    request_created_at=now)  # fmt: skip
    still_open = SurveyRequestFactory(account=account, sent=True)
    FeedbackFactory(account=account, survey_request=still_open, star_rating=2, response_received_at=now,
                    request_created_at=now)  # fmt: skip
    recovery_all(now=now)  # both emailed
    RecoveryAction.objects.filter(survey_request=still_open).update(status=A.FAILED, error="SMTP refused")
    client.force_login(User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345"))

    page = client.get(f"/admin/surveys/surveyrequest/{recovered.pk}/change/").content.decode()
    assert "Email to the alert recipients: done " in page
    page = client.get(f"/admin/surveys/surveyrequest/{still_open.pk}/change/").content.decode()
    assert "Email to the alert recipients: failed: SMTP refused" in page
    report = client.get("/status/teammates/").content.decode()
    assert "<strong>1</strong> recovered (every action done), <strong>1</strong> open" in report
