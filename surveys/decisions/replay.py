"""The dry run's replay (see surveys.decisions.dry_run): an account's stored closures read into memory in four
queries, then taken through the live path's steps in time order under one set of rules, asking the same
decision.closure_decide the live path asks.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import heappop, heappush
from typing import Any, NamedTuple

from django.db.models import BooleanField, ExpressionWrapper, Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from integrations import messages
from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.decision import (
    CANCELLING_KINDS,
    UNKNOWN_ZONE,
    CancelReason,
    Rules,
    Stage,
    closure_decide,
    customer_identity,
    during_delay,
    suppression_window_bounds,
)
from surveys.decisions.rules import REASON_CHOICES, Decision, InvalidReason
from surveys.delivery.survey_requests import STATUS_FOR_DECISION
from surveys.models import ConversationEvent, IntegrationSettings, SurveyOutcome, SurveyRequest
from surveys.selectors import SURVEYED, SURVEYING

Status = SurveyRequest.Status
# The replay works in plain strings (an enum member hashes in Python, a string in C): the same values.
CANCELLED = Status.CANCELLED.value
SEND, DO_NOT_SEND = Decision.SEND.value, Decision.DO_NOT_SEND.value
SCHEDULED, SENT = Status.SCHEDULED.value, Status.SENT.value
SUPERSEDED = CancelReason.SUPERSEDED.value
STATUS_AFTER = {decision.value: status.value for decision, status in STATUS_FOR_DECISION.items()}
# Where a request stands once the rules let it through: what Stella (or a look-up) made of it. A
# closure that reached this far is taken to fare the same in the replay; one that didn't, to be sent.
AFTER_THE_RULES = frozenset({Status.SCHEDULED, Status.SENDING, Status.SENT, Status.FAILED, Status.AMBIGUOUS})
# Each decision as the outcome it comes to, in the words of every other screen ("Sent", not the rules' "Send"): the
# replay takes a closure the rules let through as sent, whatever Stella answered it.
OUTCOME_OF_DECISION = {
    Decision.SEND.value: SurveyOutcome.SENT,
    Decision.DO_NOT_SEND.value: SurveyOutcome.DO_NOT_SEND,
    Decision.SUPPRESSED.value: SurveyOutcome.SUPPRESSED,
    Decision.INVALID.value: SurveyOutcome.INVALID,
    CANCELLED: SurveyOutcome.CANCELLED,
}
# The table's order: the rules' decisions by precedence, then cancellations.
DECISION_ORDER = [Decision.SEND, Decision.DO_NOT_SEND, Decision.SUPPRESSED, Decision.INVALID, CANCELLED]
CHANNELS = {channel.value: channel for channel in Channel}  # "" (never looked up): None, as selectors.closure_of has it
ASSIGNEE_KINDS = {kind.value: kind for kind in AssigneeKind}
REASON_ORDER = ["", *(value for value, _ in REASON_CHOICES)]
# What the replay reads of each closure, in ReplayedClosure's order.
CLOSURE_FIELDS = (
    "pk", "conversation_id", "closed_at", "channel", "assignee_kind", "customer_email", "customer_id", "tags_text",
    "status", "decision", "reason", "email_verdict", "erased", "team_id", "teammate_replies", "last_admin_reply_at",
    "sample_stratum", "sample_position", "customer_time_zone",
)  # fmt: skip


class ClosureResult(NamedTuple):
    """What came of a closure, as the dry run compares it: the rules' decision and the reason that
    decided, or cancelled and why."""

    decision: str  # a Decision, or CANCELLED
    reason: str  # a reason of rules.REASONS (a rule's, or a cancellation's), or ""

    @property
    def label(self) -> str:
        outcome = OUTCOME_OF_DECISION.get(self.decision)
        return str(outcome.label) if outcome else self.decision

    @property
    def reason_label(self) -> str:
        return messages.words_of(self.reason, self.reason)

    def sort_key(self) -> tuple[int, int, str]:
        decision = DECISION_ORDER.index(self.decision) if self.decision in DECISION_ORDER else len(DECISION_ORDER)
        reason = REASON_ORDER.index(self.reason) if self.reason in REASON_ORDER else len(REASON_ORDER)
        return decision, reason, self.reason


def stored_result(*, status: str, decision: str, reason: str) -> ClosureResult:
    """What the live path made of a closure: its decision and reason, or its cancellation. What Stella
    answered afterwards is not the rules' doing, so a request Stella refused still counts as "Sent"."""
    if status == Status.CANCELLED:
        return ClosureResult(CANCELLED, str(reason))
    return ClosureResult(str(decision), str(reason))


# Cancellations a person made (a teammate's Don't survey, an erasure), which the replay takes as they were.
STOPPED_BY_A_PERSON = frozenset(
    ClosureResult(CANCELLED, reason.value) for reason in (CancelReason.STOPPED_IN_INTERCOM, CancelReason.ERASED)
)


