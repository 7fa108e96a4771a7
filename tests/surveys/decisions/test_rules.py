from dataclasses import replace

import pytest

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.rules import (
    RULES,
    Decision,
    DoNotSendReason,
    InvalidReason,
    SuppressionReason,
    SurveyCandidate,
    decide,
    evaluate_rules,
)

CLEAN = SurveyCandidate(
    channel=Channel.CHAT,
    assignee_kind=AssigneeKind.ADMIN,
    customer_email="ada@customer.example",
    customer_email_pending=False,
    tags=(),
    enabled_channels=frozenset({Channel.EMAIL, Channel.CHAT}),
    do_not_send_tags=frozenset({"fraud", "dupe", "do_not_send_stella"}),
    customer_surveyed_within_window=False,
    conversation_already_surveyed=False,
)


@pytest.mark.parametrize(
    ("rule_name", "changes", "reason"),
    [
        ("assignee_is_bot", {"assignee_kind": AssigneeKind.BOT}, DoNotSendReason.BOT_ASSIGNEE),
        ("assignee_is_bot", {"assignee_kind": AssigneeKind.ADMIN}, None),
        ("first_message_tagged", {"tags": ("fraud",)}, DoNotSendReason.SUPPRESSED_TAG),
        ("first_message_tagged", {"tags": ("billing", "Dupe")}, DoNotSendReason.SUPPRESSED_TAG),
        ("first_message_tagged", {"tags": (" do_not_send_stella ",)}, DoNotSendReason.SUPPRESSED_TAG),
        ("first_message_tagged", {"tags": ("billing", "fraudulent")}, None),
        ("first_message_tagged", {"tags": ("fraud",), "do_not_send_tags": frozenset()}, None),
        ("channel_unsupported", {"channel": Channel.UNSUPPORTED}, InvalidReason.CHANNEL_UNSUPPORTED),
        ("channel_unsupported", {"channel": None}, None),
        ("channel_disabled", {"enabled_channels": frozenset({Channel.EMAIL})}, InvalidReason.CHANNEL_DISABLED),
        ("channel_disabled", {"channel": Channel.EMAIL, "enabled_channels": frozenset({Channel.EMAIL})}, None),
        ("channel_disabled", {"channel": None, "enabled_channels": frozenset()}, None),
        ("customer_email_missing", {"customer_email": None}, InvalidReason.INVALID_CUSTOMER),
        ("customer_email_missing", {"customer_email": "not-an-email"}, InvalidReason.INVALID_CUSTOMER),
        ("customer_email_missing", {"customer_email": None, "customer_email_pending": True}, None),
        ("assignee_missing", {"assignee_kind": AssigneeKind.NOBODY}, InvalidReason.EMPLOYEE_NOT_FOUND),
        ("assignee_missing", {"assignee_kind": AssigneeKind.TEAM}, InvalidReason.EMPLOYEE_NOT_FOUND),
        ("assignee_missing", {"assignee_kind": AssigneeKind.BOT}, None),
        ("surveyed_within_window", {"customer_surveyed_within_window": True}, SuppressionReason.SUPPRESSION_WINDOW),
        ("conversation_surveyed", {"conversation_already_surveyed": True}, SuppressionReason.ALREADY_SURVEYED),
    ],
)
def test_rule(rule_name, changes, reason):
    rule = next(rule for rule in RULES if rule.__name__ == rule_name)
    assert rule(replace(CLEAN, **changes)) == reason


def test_a_clean_closure_passes_every_rule():
    assert set(evaluate_rules(CLEAN).values()) == {None}
    assert decide(evaluate_rules(CLEAN)).decision == Decision.SEND


@pytest.mark.parametrize(
    ("changes", "decision", "reason", "message"),
    [
        ({"assignee_kind": AssigneeKind.BOT}, Decision.DO_NOT_SEND, DoNotSendReason.BOT_ASSIGNEE, ""),
        ({"tags": ("dupe",)}, Decision.DO_NOT_SEND, DoNotSendReason.SUPPRESSED_TAG, ""),
        (
            {"channel": Channel.UNSUPPORTED},
            Decision.INVALID,
            InvalidReason.CHANNEL_UNSUPPORTED,
            "Channel not enabled for company",
        ),
        (
            {"enabled_channels": frozenset()},
            Decision.INVALID,
            InvalidReason.CHANNEL_DISABLED,
            "Channel not enabled for company",
        ),
        ({"customer_email": None}, Decision.INVALID, InvalidReason.INVALID_CUSTOMER, "Invalid customer"),
        (
            {"assignee_kind": AssigneeKind.NOBODY},
            Decision.INVALID,
            InvalidReason.EMPLOYEE_NOT_FOUND,
            "Employee not found",
        ),
        ({"customer_surveyed_within_window": True}, Decision.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW, ""),
        ({"conversation_already_surveyed": True}, Decision.SUPPRESSED, SuppressionReason.ALREADY_SURVEYED, ""),
        # Invalid beats do-not-send: Stella would refuse it either way.
        (
            {"assignee_kind": AssigneeKind.BOT, "customer_email": None},
            Decision.INVALID,
            InvalidReason.INVALID_CUSTOMER,
            "Invalid customer",
        ),
        # Do-not-send beats the window: it surveys nobody, and Stella still counts the interaction.
        (
            {"tags": ("fraud",), "customer_surveyed_within_window": True},
            Decision.DO_NOT_SEND,
            DoNotSendReason.SUPPRESSED_TAG,
            "",
        ),
    ],
)
def test_decision(changes, decision, reason, message):
    verdict = decide(evaluate_rules(replace(CLEAN, **changes)))
    assert (verdict.decision, verdict.reason, verdict.error_message) == (decision, reason, message)


def test_every_verdict_is_kept_not_just_the_first():
    verdicts = evaluate_rules(replace(CLEAN, assignee_kind=AssigneeKind.BOT, tags=("dupe",)))
    assert verdicts["assignee_is_bot"] == DoNotSendReason.BOT_ASSIGNEE
    assert verdicts["first_message_tagged"] == DoNotSendReason.SUPPRESSED_TAG
    assert list(verdicts) == [rule.__name__ for rule in RULES]
