"""How a request reads to people: its outcome and reason in plain words, the same on the status
page, its CSV, the JSON API and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.redaction import mask_email
from surveys.models import ApiRequest, SurveyOutcome, SurveyRequest
from surveys.rules import STELLA_MESSAGES, DoNotSendReason, SuppressionReason

# Stella's own messages (its API Status page) and ours, explained.
EXPLANATIONS = {
    "Employee not found": "Stella has no employee with the teammate's email. Add them in Stella, or give the "
    "teammate their Stella custom id under Teammates.",
    "Employee profile not complete": "The teammate's Stella profile is incomplete or not yet approved.",
    "Deactivated employee": "The teammate is deactivated in Stella; reactivate them to survey on their behalf.",
    "Invalid customer": "The customer's email is missing or malformed, so there is nobody to send the survey to.",
    "Channel not enabled for company": "The conversation began in a channel Stella doesn't survey for this company "
    "(or the account has it turned off).",
    "Channel is in manual mode": "The channel is still in manual mode in Stella; switch it to integrated to go live.",
    "Brand signifier not provided": "The company has several brands in Stella: set the account's brand.",
    "Invalid/inactive brand signifier": "The account's brand matches no active brand in Stella.",
    "Language not specified": "The company has several languages in Stella: set the account's language.",
    "API key rejected": "Stella refused the API key. Check the account's test or production key; sending is "
    "paused until it changes.",
    "Intercom access token rejected": "Intercom refused the account's access token: connect with Intercom again.",
    "Conversation not found in Intercom": "The conversation was deleted in Intercom before it could be looked up.",
}
KNOWN_MESSAGES = list(EXPLANATIONS)

REASON_EXPLANATIONS: dict[str, str] = {
    DoNotSendReason.BOT_ASSIGNEE: "A bot handled it, so Stella records it without surveying anyone.",
    DoNotSendReason.SUPPRESSED_TAG: "The first message carries a do-not-send tag (fraud, dupe, do_not_send_stella…).",
    SuppressionReason.SUPPRESSION_WINDOW: "This customer was surveyed recently, within the account's suppression window.",
    SuppressionReason.ALREADY_SURVEYED: "This conversation was already surveyed after an earlier close.",
    **{reason: EXPLANATIONS[message] for reason, message in STELLA_MESSAGES.items()},
}


def explain(message: str) -> str:
    if message in EXPLANATIONS:
        return EXPLANATIONS[message]
    for known, explanation in EXPLANATIONS.items():
        if message.startswith(known):
            return explanation
    return message


@dataclass(frozen=True)
class Presented:
    """One row of the status page, its CSV and the API, in plain words."""

    time: datetime
    account: str
    conversation_id: str
    conversation_url: str
    channel: str
    customer: str  # masked
    teammate: str
    mode: str
    outcome: str
    reason: str
    explanation: str


def survey_request_outcome(survey_request: SurveyRequest) -> str:
    """Where the request stands: a request sent flagged do not send reads as such, not as "Sent"."""
    if survey_request.outcome == SurveyOutcome.DO_NOT_SEND:
        return SurveyOutcome.DO_NOT_SEND.label
    return survey_request.get_status_display()


def survey_request_reason(survey_request: SurveyRequest) -> tuple[str, str]:
    """The reason, and what it means: the rule that decided, else what happened since (Stella's message, a reopen)."""
    reason = survey_request.get_reason_display() if survey_request.reason else survey_request.status_detail
    explanation = REASON_EXPLANATIONS.get(survey_request.reason, "") if survey_request.reason else ""
    if survey_request.status_detail and survey_request.status_detail != reason:
        explanation = f"{explanation} {survey_request.status_detail}".strip()
    return reason, explanation


def api_request_reason(api_request: ApiRequest) -> tuple[str, str]:
    message = api_request.error_message
    return message, explain(message) if message else ""


def present(row: ApiRequest | SurveyRequest) -> Presented:
    """One call or one survey request, as every screen shows it."""
    if isinstance(row, ApiRequest):
        survey_request = row.survey_request
        outcome, time = row.get_outcome_display(), row.created_at
        reason, explanation = api_request_reason(row)
    else:
        survey_request = row
        outcome, time = survey_request_outcome(row), row.closed_at
        reason, explanation = survey_request_reason(row)
    return Presented(
        time=time,
        account=row.account.name,
        conversation_id=survey_request.conversation_id,
        conversation_url=survey_request.conversation_url,
        channel=survey_request.get_channel_display() or "to be looked up",
        customer=mask_email(survey_request.customer_email) if survey_request.customer_email else "",
        teammate=survey_request.teammate_name or survey_request.teammate_email,
        mode=row.get_mode_display(),
        outcome=outcome,
        reason=reason,
        explanation=explanation,
    )