class ReplayedClosure:
    """One stored closure, and where the replay has it: what decision.closure_decide reads of a closure (and of
    the other closures it weighs)."""

    __slots__ = (
        "pk", "conversation_id", "closed_at", "send_after", "channel", "assignee_kind", "customer_email", "identity",
        "customer_email_pending", "pending_at_close", "pending_at_send", "stored_tags", "base_tags", "tags", "stored",
        "fate", "erased", "status", "decision", "reason", "team_id", "teammate_replies", "replies_at_send",
        "last_admin_reply_at", "sample_stratum", "sample_position", "customer_time_zone",
    )  # fmt: skip
    employee_unknown = False  # known only to a send: what Stella answered is taken as it was

    def __init__(self, row: tuple[Any, ...]) -> None:
        (self.pk, self.conversation_id, self.closed_at, channel, assignee_kind, email, customer_id,
         tags_text, status, decision, reason, email_verdict, self.erased, self.team_id, self.replies_at_send,
         self.last_admin_reply_at, self.sample_stratum, self.sample_position, self.customer_time_zone) = row  # fmt: skip
        self.teammate_replies = None  # counted only by the send's look-up
        self.channel = CHANNELS.get(channel)
        self.assignee_kind = ASSIGNEE_KINDS[assignee_kind]
        self.customer_email = email or None
        self.identity = customer_identity(email, customer_id)
        self.pending_at_send = _pending_at_send(email, customer_id, email_verdict, erased=self.erased)
        self.pending_at_close = self.pending_at_send or (not email and bool(customer_id))
        self.customer_email_pending = self.pending_at_close
        self.stored_tags = _stored_tags(tags_text)
        self.base_tags = self.tags = self.stored_tags
        self.stored = stored_result(status=status, decision=decision, reason=reason)
        self.fate = _fate(status, decision)
        self.send_after = self.closed_at
        self.status = self.decision = self.reason = ""

    @property
    def result(self) -> ClosureResult:
        return (
            ClosureResult(CANCELLED, self.reason)
            if self.status == CANCELLED
            else ClosureResult(self.decision, self.reason)
        )


def _pending_at_send(email: str, customer_id: str, email_verdict: str | None, *, erased: bool) -> bool:
    """As selectors.closure_of has it: an email not in the webhook is looked up before sending. Whether the send did
    look it up and found none shows in the stored verdict (JSON null reads "null" on SQLite, NULL elsewhere: only
    the reason counts); an erased one was there."""
    looked_up_none = email_verdict == InvalidReason.INVALID_CUSTOMER
    return not email and not looked_up_none and (bool(customer_id) or erased)


def _stored_tags(tags_text: str | None) -> tuple[str, ...]:
    """Most closures have no tags: their JSON isn't decoded (a third of the time reading 100,000 rows)."""
    return tuple(json.loads(tags_text)) if tags_text and tags_text != "[]" else ()


def _fate(status: str, decision: str) -> str:
    """What Stella (or a look-up) made of a closure the rules let through, taken as it was; one that never got
    that far is taken to be sent."""
    went_out = status in AFTER_THE_RULES or (status == Status.INVALID and decision != Decision.INVALID)
    return status if went_out else SENT


class SurveyBefore:
    """A survey before the replayed days, as the decision weighs it: it may still hold a customer or
    conversation back."""

    __slots__ = ("pk", "conversation_id", "identity", "closed_at", "send_after", "status", "decision")

    def __init__(self, pk: int, conversation_id: str, email: str, customer_id: str, closed_at: datetime, status: str):
        self.pk, self.conversation_id, self.closed_at, self.send_after = pk, conversation_id, closed_at, closed_at
        self.identity = customer_identity(email, customer_id)
        # Still waiting when the days began: it goes first, and the send stage counts it as the live path did.
        self.status, self.decision = status, SEND


@dataclass
class Loaded:
    closures: list[ReplayedClosure]
    events: list[tuple[str, str, datetime, tuple[str, ...]]]  # conversation id, kind, occurred at, tags
    customers_surveyed_before: dict[tuple[str, str], list[SurveyBefore]]  # surveys before the days, by customer
    conversations_surveyed_before: dict[str, list[SurveyBefore]]  # a survey gone out before the days, by conversation
    seconds: float = 0.0


