"""Writing back to Intercom: a note when a survey is decided and when feedback arrives, one per event, posted to
the sandbox's Intercom over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sandbox.models import IntercomSandboxNote as NoteReceived
from surveys.accounts.test_request import TEST_CLOSURE_ID
from surveys.decisions.rules import SuppressionReason
from surveys.loop.notes import intercom_notes_write_all
from surveys.models import Feedback, IntercomNote, SurveyRequest
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory

# The live server plays Intercom; it reads what the test writes.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

S = SurveyRequest.Status
AUTHOR = "4100099"


@pytest.fixture
def intercom(live_server, settings):
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    return live_server


@pytest.fixture
def noting(account):
    integration = account.integration
    integration.intercom_notes_enabled, integration.intercom_note_author_id = True, AUTHOR
    integration.intercom_access_token = "sandbox-intercom-token-ws1"
    integration.save()
    return account


def decided(account, *, minutes_ago: float = 2, **fields) -> SurveyRequest:
    survey_request = SurveyRequestFactory(account=account, **fields)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(updated_at=at)
    return survey_request


def test_a_decided_survey_gets_one_note_however_often_the_job_runs(intercom, noting):
    sent = decided(noting, status=S.SENT)
    suppressed = decided(
        noting, status=S.SUPPRESSED, decision="suppressed", reason=SuppressionReason.SUPPRESSION_WINDOW
    )
    decided(noting, status=S.SCHEDULED)  # still waiting: nothing to say yet
    decided(noting, status=S.SENT, closure_id=TEST_CLOSURE_ID)  # the onboarding's test: no conversation to note
    for _ in range(3):
        intercom_notes_write_all(now=timezone.now())
    received = {note.conversation_id: note for note in NoteReceived.objects.all()}
    assert set(received) == {sent.conversation_id, suppressed.conversation_id}
    assert received[sent.conversation_id].admin_id == AUTHOR
    assert "Stella Connect survey: Sent." in received[sent.conversation_id].body
    assert "Customer surveyed within the suppression window" in received[suppressed.conversation_id].body
    assert set(IntercomNote.objects.values_list("status", flat=True)) == {IntercomNote.Status.POSTED}


def test_feedback_gets_its_own_note_with_the_rating_and_comment(intercom, noting):
    survey_request = decided(noting, status=S.SENT)
    FeedbackFactory(
        account=noting,
        survey_request=survey_request,
        response_received_at=timezone.now() - timedelta(minutes=5),
        star_rating=4,
        comment="Helpful, thanks.",
    )
    Feedback.objects.update(updated_at=timezone.now() - timedelta(minutes=2))
    intercom_notes_write_all(now=timezone.now())
    intercom_notes_write_all(now=timezone.now())
    bodies = list(NoteReceived.objects.filter(conversation_id=survey_request.conversation_id).values_list("body"))
    assert len(bodies) == 2
    assert any("Rating: 4 of 5 stars." in body and "Helpful, thanks." in body for (body,) in bodies)


def test_intercoms_rate_limit_puts_the_note_off_until_its_reset_and_it_is_posted_once(intercom, noting):
    survey_request = decided(noting, status=S.SENT, conversation_id="ratelimited-1")
    intercom_notes_write_all(now=timezone.now())
    note = IntercomNote.objects.get()
    assert note.status == IntercomNote.Status.WAITING
    assert note.post_after > timezone.now() - timedelta(seconds=1)  # Intercom's X-RateLimit-Reset
    intercom_notes_write_all(now=note.post_after + timedelta(seconds=1))
    answers = list(
        NoteReceived.objects.filter(conversation_id=survey_request.conversation_id).values_list(
            "status_code", flat=True
        )
    )
    assert sorted(answers) == [200, 429]
    assert IntercomNote.objects.get().status == IntercomNote.Status.POSTED


def test_a_decision_still_settling_waits_a_minute_and_accounts_without_notes_get_none(intercom, noting):
    decided(AccountFactory(intercom_workspace_id="ws-other"), status=S.SENT)  # notes off: the default
    fresh = decided(noting, status=S.SENT, minutes_ago=0)
    intercom_notes_write_all(now=timezone.now())
    assert not NoteReceived.objects.exists()
    intercom_notes_write_all(now=timezone.now() + timedelta(minutes=2))
    assert list(NoteReceived.objects.values_list("conversation_id", flat=True)) == [fresh.conversation_id]
