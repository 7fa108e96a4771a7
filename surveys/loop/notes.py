"""Writing back to Intercom: an internal note on the conversation when its survey is decided, and another
when the customer's feedback arrives, for accounts that turn notes on.

An outbox, read off the database rather than fed by the hot paths: each run finds the survey requests decided
and the feedback received since it last looked (a watermark per account, a minute behind the clock so a
transaction committing late is not passed over), writes one IntercomNote row per request and event (a unique
constraint: whatever runs twice, one note), then posts the waiting ones. A note is claimed before it is posted;
one whose post may have reached Intercom (no answer) is failed, never posted again: a missing note is better
than two. Intercom's 429 puts the account's notes off until X-RateLimit-Reset.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from integrations.intercom.client import IntercomClient, IntercomError, IntercomRateLimited
from portal.crypto import SecretUndecryptable
from surveys.accounts.test_request import TEST_CLOSURE_ID
from surveys.models import Account, Feedback, IntercomNote, StellaSyncState, SurveyRequest
from surveys.reporting.presenters import stars_in_words, survey_request_outcome, survey_request_reason

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
# A survey request in one of these has been decided for good: its note says how.
DECIDED = (Status.SENT, Status.SUPPRESSED, Status.CANCELLED, Status.INVALID, Status.FAILED)
# Transactions commit a moment after they take their time: the watermark stays this far behind the clock.
SETTLE = timedelta(minutes=1)
# The first run after notes are turned on looks back this far, not at all history.
FIRST_LOOKBACK = timedelta(minutes=10)
BATCH = 500
ERROR_LENGTH = 500


def intercom_notes_write_all(*, now: datetime) -> int:
    """For every account with notes on: find what happened since the last run, and post its notes. Returns
    how many notes were posted."""
    posted = 0
    accounts = Account.objects.select_related("integration").filter(integration__intercom_notes_enabled=True)
    for account in accounts.order_by("pk"):
        try:
            intercom_notes_find(account, now=now)
            posted += intercom_notes_post(account, now=now)
        except Exception:
            logger.exception("intercom.notes.crashed", extra={"account": account.pk})
    return posted


def intercom_notes_find(account: Account, *, now: datetime) -> int:
    """Write a waiting note for each survey request decided, and each feedback received, since the last look."""
    state, _ = StellaSyncState.objects.get_or_create(account=account)
    settled = now - SETTLE
    decided_since = state.notes_decided_through or now - FIRST_LOOKBACK
    feedback_since = state.notes_feedback_through or now - FIRST_LOOKBACK
    decided = list(
        SurveyRequest.objects.filter(
            account=account, status__in=DECIDED, updated_at__gt=decided_since, updated_at__lte=settled
        )
        .exclude(closure_id=TEST_CLOSURE_ID)  # the onboarding's test requests have no Intercom conversation
        .filter(
            erased_at__isnull=True
        )  # nothing more is written of a customer once erased (surveys/accounts/privacy.py)
        .order_by("updated_at")[:BATCH]
    )
    answered = list(
        Feedback.objects.filter(
            account=account,
            survey_request__isnull=False,
            response_received_at__isnull=False,
            updated_at__gt=feedback_since,
            updated_at__lte=settled,
        )
        .exclude(survey_request__closure_id=TEST_CLOSURE_ID)
        .filter(survey_request__erased_at__isnull=True)
        .select_related("survey_request")
        .order_by("updated_at")[:BATCH]
    )
    notes = [_note(request, IntercomNote.Event.DECIDED, decided_note(request), now) for request in decided]
    notes += [
        _note(feedback.survey_request, IntercomNote.Event.FEEDBACK, feedback_note(feedback), now)
        for feedback in answered
        if feedback.survey_request is not None
    ]
    with transaction.atomic():
        IntercomNote.objects.bulk_create(notes, ignore_conflicts=True)  # one per request and event, ever
        StellaSyncState.objects.filter(pk=state.pk).update(
            # A full batch leaves the rest for the next run, from where it stopped.
            notes_decided_through=decided[-1].updated_at if len(decided) == BATCH else settled,
            notes_feedback_through=answered[-1].updated_at if len(answered) == BATCH else settled,
        )
    return len(notes)


def _note(survey_request: SurveyRequest, event: str, body: str, now: datetime) -> IntercomNote:
    return IntercomNote(
        account_id=survey_request.account_id, survey_request=survey_request, event=event, body=body, post_after=now
    )


def decided_note(survey_request: SurveyRequest) -> str:
    """The note on a decided survey request: what happened and why, in the words every screen uses."""
    outcome = survey_request_outcome(survey_request)
    reason, explanation = survey_request_reason(survey_request)
    lines = [f"Stella Connect survey: {outcome}."]
    if reason:
        lines.append(f"Why: {reason}.")
    if explanation:
        lines.append(explanation)
    return "<p>" + "</p><p>".join(_escape(line) for line in lines) + "</p>"


def feedback_note(feedback: Feedback) -> str:
    """The note on feedback received: the rating and the customer's comment."""
    lines = ["Stella Connect feedback received."]
    if feedback.star_rating is not None:
        lines.append(f"Rating: {stars_in_words(feedback.star_rating)}.")
    if feedback.comment:
        lines.append(f"Comment: “{feedback.comment}”")
    return "<p>" + "</p><p>".join(_escape(line) for line in lines) + "</p>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def intercom_notes_post(account: Account, *, now: datetime) -> int:
    """Post the account's waiting notes, oldest first, until done or Intercom asks us to wait."""
    integration = account.integration
    author = integration.intercom_note_author_id
    waiting = _waiting(account, now=now)
    if not author:
        waiting.update(status=IntercomNote.Status.FAILED, error="No teammate set to post the notes as.")
        return 0
    try:
        client = IntercomClient(integration.intercom_token, base_url=integration.intercom_api_url)
    except (IntercomError, SecretUndecryptable) as exc:
        waiting.update(status=IntercomNote.Status.FAILED, error=str(exc)[:ERROR_LENGTH])
        return 0
    posted = 0
    for note in waiting.select_related("survey_request")[:BATCH]:
        # The claim: of two runs, one posts it.
        if not IntercomNote.objects.filter(pk=note.pk, status=IntercomNote.Status.WAITING).update(
            status=IntercomNote.Status.POSTING
        ):
            continue
        try:
            client.conversation_note_add(note.survey_request.conversation_id, admin_id=author, body=note.body)
        except IntercomRateLimited as exc:
            # Nothing was posted: this note and the rest wait for Intercom's reset.
            IntercomNote.objects.filter(pk=note.pk).update(status=IntercomNote.Status.WAITING)
            _waiting(account, now=now).update(post_after=exc.reset_at)
            logger.info("intercom.notes.rate_limited", extra={"account": account.pk})
            break
        except IntercomError as exc:
            IntercomNote.objects.filter(pk=note.pk).update(
                status=IntercomNote.Status.FAILED, error=str(exc)[:ERROR_LENGTH]
            )
            continue
        IntercomNote.objects.filter(pk=note.pk).update(status=IntercomNote.Status.POSTED, posted_at=timezone.now())
        posted += 1
    return posted


def _waiting(account: Account, *, now: datetime) -> QuerySet[IntercomNote]:
    # One written as its customer was being erased waits for the retention job, which erases it unposted.
    return IntercomNote.objects.filter(
        account=account,
        status=IntercomNote.Status.WAITING,
        post_after__lte=now,
        survey_request__erased_at__isnull=True,
    )
