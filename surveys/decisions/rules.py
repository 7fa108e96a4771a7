"""Every rule that decides what happens to a closed conversation, and nothing else.

Each rule is a pure function of a `SurveyCandidate` that returns its reason or None.
`evaluate_rules` runs them all, so every verdict is stored; `decide` turns the
verdicts into what happens, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models.enums import TextChoices

from integrations import messages
from integrations.vocabulary import AssigneeKind, Channel


class InvalidReason(TextChoices):
    """Stella would refuse the request: it is logged as invalid, in Stella's words, without a call."""

    CHANNEL_UNSUPPORTED = messages.CHANNEL_UNSUPPORTED.code, messages.CHANNEL_UNSUPPORTED.words
    CHANNEL_DISABLED = messages.CHANNEL_DISABLED.code, messages.CHANNEL_DISABLED.words
    INVALID_CUSTOMER = messages.INVALID_CUSTOMER.code, messages.INVALID_CUSTOMER.words
    EMPLOYEE_NOT_FOUND = messages.EMPLOYEE_NOT_FOUND.code, messages.EMPLOYEE_NOT_FOUND.words
    EMPLOYEE_UNKNOWN = messages.EMPLOYEE_UNKNOWN.code, messages.EMPLOYEE_UNKNOWN.words


class DoNotSendReason(TextChoices):
    """Stella records the interaction for reporting, flagged do not send: nobody is surveyed."""

    BOT_ASSIGNEE = messages.BOT_ASSIGNEE.code, messages.BOT_ASSIGNEE.words
    SUPPRESSED_TAG = messages.SUPPRESSED_TAG.code, messages.SUPPRESSED_TAG.words


class SuppressionReason(TextChoices):
    """Kept back: no request is made at all."""

    SUPPRESSION_WINDOW = messages.SUPPRESSION_WINDOW.code, messages.SUPPRESSION_WINDOW.words
    ALREADY_SURVEYED = messages.ALREADY_SURVEYED.code, messages.ALREADY_SURVEYED.words


class LeftOutReason(TextChoices):
    """Left out by the account's own rules of whom to survey: suppressed, whatever else is true of it (it is nobody's
    error, and Stella is told nothing, not even flagged do not send)."""

    TEAM_LEFT_OUT = messages.TEAM_LEFT_OUT.code, messages.TEAM_LEFT_OUT.words
    TOO_FEW_REPLIES = messages.TOO_FEW_REPLIES.code, messages.TOO_FEW_REPLIES.words
    REPLY_TOO_OLD = messages.REPLY_TOO_OLD.code, messages.REPLY_TOO_OLD.words
    NOT_SAMPLED = messages.NOT_SAMPLED.code, messages.NOT_SAMPLED.words


class CancelReason(TextChoices):
    """Why a close still waiting was cancelled: stored as the code, shown in these words."""

    REOPENED = messages.REOPENED.code, messages.REOPENED.words
    CUSTOMER_REPLIED = messages.CUSTOMER_REPLIED.code, messages.CUSTOMER_REPLIED.words
    SNOOZED = messages.SNOOZED.code, messages.SNOOZED.words
    DELETED = messages.DELETED.code, messages.DELETED.words
    SUPERSEDED = messages.SUPERSEDED.code, messages.SUPERSEDED.words
    ERASED = messages.ERASED.code, messages.ERASED.words
    STOPPED_IN_INTERCOM = messages.STOPPED_IN_INTERCOM.code, messages.STOPPED_IN_INTERCOM.words


Reason = LeftOutReason | InvalidReason | DoNotSendReason | SuppressionReason
# What a survey request's `reason` column may hold: the rule that decided, or why it was cancelled.
REASON_CHOICES = [
    *LeftOutReason.choices, *InvalidReason.choices, *DoNotSendReason.choices, *SuppressionReason.choices,
    *CancelReason.choices,
]  # fmt: skip
REASONS: dict[str, Reason | CancelReason] = {
    reason.value: reason
    for vocabulary in (LeftOutReason, InvalidReason, DoNotSendReason, SuppressionReason, CancelReason)
    for reason in vocabulary
}


class Decision(TextChoices):
    SEND = "send", "Send"
    DO_NOT_SEND = "do_not_send", "Send, flagged do not send"
    SUPPRESSED = "suppressed", "Suppress"
    INVALID = "invalid", "Invalid"


def stella_message(reason: InvalidReason) -> str:
    """What Stella itself would answer for the same problem (integrations/messages.py), stored as the call's."""
    return messages.MESSAGES[messages.MESSAGES[reason].stella].words


@dataclass(frozen=True)
class SurveyCandidate:
    """What the rules need to know about one closure; a selector fills it, rules run no queries."""

    channel: Channel | None  # None: not known yet, looked up before sending
    assignee_kind: AssigneeKind
    customer_email: str | None
    customer_email_pending: bool  # the payload names a contact whose email is looked up before sending
    tags: tuple[str, ...]
    enabled_channels: frozenset[Channel]
    do_not_send_tags: frozenset[str]
    customer_surveyed_within_window: bool
    conversation_already_surveyed: bool
    # The last sync of Stella's employees found none the request would name: known only at send.
    employee_unknown_to_stella: bool = False
    # The account's rules of whom to survey, as decision.closure_decide found them of this closure.
    team_left_out: bool = False
    too_few_replies: bool = False
    reply_too_old: bool = False
    not_sampled: bool = False
    # The teammate credited is the last to reply, not yet looked up: no assignee yet is no one missing.
    assignee_pending: bool = False