def load_closures(account_id: int, *, since: datetime, until: datetime, window: timedelta) -> Loaded:
    """Everything the replay needs, in four queries, oldest first."""
    started = time.perf_counter()
    requests = SurveyRequest.objects.filter(account_id=account_id)
    in_days = requests.filter(closed_at__gte=since, closed_at__lte=until)
    rows = (
        in_days.annotate(
            tags_text=Cast("tags", output_field=TextField()),
            email_verdict=KeyTextTransform("customer_email_missing", "verdicts"),
            erased=ExpressionWrapper(Q(erased_at__isnull=False), output_field=BooleanField()),
        )
        .order_by("closed_at", "pk")
        .values_list(*CLOSURE_FIELDS)
    )
    closures = [ReplayedClosure(row) for row in rows.iterator(chunk_size=5000)]
    events = [
        (conversation_id, kind, occurred_at, tuple(tags or ()))
        for conversation_id, kind, occurred_at, tags in ConversationEvent.objects.filter(
            account_id=account_id, occurred_at__gte=since
        )
        .order_by("occurred_at", "pk")
        .values_list("conversation_id", "kind", "occurred_at", "tags")
    ]
    # Surveys just before the days still hold back their customers' closes within the window...
    customers: dict[tuple[str, str], list[SurveyBefore]] = {}
    if window:
        surveys_before = requests.filter(
            closed_at__gt=since - window, closed_at__lt=since, decision=Decision.SEND, status__in=SURVEYING
        ).values_list("pk", "conversation_id", "customer_email", "customer_id", "closed_at", "status")
        for row in surveys_before:
            if (before := SurveyBefore(*row)).identity:
                customers.setdefault(before.identity, []).append(before)
    # ...and a conversation surveyed before them, however long ago, is not surveyed again.
    conversations = {
        conversation_id: [SurveyBefore(0, conversation_id, "", "", since, SENT)]
        for conversation_id in requests.filter(
            closed_at__lt=since,
            decision=Decision.SEND,
            status__in=SURVEYED,
            conversation_id__in=in_days.values("conversation_id"),
        )
        .values_list("conversation_id", flat=True)
        .distinct()
    }
    return Loaded(closures, events, customers, conversations, time.perf_counter() - started)


def untag(closures: list[ReplayedClosure], events: list[tuple[str, str, datetime, tuple[str, ...]]]) -> None:
    """Each closure's tags as its close knew them: tags a later tag event added depend on the channel delay."""
    tagged = _tag_events(events)
    if not tagged:
        return
    for closure in closures:
        if later := _tags_added_since(tagged.get(closure.conversation_id, ()), closure.closed_at):
            closure.base_tags = tuple(tag for tag in closure.stored_tags if tag not in later)


def _tag_events(
    events: list[tuple[str, str, datetime, tuple[str, ...]]],
) -> dict[str, list[tuple[datetime, tuple[str, ...]]]]:
    """The tag events, (when, which tags), by conversation."""
    tagged: dict[str, list[tuple[datetime, tuple[str, ...]]]] = {}
    for conversation_id, kind, occurred_at, tags in events:
        if kind == ConversationEvent.Kind.TAGGED:
            tagged.setdefault(conversation_id, []).append((occurred_at, tags))
    return tagged


def _tags_added_since(tagged: Iterable[tuple[datetime, tuple[str, ...]]], since: datetime) -> set[str]:
    """Tags first added at or after `since`: one tagged before it too was already on the first message then."""
    before: set[str] = set()
    after: set[str] = set()
    for at, tags in tagged:
        (after if at >= since else before).update(tags)
    return after - before


