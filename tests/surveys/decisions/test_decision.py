"""The one decision (surveys/decisions/decision.py): its table, without a database."""

import ast
import importlib.util
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.decision import CancelReason, Closure, Rules, Stage, cancel_reason, closure_decide
from surveys.decisions.rules import Decision, DoNotSendReason, InvalidReason, SuppressionReason

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = Rules(
    enabled_channels=frozenset({Channel.EMAIL, Channel.CHAT}),
    do_not_send_tags=frozenset({"fraud"}),
    window=timedelta(days=7),
    delay=timedelta(minutes=10),
)
ADA = ("customer_email", "ada@customer.example")
CLOSURE = Closure(
    pk=10, conversation_id="c1", closed_at=T0, send_after=T0 + timedelta(minutes=10), channel=Channel.CHAT,
    assignee_kind=AssigneeKind.ADMIN, customer_email="ada@customer.example", customer_email_pending=False,
    identity=ADA, tags=(),
)  # fmt: skip


@dataclass
class Other:
    """Another survey request, as the decision reads one."""

    pk: int | None
    closed_at: datetime
    status: str
    decision: str = Decision.SEND
    conversation_id: str = "c2"
    identity: tuple[str, str] | None = ADA
    send_after: datetime | None = None

    def __post_init__(self) -> None:
        self.send_after = self.send_after or self.closed_at + timedelta(minutes=10)


def decided(closure=CLOSURE, known=(), stage=Stage.SEND, rules=RULES):
    fate = closure_decide(closure, rules, known, stage)
    return fate.decision, fate.reason


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, (Decision.SEND, None)),
        ({"channel": Channel.UNSUPPORTED}, (Decision.INVALID, InvalidReason.CHANNEL_UNSUPPORTED)),
        ({"customer_email": None, "identity": None}, (Decision.INVALID, InvalidReason.INVALID_CUSTOMER)),
        ({"customer_email": None, "customer_email_pending": True}, (Decision.SEND, None)),
        ({"assignee_kind": AssigneeKind.NOBODY}, (Decision.INVALID, InvalidReason.EMPLOYEE_NOT_FOUND)),
        ({"employee_unknown": True}, (Decision.INVALID, InvalidReason.EMPLOYEE_UNKNOWN)),
        ({"assignee_kind": AssigneeKind.BOT}, (Decision.DO_NOT_SEND, DoNotSendReason.BOT_ASSIGNEE)),
        ({"tags": (" Fraud ",)}, (Decision.DO_NOT_SEND, DoNotSendReason.SUPPRESSED_TAG)),
    ],
)
def test_each_rule_of_the_closure_itself(changes, expected):
    assert decided(replace(CLOSURE, **changes)) == expected


def test_a_disabled_channel_is_invalid():
    rules = replace(RULES, enabled_channels=frozenset({Channel.EMAIL}))
    assert decided(rules=rules) == (Decision.INVALID, InvalidReason.CHANNEL_DISABLED)


WINDOW = (Decision.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW)
SEND = (Decision.SEND, None)


@pytest.mark.parametrize(
    ("other", "at_intake", "at_send"),
    [
        # gone out: final, so it holds the closure back at either stage
        (Other(1, T0 - timedelta(days=1), "sent"), WINDOW, WINDOW),
        (Other(1, T0 + timedelta(days=1), "sending"), WINDOW, WINDOW),
        # waiting: may yet be cancelled, so only the send counts it, and only if it goes first
        (Other(1, T0 - timedelta(hours=1), "scheduled"), SEND, WINDOW),
        (Other(1, T0 + timedelta(hours=1), "scheduled"), SEND, SEND),
        # the same times: recorded first goes first; one not recorded yet goes last
        (Other(9, T0, "scheduled"), SEND, WINDOW),
        (Other(11, T0, "scheduled"), SEND, SEND),
        (Other(None, T0, "scheduled"), SEND, SEND),
        # due earlier goes first, whenever it closed (a resend, a retry)
        (Other(1, T0 + timedelta(hours=1), "scheduled", send_after=T0), SEND, WINDOW),
        # what doesn't count
        (Other(1, T0 - timedelta(days=8), "sent"), SEND, SEND),  # outside the window
        (Other(1, T0 - timedelta(days=1), "sent", decision=Decision.DO_NOT_SEND), SEND, SEND),
        (Other(1, T0 - timedelta(days=1), "cancelled"), SEND, SEND),
        (Other(1, T0 - timedelta(days=1), "suppressed", decision=Decision.SUPPRESSED), SEND, SEND),
        (Other(1, T0 - timedelta(days=1), "sent", identity=("customer_email", "bea@x.example")), SEND, SEND),
        (Other(10, T0 - timedelta(days=1), "sent"), SEND, SEND),  # itself
    ],
)
def test_the_suppression_window_at_each_stage(other, at_intake, at_send):
    assert decided(known=[other], stage=Stage.KNOWN) == at_intake
    assert decided(known=[other], stage=Stage.SEND) == at_send