Rule = Callable[[SurveyCandidate], Reason | None]


def employee_unknown(candidate: SurveyCandidate) -> Reason | None:
    if candidate.assignee_kind != AssigneeKind.ADMIN:
        return None  # a bot is sent flagged do not send, as before; no teammate is its own reason
    return InvalidReason.EMPLOYEE_UNKNOWN if candidate.employee_unknown_to_stella else None


def assignee_is_bot(candidate: SurveyCandidate) -> Reason | None:
    return DoNotSendReason.BOT_ASSIGNEE if candidate.assignee_kind == AssigneeKind.BOT else None


def first_message_tagged(candidate: SurveyCandidate) -> Reason | None:
    tagged = any(tag.strip().casefold() in candidate.do_not_send_tags for tag in candidate.tags)
    return DoNotSendReason.SUPPRESSED_TAG if tagged else None


def channel_unsupported(candidate: SurveyCandidate) -> Reason | None:
    return InvalidReason.CHANNEL_UNSUPPORTED if candidate.channel == Channel.UNSUPPORTED else None


def channel_disabled(candidate: SurveyCandidate) -> Reason | None:
    if candidate.channel in (None, Channel.UNSUPPORTED):
        return None
    return None if candidate.channel in candidate.enabled_channels else InvalidReason.CHANNEL_DISABLED


def customer_email_missing(candidate: SurveyCandidate) -> Reason | None:
    if candidate.customer_email_pending:
        return None
    return None if is_valid_email(candidate.customer_email) else InvalidReason.INVALID_CUSTOMER


def assignee_missing(candidate: SurveyCandidate) -> Reason | None:
    if candidate.assignee_pending:
        return None
    human_or_bot = (AssigneeKind.ADMIN, AssigneeKind.BOT)
    return None if candidate.assignee_kind in human_or_bot else InvalidReason.EMPLOYEE_NOT_FOUND


def surveyed_within_window(candidate: SurveyCandidate) -> Reason | None:
    return SuppressionReason.SUPPRESSION_WINDOW if candidate.customer_surveyed_within_window else None


def conversation_surveyed(candidate: SurveyCandidate) -> Reason | None:
    return SuppressionReason.ALREADY_SURVEYED if candidate.conversation_already_surveyed else None


def team_not_surveyed(candidate: SurveyCandidate) -> Reason | None:
    return LeftOutReason.TEAM_LEFT_OUT if candidate.team_left_out else None


def teammate_replies_too_few(candidate: SurveyCandidate) -> Reason | None:
    return LeftOutReason.TOO_FEW_REPLIES if candidate.too_few_replies else None


def last_reply_too_old(candidate: SurveyCandidate) -> Reason | None:
    return LeftOutReason.REPLY_TOO_OLD if candidate.reply_too_old else None


def left_out_of_sample(candidate: SurveyCandidate) -> Reason | None:
    return LeftOutReason.NOT_SAMPLED if candidate.not_sampled else None


RULES: tuple[Rule, ...] = (
    team_not_surveyed,
    teammate_replies_too_few,
    last_reply_too_old,
    left_out_of_sample,
    channel_unsupported,
    channel_disabled,
    customer_email_missing,
    assignee_missing,
    employee_unknown,
    assignee_is_bot,
    first_message_tagged,
    conversation_surveyed,
    surveyed_within_window,
)


def evaluate_rules(candidate: SurveyCandidate) -> dict[str, Reason | None]:
    return {rule.__name__: rule(candidate) for rule in RULES}


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: Reason | None  # the one that decided; every verdict is kept beside it
    error_message: str  # Stella's words, for invalid


# Left out by the account's own rules beats everything: what the account doesn't survey is nobody's error and
# nothing for Stella to record. Then invalid beats do-not-send, which beats suppression: a do-not-send request
# surveys nobody, so a suppression window has nothing to hold back, and Stella still records the interaction.
PRECEDENCE: tuple[tuple[type[Reason], Decision], ...] = (
    (LeftOutReason, Decision.SUPPRESSED),
    (InvalidReason, Decision.INVALID),
    (DoNotSendReason, Decision.DO_NOT_SEND),
    (SuppressionReason, Decision.SUPPRESSED),
)


def decide(verdicts: dict[str, Reason | None]) -> Verdict:
    """What happens to the closure, from every rule's verdict: the first reason of the strongest kind decides."""
    reasons = [reason for reason in verdicts.values() if reason is not None]
    for vocabulary, decision in PRECEDENCE:
        reason = next((reason for reason in reasons if isinstance(reason, vocabulary)), None)
        if reason is not None:
            message = stella_message(reason) if isinstance(reason, InvalidReason) else ""
            return Verdict(decision, reason, message)
    return Verdict(Decision.SEND, None, "")


# Pure, and asked again for every closure of a returning customer (the dry run asks 100,000 times).
@lru_cache(maxsize=2**16)
def is_valid_email(value: str | None) -> bool:
    if not value:
        return False
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True