class Replay:
    """The live path's steps, in time order, over closures in memory, under one set of rules: each step asks
    decision.closure_decide, as the live path does, over the closures replayed so far."""

    def __init__(self, loaded: Loaded, integration: IntegrationSettings) -> None:
        self.loaded = loaded
        self.rules = Rules.of(integration)
        self.window = integration.suppression_window
        self.conversations: dict[str, list[ReplayedClosure]] = {}
        self.customer_surveys: dict[tuple[str, str], deque[ReplayedClosure]] = {}
        # In send order (as the live sender's turn: due first, then closed first): a heap, since quiet hours kept in
        # each customer's time zone let a later close go first.
        self.waiting: list[tuple[datetime, datetime, int, ReplayedClosure]] = []

    def run(self) -> list[ClosureResult]:
        closures, events = self.loaded.closures, self.loaded.events
        for closure in closures:
            closure.tags, closure.status, closure.reason = closure.base_tags, "", ""
            # Never asked where the customer is (it ended first, or was recorded before): the account's zone.
            closure.send_after = self.rules.send_after(closure.closed_at, closure.customer_time_zone or UNKNOWN_ZONE)
        next_event = 0
        for closure in closures:
            while next_event < len(events) and events[next_event][2] < closure.closed_at:
                self.event(*events[next_event])
                next_event += 1
            self.close(closure)
        for event in events[next_event:]:
            self.event(*event)
        self.send_due(None)
        return [closure.result for closure in closures]

    def send_due(self, now: datetime | None) -> None:
        """Every close whose delay is over by `now` (all of them for None) is sent, before anything else at that time."""
        while self.waiting and (now is None or self.waiting[0][0] <= now):
            self.send(heappop(self.waiting)[-1])

    def close(self, closure: ReplayedClosure) -> None:
        """intake.batch.IntakeBatch.close: a newer close cancels an older one still waiting out its delay, then the
        rules decide. A close at the very moment an older survey comes due is taken in before that survey is sent,
        as the live intake takes a webhook that arrives with the send (the delay is over: it supersedes nothing)."""
        if self.waiting and self.waiting[0][0] < closure.closed_at:
            self.send_due(closure.closed_at - timedelta.resolution)
        others = self.conversations.setdefault(closure.conversation_id, [])
        _supersede_older(others, closed_at=closure.closed_at)
        self.decide(closure, pending=closure.pending_at_close, stage=Stage.KNOWN)
        closure.status = STATUS_AFTER[closure.decision]
        if closure.status == SCHEDULED and closure.stored in STOPPED_BY_A_PERSON:
            # Stopped while it waited, by a teammate or an erasure: no rule decides that, so it stands.
            closure.status, closure.reason = CANCELLED, closure.stored.reason
        others.append(closure)
        if closure.decision == SEND and closure.identity and self.window:
            self.customer_surveys.setdefault(closure.identity, deque()).append(closure)
        if closure.status == SCHEDULED:
            heappush(self.waiting, (closure.send_after, closure.closed_at, closure.pk, closure))

    def event(self, conversation_id: str, kind: str, occurred_at: datetime, tags: tuple[str, ...]) -> None:
        """services.survey_requests_apply_event: cancel a close whose delay the event fell in; add a tag and decide again.
        An event at the very moment a survey comes due is taken in before that survey is sent, as a close is (and a
        reopen then is after the delay: it cancels nothing)."""
        self.send_due(occurred_at - timedelta.resolution)
        for closure in self.conversations.get(conversation_id, ()):
            if closure.status != SCHEDULED:
                continue
            if kind in CANCELLING_KINDS:
                if during_delay(occurred_at, closed_at=closure.closed_at, delay_ends_at=closure.send_after):
                    closure.status, closure.reason = CANCELLED, CANCELLING_KINDS[kind].value
            elif kind == ConversationEvent.Kind.TAGGED and closure.closed_at <= occurred_at:
                closure.tags = tuple(dict.fromkeys(closure.tags + tags))
                self.decide(closure, pending=closure.pending_at_close, stage=Stage.KNOWN)
                closure.status = STATUS_AFTER[closure.decision]

    def send(self, closure: ReplayedClosure) -> None:
        """sending._send: the rules decide again with what the look-ups learnt; what Stella answered stands."""
        if closure.status != SCHEDULED:
            return
        self.decide(closure, pending=closure.pending_at_send, stage=Stage.SEND)
        sent = closure.decision in (SEND, DO_NOT_SEND)
        closure.status = closure.fate if sent else STATUS_AFTER[closure.decision]

    def decide(self, closure: ReplayedClosure, *, pending: bool, stage: Stage) -> None:
        """The one decision on what is known of the closure now, as services.survey_request_decide asks it."""
        closure.customer_email_pending = pending
        closure.teammate_replies = closure.replies_at_send if stage is Stage.SEND else None
        fate = closure_decide(closure, self.rules, self.known(closure), stage)
        closure.decision, closure.reason = fate.decision.value, fate.reason.value if fate.reason else ""

    def known(self, closure: ReplayedClosure) -> list[Any]:
        """The candidates the live path would gather: the conversation's closes, the customer's surveys in the
        window (replayed, and before the days)."""
        known: list[Any] = [
            *self.conversations.get(closure.conversation_id, ()),
            *self.loaded.conversations_surveyed_before.get(closure.conversation_id, ()),
        ]
        bounds = suppression_window_bounds(closure.closed_at, self.window)
        if bounds is None or closure.identity is None:
            return known
        known.extend(self.loaded.customers_surveyed_before.get(closure.identity, ()))
        if surveys := self.customer_surveys.get(closure.identity):
            # Nothing still to decide closed before the oldest close still waiting: older surveys can go.
            while surveys and surveys[0].closed_at <= bounds[0] - self.rules.longest_wait:
                surveys.popleft()
            known.extend(surveys)
        return known


def _supersede_older(others: list[ReplayedClosure], *, closed_at: datetime) -> None:
    """intake.batch's survey_request_supersede_older: the conversation's older closes still waiting out their delay."""
    for older in others:
        within = during_delay(closed_at, closed_at=older.closed_at, delay_ends_at=older.send_after)
        if older.status == SCHEDULED and older.closed_at < closed_at and within:
            older.status, older.reason = CANCELLED, SUPERSEDED