@pytest.mark.parametrize("stage", list(Stage))
def test_a_conversation_surveyed_already_is_not_surveyed_again(stage):
    earlier = Other(1, T0 - timedelta(days=30), "sent", conversation_id="c1", identity=None)
    assert decided(known=[earlier], stage=stage) == (Decision.SUPPRESSED, SuppressionReason.ALREADY_SURVEYED)
    later = Other(1, T0 + timedelta(hours=1), "scheduled", conversation_id="c1", identity=None)
    assert decided(known=[later], stage=stage) == SEND


def test_a_conversation_closed_before_and_still_waiting_holds_back_only_at_the_send():
    """It goes first: at the send it is the one surveyed, whichever the sender takes first."""
    waiting = Other(1, T0 - timedelta(hours=1), "scheduled", conversation_id="c1", identity=None)
    assert decided(known=[waiting], stage=Stage.KNOWN) == SEND
    assert decided(known=[waiting], stage=Stage.SEND) == (Decision.SUPPRESSED, SuppressionReason.ALREADY_SURVEYED)


def test_invalid_beats_do_not_send_beats_suppressed_and_every_verdict_is_kept():
    closure = replace(CLOSURE, tags=("fraud",), channel=Channel.UNSUPPORTED)
    fate = closure_decide(closure, RULES, [Other(1, T0 - timedelta(days=1), "sent")], Stage.SEND)
    assert (fate.decision, fate.reason, fate.error_message) == (
        Decision.INVALID, InvalidReason.CHANNEL_UNSUPPORTED, "Channel not enabled for company",
    )  # fmt: skip
    assert fate.verdicts_stored["first_message_tagged"] == DoNotSendReason.SUPPRESSED_TAG
    assert fate.verdicts_stored["surveyed_within_window"] == SuppressionReason.SUPPRESSION_WINDOW
    assert fate.verdicts_stored["assignee_is_bot"] is None


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.mark.parametrize(
    ("events", "newer_closes", "expected"),
    [
        ([], [], None),
        ([(minutes(3), "reopened")], [], CancelReason.REOPENED),
        ([(minutes(3), "customer_replied")], [], CancelReason.CUSTOMER_REPLIED),
        ([(minutes(3), "snoozed")], [], CancelReason.SNOOZED),
        ([(minutes(3), "deleted")], [], CancelReason.DELETED),
        ([(minutes(3), "tagged")], [], None),
        ([(minutes(10), "reopened")], [], None),  # the delay is over
        ([(minutes(-1), "reopened")], [], None),  # before the close
        ([(minutes(0), "reopened")], [], CancelReason.REOPENED),  # at the close: within it
        ([], [minutes(4)], CancelReason.SUPERSEDED),
        ([], [minutes(10)], None),  # closed again after the delay: it goes out, the newer one finds it surveyed
        ([], [minutes(-5)], None),  # an older close doesn't
        # the first in time wins, whatever order they are given in
        ([(minutes(6), "reopened")], [minutes(4)], CancelReason.SUPERSEDED),
        ([(minutes(3), "reopened")], [minutes(4)], CancelReason.REOPENED),
        ([(minutes(7), "snoozed"), (minutes(2), "customer_replied")], [], CancelReason.CUSTOMER_REPLIED),
    ],
)
def test_cancel_reason(events, newer_closes, expected):
    assert cancel_reason(closed_at=T0, delay_ends_at=minutes(10), events=events, newer_closes=newer_closes) == expected


@pytest.mark.parametrize("module", ["decision", "rules"])
def test_the_decision_imports_nothing_of_the_database(module):
    """import-linter names external packages only whole (pyproject.toml): of django.db, only the choices' enums."""
    tree = ast.parse(Path(importlib.util.find_spec(f"surveys.decisions.{module}").origin).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    database = {name for name in imported if name and name.startswith("django.db")}
    assert database <= {"django.db.models.enums"}, database
