"""Every rule that decides what happens to a closed conversation, and nothing else.

Each rule is a pure function of a `SurveyCandidate` that returns its reason or None.
`evaluate_rules` runs them all, so every verdict is stored; `decide` turns the
verdicts into what happens, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from integrations.intercom.payloads import AssigneeKind, Channel


class SuppressionReason(models.TextChoices):
    BOT_ASSIGNEE = "bot_assignee", "Assigned to a bot"
    SUPPRESSED_TAG = "suppressed_tag", "First message tagged do not send"
    CHANNEL_UNSUPPORTED = "channel_unsupported", "Began in a channel Stella doesn't survey"
    CHANNEL_DISABLED = "channel_disabled", "Channel turned off for the account"
    INVALID_CUSTOMER = "invalid_customer", "No valid customer email"
    EMPLOYEE_NOT_FOUND = "employee_not_found", "No teammate assigned"
    SUPPRESSION_WINDOW = "suppression_window", "Customer surveyed within the suppression window"
    ALREADY_SURVEYED = "already_surveyed", "Conversation already surveyed"


class Decision(models.TextChoices):
    SEND = "send", "Send"
    DO_NOT_SEND = "do_not_send", "Send flagged do not send"
    SUPPRESSED = "suppressed", "Suppressed"
    INVALID = "invalid", "Invalid"


# What Stella itself says for the same problem, shown on the Invalid Requests tab.
STELLA_MESSAGES = {
    SuppressionReason.CHANNEL_UNSUPPORTED: "Channel not enabled for company",
    SuppressionReason.CHANNEL_DISABLED: "Channel not enabled for company",
    SuppressionReason.INVALID_CUSTOMER: "Invalid customer",
    SuppressionReason.EMPLOYEE_NOT_FOUND: "Employee not found",
}
DO_NOT_SEND_REASONS = frozenset({SuppressionReason.BOT_ASSIGNEE, SuppressionReason.SUPPRESSED_TAG})
SUPPRESSING_REASONS = frozenset({SuppressionReason.SUPPRESSION_WINDOW, SuppressionReason.ALREADY_SURVEYED})


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


Rule = Callable[[SurveyCandidate], SuppressionReason | None]


def assignee_is_bot(candidate: SurveyCandidate) -> SuppressionReason | None:
    return SuppressionReason.BOT_ASSIGNEE if candidate.assignee_kind == AssigneeKind.BOT else None


def first_message_tagged(candidate: SurveyCandidate) -> SuppressionReason | None:
    tagged = any(tag.strip().casefold() in candidate.do_not_send_tags for tag in candidate.tags)
    return SuppressionReason.SUPPRESSED_TAG if tagged else None


def channel_unsupported(candidate: SurveyCandidate) -> SuppressionReason | None:
    return SuppressionReason.CHANNEL_UNSUPPORTED if candidate.channel == Channel.UNSUPPORTED else None


def channel_disabled(candidate: SurveyCandidate) -> SuppressionReason | None:
    if candidate.channel in (None, Channel.UNSUPPORTED):
        return None
    return None if candidate.channel in candidate.enabled_channels else SuppressionReason.CHANNEL_DISABLED


def customer_email_missing(candidate: SurveyCandidate) -> SuppressionReason | None:
    if candidate.customer_email_pending:
        return None
    return None if is_valid_email(candidate.customer_email) else SuppressionReason.INVALID_CUSTOMER


def assignee_missing(candidate: SurveyCandidate) -> SuppressionReason | None:
    human_or_bot = (AssigneeKind.ADMIN, AssigneeKind.BOT)
    return None if candidate.assignee_kind in human_or_bot else SuppressionReason.EMPLOYEE_NOT_FOUND


def surveyed_within_window(candidate: SurveyCandidate) -> SuppressionReason | None:
    return SuppressionReason.SUPPRESSION_WINDOW if candidate.customer_surveyed_within_window else None


def conversation_surveyed(candidate: SurveyCandidate) -> SuppressionReason | None:
    return SuppressionReason.ALREADY_SURVEYED if candidate.conversation_already_surveyed else None


RULES: tuple[Rule, ...] = (
    channel_unsupported,
    channel_disabled,
    customer_email_missing,
    assignee_missing,
    assignee_is_bot,
    first_message_tagged,
    conversation_surveyed,
    surveyed_within_window,
)


def evaluate_rules(candidate: SurveyCandidate) -> dict[str, SuppressionReason | None]:
    return {rule.__name__: rule(candidate) for rule in RULES}


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: SuppressionReason | None  # the one that decided; every verdict is kept beside it
    error_message: str  # Stella's words, for invalid


def decide(verdicts: dict[str, SuppressionReason | None]) -> Verdict:
    """Invalid beats do-not-send, which beats suppression: a do-not-send request surveys nobody,
    so a suppression window has nothing to hold back, and Stella still records the interaction."""
    reasons = [reason for reason in verdicts.values() if reason is not None]
    for reason in reasons:
        if reason in STELLA_MESSAGES:
            return Verdict(Decision.INVALID, reason, STELLA_MESSAGES[reason])
    for reason in reasons:
        if reason in DO_NOT_SEND_REASONS:
            return Verdict(Decision.DO_NOT_SEND, reason, "")
    for reason in reasons:
        if reason in SUPPRESSING_REASONS:
            return Verdict(Decision.SUPPRESSED, reason, "")
    return Verdict(Decision.SEND, None, "")


def is_valid_email(value: str | None) -> bool:
    if not value:
        return False
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True
