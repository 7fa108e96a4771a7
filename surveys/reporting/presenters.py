"""How a request reads to people: its outcome and reason in plain words, the same on the status
page, its CSV, the JSON API and the admin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from integrations import messages
from integrations.vocabulary import Channel
from portal.redaction import mask_email, mask_name
from portal.text import displayable
from surveys.decisions.rules import RULES
from surveys.models import ApiRequest, Feedback, SurveyOutcome, SurveyRequest

# What a call's outcome means when there is no error message to explain.
CALL_EXPLANATIONS: dict[str, str] = {
    ApiRequest.Outcome.PENDING: "The call to Stella is under way.",
    ApiRequest.Outcome.SENT: "Stella accepted the request: it sends the customer the survey.",
    ApiRequest.Outcome.RETRY: "Stella could not take the request just now; the portal tries again shortly.",
    ApiRequest.Outcome.AMBIGUOUS: "No answer came back, so the request may have reached Stella. Check Stella "
    "before resending: a resend may survey the customer twice.",
}
DO_NOT_SEND_EXPLANATION = "Stella recorded it for reporting, flagged do not send: no survey goes to the customer."

# Each rule, by the reason it finds (integrations/messages.py), asked as a question.
RULE_REASONS = {
    "channel_unsupported": messages.CHANNEL_UNSUPPORTED,
    "channel_disabled": messages.CHANNEL_DISABLED,
    "customer_email_missing": messages.INVALID_CUSTOMER,
    "assignee_missing": messages.EMPLOYEE_NOT_FOUND,
    "employee_unknown": messages.EMPLOYEE_UNKNOWN,
    "assignee_is_bot": messages.BOT_ASSIGNEE,
    "first_message_tagged": messages.SUPPRESSED_TAG,
    "conversation_surveyed": messages.ALREADY_SURVEYED,
    "surveyed_within_window": messages.SUPPRESSION_WINDOW,
    "team_not_surveyed": messages.TEAM_LEFT_OUT,
    "teammate_replies_too_few": messages.TOO_FEW_REPLIES,
    "last_reply_too_old": messages.REPLY_TOO_OLD,
    "left_out_of_sample": messages.NOT_SAMPLED,
}


def rule_verdicts(verdicts: dict[str, str | None]) -> list[tuple[str, str]]:
    """Each rule that ran, in the order they run, as (question, answer) in plain words."""
    answers = []
    for rule in RULES:
        if rule.__name__ not in verdicts:
            continue
        reason = verdicts[rule.__name__]
        answers.append(
            (RULE_REASONS[rule.__name__].asked, f"Yes: {messages.words_of(reason or '')}" if reason else "No")
        )
    return answers


def explanation_of(code: str, text: str = "", *, csm: bool = False) -> str:
    """What a reason means and what the reader does about it: a support user, who to ask; a CSM, the fix
    (Message.told). A message nobody knows, verbatim."""
    entry = messages.message(code)
    return entry.told(csm=csm) if entry else text


@dataclass(frozen=True)
class Presented:
    """One row of the status page, its CSV and the API, in plain words."""

    time: datetime
    account: str
    conversation_id: str
    conversation_url: str
    channel: str
    customer: str  # the email, masked
    customer_name: str  # masked
    teammate: str
    mode: str
    outcome: str
    reason: str
    explanation: str
    # Stella's side (its feedback record), for a survey request; empty for a call.
    delivery_status: str = ""  # in Stella's words ("Delivered", "Not sent: suppression period")
    delivery_explanation: str = ""
    star_rating: int | None = None
    comment: str = ""  # emails in it masked, as the customer's are
    reconcile: str = ""  # the reconcile flag in plain words, if set

    @property
    def stars(self) -> str:
        return stars(self.star_rating)

    @property
    def stars_in_words(self) -> str:
        return stars_in_words(self.star_rating)


def survey_request_outcome(survey_request: SurveyRequest) -> str:
    """Where the request stands: a request sent flagged do not send reads as such, not as "Sent"."""
    if survey_request.outcome == SurveyOutcome.DO_NOT_SEND:
        return SurveyOutcome.DO_NOT_SEND.label
    return survey_request.get_status_display()


RESOLVED_BY_RESEND = "resolved by a resend"


def api_request_outcome(api_request: ApiRequest) -> str:
    """A call's outcome in the same words as its survey request's: an accepted do-not-send call is
    "Sent, flagged do not send", and an old failure a resend has since fixed says so."""
    if api_request.outcome == ApiRequest.Outcome.SENT and api_request.survey_request.do_not_send:
        return SurveyOutcome.DO_NOT_SEND.label
    if api_request.is_resolved:
        return f"{api_request.get_outcome_display()}, {RESOLVED_BY_RESEND}"
    return api_request.get_outcome_display()


def channel_label(survey_request: SurveyRequest) -> str:
    """The channel, or why there is none: still to be looked up only while the request waits."""
    if survey_request.channel:
        return survey_request.get_channel_display()
    return "To be looked up" if survey_request.outcome == SurveyOutcome.WAITING else "Not known"


def survey_request_reason(survey_request: SurveyRequest, *, csm: bool = False) -> tuple[str, str]:
    """The reason, and what it means: the rule that decided, else what happened since (Stella's message, a reopen);
    then who to ask, or for a CSM the fix."""
    code = survey_request.reason or survey_request.detail_code
    detail = survey_request.status_detail
    entry = messages.message(code)
    if entry is None:
        return detail, ""
    explanation = entry.explanation
    # What happened since the rule decided (a call's answer, a retry) says more than the rule's words.
    if detail and detail not in (entry.words, messages.words_of(entry.stella)):
        explanation = f"{explanation} {detail}".strip()
    return entry.words, f"{explanation} {entry.next_step(csm=csm)}".strip()


def api_request_reason(api_request: ApiRequest, *, csm: bool = False) -> tuple[str, str]:
    """The error message (empty when there is none) and what the call's outcome means, in plain words; then who to
    ask, or for a CSM the fix, unless a resend has resolved it."""
    code = api_request.message_code
    message = messages.words_of(code, api_request.error_message)
    entry = messages.message(code)
    if entry is not None:  # resolved by a resend: nothing left to do, nobody to ask
        explanation = entry.explanation if api_request.is_resolved else entry.told(csm=csm)
    elif message:
        explanation = message
    elif api_request.outcome == ApiRequest.Outcome.SENT and api_request.survey_request.do_not_send:
        explanation = DO_NOT_SEND_EXPLANATION
    else:
        explanation = CALL_EXPLANATIONS.get(api_request.outcome, "")
    if api_request.is_resolved:
        sent_at = api_request.survey_request.sent_at
        when = f" on {timezone.localtime(sent_at):%Y-%m-%d %H:%M %Z}" if sent_at else ""
        explanation = f"Resolved: resent and accepted by Stella{when}. {explanation}".strip()
    return message, explanation


def present(row: ApiRequest | SurveyRequest, *, csm: bool = False) -> Presented:
    """One call or one survey request, as every screen shows it: what came from outside (names, Stella's words, the
    comment) without control characters or bidirectional overrides. For a support user, the explanation ends with
    who to ask; for a CSM (`csm`, see selectors.is_csm), with the fix."""
    if isinstance(row, ApiRequest):
        survey_request = row.survey_request
        outcome, time = api_request_outcome(row), row.created_at
        reason, explanation = api_request_reason(row, csm=csm)
    else:
        survey_request = row
        outcome, time = survey_request_outcome(row), row.closed_at
        reason, explanation = survey_request_reason(row, csm=csm)
    stella = stella_side(row) if isinstance(row, SurveyRequest) else StellaSide()
    return Presented(
        time=time,
        account=row.account.name,
        conversation_id=survey_request.conversation_id,
        conversation_url=survey_request.conversation_url,
        channel=channel_label(survey_request),
        customer=mask_email(displayable(survey_request.customer_email)) if survey_request.customer_email else "",
        customer_name=mask_name(displayable(survey_request.customer_name)),
        teammate=displayable(survey_request.teammate_name or survey_request.teammate_email),
        mode=row.get_mode_display(),
        outcome=outcome,
        reason=displayable(reason),
        explanation=displayable(explanation),
        delivery_status=displayable(stella.delivery_status),
        delivery_explanation=stella.delivery_explanation,
        star_rating=stella.star_rating,
        comment=mask_emails_in(displayable(stella.comment)),
        reconcile=stella.reconcile,
    )


# ---- Stella's side: its feedback record of a request, and the Teammates view's figures ----

# Stella's request_delivery_status values (its exports and Data Return), explained.
DELIVERY_EXPLANATIONS = {
    "Delivered": "Stella sent the customer the survey.",
    "Not sent: suppression period": "Stella didn't send it: the customer had a survey within Stella's own "
    "suppression period.",
    "Not sent: do not send flag": "Stella recorded it for reporting without surveying anyone, as asked.",
    "Not sent: consumer unsubscribed": "Stella didn't send it: the customer unsubscribed from its surveys.",
    "Not sent: rejected": "Stella didn't send it: a recent survey to this address bounced.",
    "Soft bounce": "Stella sent it and it bounced for now; Stella tries again.",
    "Hard bounce": "Stella sent it and the address bounced for good.",
}
EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class StellaSide:
    """What Stella's feedback record says of a survey request, and whether a person should look at it."""

    delivery_status: str = ""
    delivery_explanation: str = ""
    star_rating: int | None = None
    comment: str = ""  # whole: the screens support teams read mask the emails in it (mask_emails_in)
    reconcile: str = ""
    feedback: Feedback | None = None


def survey_request_feedback(survey_request: SurveyRequest) -> Feedback | None:
    """Stella's record of the request, if a feedback pull linked one (no query when the row was read with
    select_related("feedback"))."""
    try:
        return survey_request.feedback
    except Feedback.DoesNotExist:
        return None


def stella_side(survey_request: SurveyRequest) -> StellaSide:
    """Stella's delivery status in its words and in plain words, the customer's star rating and comment
    (gone once the request's personal data is erased), and the reconcile flag in plain words."""
    feedback = survey_request_feedback(survey_request)
    reconcile = survey_request.get_reconcile_flag_display() if survey_request.reconcile_flag else ""
    if feedback is None:
        return StellaSide(reconcile=reconcile)
    status = feedback.delivery_status
    return StellaSide(
        delivery_status=status,
        delivery_explanation=delivery_explanation(status),
        star_rating=feedback.star_rating,
        comment="" if survey_request.erased_at else feedback.comment,
        reconcile=reconcile,
        feedback=feedback,
    )


def delivery_explanation(status: str) -> str:
    if status in DELIVERY_EXPLANATIONS:
        return DELIVERY_EXPLANATIONS[status]
    folded = status.strip().casefold()
    return next((text for known, text in DELIVERY_EXPLANATIONS.items() if known.casefold() == folded), "")


def mask_emails_in(text: str) -> str:
    """A customer's free text as support teams read it: any email address in it masked as the customer's is."""
    return EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group()), text) if "@" in text else text


