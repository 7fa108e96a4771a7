"""What the inbox app shows beside a conversation in Intercom: its survey, in the words every screen uses
(integrations/messages.py, surveys/reporting/presenters.py), and, while the survey waits, a button that stops it.

One canvas, kept short (Intercom's inbox guidelines: under 400 px high): where the latest close's survey stands and
why, whom it went to and who it credits, the stars and comment once Stella has them. Text from outside (names,
emails, the comment) goes through `plain`, so it shows as typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from integrations import messages
from integrations.intercom.canvas import CanvasRequest, button, canvas, divider, plain, text
from portal.text import displayable
from surveys.accounts.account import account_inbox_app_seen
from surveys.accounts.test_request import TEST_CLOSURE_ID
from surveys.delivery.survey_requests import survey_request_stop_in_intercom
from surveys.models import Account, SurveyOutcome, SurveyRequest
from surveys.reporting.presenters import stars, stars_in_words, survey_request_feedback, survey_request_reason

DONT_SURVEY = "dont_survey"
TITLE = "Stella Connect survey"


def inbox_canvas(request: CanvasRequest, *, now: datetime | None = None) -> dict[str, Any]:
    """The answer to an initialize or submit request: a press of Don't survey is acted on first."""
    account = Account.objects.select_related("integration").filter(intercom_workspace_id=request.workspace_id).first()
    if account is None:
        return canvas(not_connected(request.workspace_id))
    account_inbox_app_seen(account, now=now or timezone.now())
    if not request.conversation_id:
        return canvas([text(TITLE, style="header"), text("Open a conversation to see its survey.", style="muted")])
    if request.component_id == DONT_SURVEY:
        _stop(account, request, now=now)
    survey_request = latest_survey_request(account, request.conversation_id)
    if survey_request is None:
        return canvas([text(TITLE, style="header"), *no_survey_yet()])
    stored = {"survey_request": survey_request.pk} if survey_request.status == SurveyRequest.Status.SCHEDULED else {}
    return canvas([text(TITLE, style="header"), *survey_state(survey_request)], stored_data=stored)


def not_connected(workspace_id: str) -> list[dict[str, Any]]:
    return [
        text(TITLE, style="header"),
        text("This Intercom workspace isn't connected to Stella Connect, so its conversations aren't surveyed."),
        text(f"Ask your Stella Connect CSM to add workspace **{plain(workspace_id)}** to the portal.", style="muted"),
    ]


def no_survey_yet() -> list[dict[str, Any]]:
    return [
        text("No survey yet."),
        text("A survey is decided when the conversation is closed.", style="muted"),
    ]


def latest_survey_request(account: Account, conversation_id: str) -> SurveyRequest | None:
    """The conversation's latest close: the one surveyed (an older one still waiting is cancelled by it)."""
    return (
        SurveyRequest.objects.filter(account=account, conversation_id=conversation_id)
        .exclude(closure_id=TEST_CLOSURE_ID)
        .select_related("feedback")
        .order_by("-closed_at", "-pk")
        .first()
    )


def _stop(account: Account, request: CanvasRequest, *, now: datetime | None) -> None:
    """Stop the request the canvas showed (its id came back signed in stored_data), if it is this conversation's
    and still waits: a replayed or stale press stops nothing else."""
    pk = request.stored_data.get("survey_request")
    if not isinstance(pk, int) or isinstance(pk, bool):
        return
    survey_request = SurveyRequest.objects.filter(
        pk=pk, account=account, conversation_id=request.conversation_id
    ).first()
    if survey_request is not None:
        survey_request_stop_in_intercom(
            survey_request, admin_id=request.admin_id or "", admin_name=request.admin_name, now=now
        )


def survey_state(survey_request: SurveyRequest) -> list[dict[str, Any]]:
    """Where the survey stands and why, in the status page's words."""
    outcome = survey_request.outcome
    if outcome == SurveyOutcome.WAITING:
        return _waiting(survey_request)
    components = [text(f"**{outcome.label}**" + _when(survey_request))]
    reason, explanation = survey_request_reason(survey_request)
    if reason:
        components.append(text(f"Why: {plain(displayable(reason))}"))
    if explanation:
        components.append(text(plain(displayable(explanation)), style="muted"))
    entry = messages.message(survey_request.reason or survey_request.detail_code)
    if outcome in (SurveyOutcome.INVALID, SurveyOutcome.FAILED) and entry is not None:
        components.append(text(f"To fix: {plain(entry.fix)}"))
    if outcome in (SurveyOutcome.SENT, SurveyOutcome.DO_NOT_SEND):
        components += _people(survey_request) + _feedback(survey_request)
    return components


def _waiting(survey_request: SurveyRequest) -> list[dict[str, Any]]:
    if survey_request.status == SurveyRequest.Status.SENDING:
        return [text("**Sending now**"), *_people(survey_request)]
    return [
        text(f"**Waiting** until {_time(survey_request.send_after)}"),
        *_people(survey_request),
        text("Reopening the conversation or a reply from the customer before then cancels it.", style="muted"),
        button(DONT_SURVEY, "Don't survey this conversation", style="secondary"),
    ]


def _when(survey_request: SurveyRequest) -> str:
    at = survey_request.sent_at if survey_request.sent_at else survey_request.updated_at
    return f" on {_time(at)}"


def _people(survey_request: SurveyRequest) -> list[dict[str, Any]]:
    """To whom, credited to whom."""
    customer = survey_request.customer_email or survey_request.customer_name
    teammate = survey_request.teammate_name or survey_request.teammate_email
    parts = [f"to {plain(displayable(customer))}"] if customer else []
    parts += [f"credited to {plain(displayable(teammate))}"] if teammate else []
    if not parts:
        return []
    line = ", ".join(parts)
    return [text(line[0].upper() + line[1:])]


def _feedback(survey_request: SurveyRequest) -> list[dict[str, Any]]:
    feedback = survey_request_feedback(survey_request)
    if feedback is None or feedback.star_rating is None:
        return []
    components = [divider(), text(f"{stars(feedback.star_rating)} ({stars_in_words(feedback.star_rating)})")]
    if feedback.comment and not survey_request.erased_at:
        components.append(text(f"“{plain(displayable(feedback.comment))}”"))
    return components


def _time(at: datetime) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M %Z}"