def stars(star_rating: int | None) -> str:
    """★★★★☆ for 4 (of 5); the number itself if Stella sent one outside 1–5; "" for none."""
    if star_rating is None:
        return ""
    if not 1 <= star_rating <= 5:
        return str(star_rating)
    return "★" * star_rating + "☆" * (5 - star_rating)


def stars_in_words(star_rating: int | None) -> str:
    return "" if star_rating is None else f"{star_rating} of 5 stars"


def response_rate(responded: int, delivered: int) -> float | None:
    """Answered surveys out of those Stella delivered, 0 to 1; None when none was delivered."""
    return round(responded / delivered, 4) if delivered else None


def average_rating(rating_sum: int, rating_count: int) -> float | None:
    """The mean star rating to one decimal; None when nobody rated."""
    return round(rating_sum / rating_count, 1) if rating_count else None


NO_FIGURE = "—"


def percent_label(rate: float | None) -> str:
    return NO_FIGURE if rate is None else f"{rate * 100:.0f}%"


def rating_label(rating: float | None) -> str:
    return NO_FIGURE if rating is None else f"{rating:.1f}"


NO_TEAMMATE = "No teammate given"


def teammate_label(teammate: str, name: str) -> str:
    """A Stella employee as the Teammates view names them: their name, else the email or custom id Stella
    knows them by."""
    return displayable(name or teammate) or NO_TEAMMATE


def stella_channel_label(channel: str) -> str:
    """Stella's channel ("chat", "email", "phone"…) in the words the status page uses for ours."""
    if channel in Channel.values:
        return str(Channel(channel).label)
    return channel.capitalize() or NO_FIGURE
