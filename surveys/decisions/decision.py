"""What happens to a closure, and why: the one answer batch intake, the send and the dry run all ask.

Pure: no model, no query. The caller gathers a snapshot (the database in selectors.py, the batch's reads in
memory, the dry run's replay) and asks:

- `closure_decide(closure, rules, known, stage)`: every rule's verdict and the one that decides, given the
  other surveys `known` of the same customer or conversation, at a `Stage`:
  - `KNOWN` (intake, a tag while waiting): only surveys that have gone out (sending, sent) are final, so only
    they hold a closure back; one still waiting may yet be cancelled, and is left to the send;
  - `SEND` (the send's re-check): surveys that have gone out, and those still waiting that go first
    (due earlier; at the same time, closed earlier; then recorded earlier, one not recorded yet last), so two
    closes of one customer recorded side by side survey them once, not never, whatever order they arrived in.
- `sampled(stratum, position, percent)`: whether a closure is in the account's sample.
- `Rules.send_after(closed_at, zone)`: when a close is due: after the channel delay, and after the account's quiet
  hours if it falls due inside them (the delay's cancel rules then last until it goes), read in the customer's time
  zone where the account asks so and the send's look-up found it.
- `cancel_reason(...)`: a close still waiting is cancelled by the first, in time, of a reopen, reply, snooze or
  deletion during its channel delay, or a newer close of its conversation (superseded).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import Enum
from functools import lru_cache, partial
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.rules import (
    RULES,
    CancelReason,
    Decision,
    Reason,
    SurveyCandidate,
    decide,
)

# A customer's time zone the send's look-up couldn't find (SurveyRequest.customer_time_zone): the account's is used.
UNKNOWN_ZONE = "unknown"


def customer_zone_found(zone: str) -> bool:
    """Whether a request's `customer_time_zone` is a zone Intercom's location named ("": never asked; UNKNOWN_ZONE:
    asked, no one zone)."""
    return zone not in ("", UNKNOWN_ZONE)


# Status values (SurveyRequest.Status), as strings: this module reads no model.
SCHEDULED, SENDING, SENT, CANCELLED = "scheduled", "sending", "sent", "cancelled"
GONE_OUT = frozenset({SENDING, SENT})
# The conversation's event kinds (ConversationEvent.Kind) that cancel a close waiting out its delay.
CANCELLING_KINDS: dict[str, CancelReason] = {
    "reopened": CancelReason.REOPENED,
    "customer_replied": CancelReason.CUSTOMER_REPLIED,
    "snoozed": CancelReason.SNOOZED,
    "deleted": CancelReason.DELETED,
}


class Stage(Enum):
    KNOWN = "known"  # at intake, or while waiting: the window and "already surveyed" count only surveys gone out
    SEND = "send"  # at the send: also a survey still waiting that goes first


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time when no survey goes out: `start` to `end`, past midnight when `end` comes first."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def of(cls, text: str, zone: str) -> QuietHours | None:
        """From "HH:MM-HH:MM" in the time zone `zone` (an IANA name); None for "" (no quiet hours)."""
        if not text.strip():
            return None
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        return cls(start, end, ZoneInfo(zone))

    @property
    def span(self) -> timedelta:
        """How long the quiet hours last (at most a day)."""
        today = datetime(2000, 1, 1)
        length = datetime.combine(today, self.end) - datetime.combine(today, self.start)
        return length if length > timedelta(0) else length + timedelta(days=1)

    def ends_after(self, due: datetime) -> datetime:
        """When a send due at `due` may go: `due` itself, or the end of the quiet hours it falls in."""
        local = due.astimezone(self.zone)
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside, next_day = self.start <= moment < self.end, False
        else:
            inside, next_day = moment >= self.start or moment < self.end, moment >= self.start
        if not inside:
            return due
        day = local.date() + timedelta(days=1 if next_day else 0)
        end = datetime.combine(day, self.end, tzinfo=self.zone)
        # The night clocks go back, due in the hour that comes twice: its end is the second one.
        if end.timestamp() <= due.timestamp():
            end = end.replace(fold=1)
        return max(due, end.astimezone(due.tzinfo))


@dataclass(frozen=True)
class Rules:
    """An account's rules, as the decision reads them."""

    enabled_channels: frozenset[Channel]
    do_not_send_tags: frozenset[str]
    window: timedelta
    delay: timedelta
    # Whom to survey: conversations assigned at close to one of these teams (none given: any team or none), and
    # not to one of those; with at least this many teammate replies; closed at most this long after the last
    # one (None: however long); this share of each teammate's closures.
    include_teams: frozenset[str] = frozenset()
    exclude_teams: frozenset[str] = frozenset()
    min_teammate_replies: int = 0
    max_since_reply: timedelta | None = None
    sample_percent: int = 100
    quiet_hours: QuietHours | None = None  # when nothing goes out, in the account's time zone
    customer_zone: bool = False  # the quiet hours are kept in each customer's zone where it is known
    last_replier: bool = False  # a survey credits the last teammate to reply, found before sending

    @classmethod
    def of(cls, settings: RuleSettings) -> Rules:
        days = settings.max_days_since_reply
        return cls(
            enabled_channels=settings.enabled_channels,
            do_not_send_tags=settings.do_not_send_tag_names,
            window=settings.suppression_window,
            delay=settings.channel_delay,
            include_teams=settings.include_team_ids,
            exclude_teams=settings.exclude_team_ids,
            min_teammate_replies=settings.min_teammate_replies,
            max_since_reply=timedelta(days=days) if days is not None else None,
            sample_percent=settings.sample_percent,
            quiet_hours=QuietHours.of(settings.quiet_hours, settings.time_zone),
            customer_zone=settings.quiet_hours_zone == "customer",
            last_replier=settings.attribution == "last_replier",
        )

    def send_after(self, closed_at: datetime, zone: str = "") -> datetime:
        """When a close is due: after the channel delay and, if that falls in the quiet hours, when they end.
        `zone`: the customer's time zone, as the request records it (see `quiet_hours_in`)."""
        due = closed_at + self.delay
        quiet = self.quiet_hours_in(zone)
        return quiet.ends_after(due) if quiet else due

    def quiet_hours_in(self, zone: str) -> QuietHours | None:
        """The quiet hours a survey of a customer in `zone` keeps. Kept in the customer's zone, they are known only
        once the send has looked the customer up: none before ("" , not looked up), the account's where Intercom
        didn't say (UNKNOWN_ZONE)."""
        if self.quiet_hours is None or not self.customer_zone:
            return self.quiet_hours
        if not zone:
            return None
        return self.quiet_hours if zone == UNKNOWN_ZONE else _quiet_hours_in(self.quiet_hours, zone)

    @property
    def quiet_in_customer_zone(self) -> bool:
        """Whether there are quiet hours, kept in each customer's time zone."""
        return self.customer_zone and self.quiet_hours is not None

    def zone_wanted(self, zone: str) -> bool:
        """Whether a survey recorded with `zone` must look up its customer's time zone before it may go."""
        return self.quiet_in_customer_zone and not zone

    @property
    def longest_wait(self) -> timedelta:
        """The longest a close waits from its close to its send: the delay, and the quiet hours after it."""
        return self.delay + (self.quiet_hours.span if self.quiet_hours else timedelta(0))

    def team_left_out(self, team_id: str) -> bool:
        """Whether a conversation assigned to `team_id` ("" for none) at close is left out by the team rules."""
        if self.include_teams and team_id not in self.include_teams:
            return True
        return team_id in self.exclude_teams


@lru_cache(maxsize=1024)
def _quiet_hours_in(quiet: QuietHours, zone: str) -> QuietHours:
    """The same quiet hours in `zone`; in their own zone if it is none the tzdata knows (a replay of 100,000
    closures asks this of a few zones)."""
    try:
        return replace(quiet, zone=ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return quiet


class RuleSettings(Protocol):
    """What `Rules.of` reads: IntegrationSettings, or the dry run's unsaved copy of it."""

    @property
    def enabled_channels(self) -> frozenset[Channel]: ...
    @property
    def do_not_send_tag_names(self) -> frozenset[str]: ...

    @property
    def include_team_ids(self) -> frozenset[str]: ...
    @property
    def exclude_team_ids(self) -> frozenset[str]: ...

    suppression_window: timedelta
    channel_delay: timedelta
    min_teammate_replies: int
    max_days_since_reply: int | None
    sample_percent: int
    quiet_hours: str
    time_zone: str
    quiet_hours_zone: str
    attribution: str


class _Survey(Protocol):
    """What the decision reads of any survey request, the one decided or another."""

    @property
    def pk(self) -> int | None: ...
    @property
    def conversation_id(self) -> str: ...
    @property
    def closed_at(self) -> datetime: ...
    @property
    def send_after(self) -> datetime: ...


class Known(_Survey, Protocol):
    """Another survey request of the customer or conversation, as far as the decision reads it: a SurveyRequest
    (`identity` is a property of it), or the dry run's closure."""

    @property
    def status(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def identity(self) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Closure:
    """One closure as the rules see it."""

    pk: int | None  # None: not recorded yet, so after every recorded one at the same times
    conversation_id: str
    closed_at: datetime
    send_after: datetime  # when it is due
    channel: Channel | None  # None: not known yet, looked up before sending
    assignee_kind: AssigneeKind
    customer_email: str | None
    customer_email_pending: bool  # a contact whose email is looked up before sending
    identity: tuple[str, str] | None  # whom the suppression window follows
    tags: tuple[str, ...]
    employee_unknown: bool = False  # the last sync of Stella's employees found none the request would name
    team_id: str = ""  # the team assigned at close; "" none
    teammate_replies: int | None = None  # comments by human teammates; None: not counted (yet)
    last_admin_reply_at: datetime | None = None  # None: no teammate replied, or not known
    sample_stratum: str = ""  # whose share of the sample the closure is: its teammate at close
    sample_position: int | None = None  # its place among the stratum's closures; None: recorded before sampling


@dataclass(frozen=True)
class Fate:
    """What happens to the closure: every rule's verdict, in the rules' order, and the one that decides."""

    decision: Decision
    reason: Reason | None
    error_message: str  # Stella's words, for invalid
    verdicts: tuple[tuple[str, Reason | None], ...]

    @property
    def verdicts_stored(self) -> dict[str, str | None]:
        return {rule: reason.value if reason else None for rule, reason in self.verdicts}


def customer_identity(customer_email: str, customer_id: str) -> tuple[str, str] | None:
    """Whom the suppression window follows, as (field, value): the customer's email, else their
    Intercom contact id; None when neither is known."""
    if customer_email:
        return "customer_email", customer_email
    if customer_id:
        return "customer_id", customer_id
    return None


def suppression_window_bounds(closed_at: datetime, window: timedelta) -> tuple[datetime, datetime] | None:
    """A survey of the same customer closed strictly between these times suppresses a close at `closed_at`;
    None: the account has no suppression window."""
    if not window:
        return None
    return closed_at - window, closed_at + window


def during_delay(occurred_at: datetime, *, closed_at: datetime, delay_ends_at: datetime) -> bool:
    """Whether something that happened at `occurred_at` fell within a close's channel delay (from the close on)."""
    return closed_at <= occurred_at < delay_ends_at


def goes_first(other: Known, closure: ClosureFacts) -> bool:
    """Whether `other`, still waiting, is sent before `closure`: due earlier; at the same time closed earlier;
    then recorded earlier (one not recorded yet comes after every recorded one)."""
    if other.send_after != closure.send_after:
        return other.send_after < closure.send_after
    if other.closed_at != closure.closed_at:
        return other.closed_at < closure.closed_at
    if other.pk is None:
        return False
    return closure.pk is None or other.pk < closure.pk


def conversation_surveyed(closure: ClosureFacts, known: Iterable[Known], stage: Stage) -> bool:
    """Another close of the conversation has been surveyed (its survey gone out), or, at the send, is still waiting
    and goes first."""
    return any(
        other.conversation_id == closure.conversation_id and _surveyed_before(other, closure, stage) for other in known
    )


def customer_surveyed(closure: ClosureFacts, window: timedelta, known: Iterable[Known], stage: Stage) -> bool:
    """The customer is surveyed by another close within the suppression window, as `stage` counts it."""
    bounds = suppression_window_bounds(closure.closed_at, window)
    if bounds is None or closure.identity is None:
        return False
    after, before = bounds
    return any(
        after < other.closed_at < before
        and other.identity == closure.identity
        and _surveyed_before(other, closure, stage)
        for other in known
    )


def _surveyed_before(other: Known, closure: ClosureFacts, stage: Stage) -> bool:
    """`other` is a survey that has gone out, or, at the send, one still waiting that goes before `closure`."""
    if other.decision != Decision.SEND:
        return False
    if other.status in GONE_OUT:
        return True
    return stage is Stage.SEND and other.status == SCHEDULED and goes_first(other, closure)


class ClosureFacts(_Survey, Protocol):
    """What `closure_decide` reads of a closure: a `Closure`, or the dry run's replayed closure."""

    @property
    def channel(self) -> Channel | None: ...
    @property
    def assignee_kind(self) -> AssigneeKind: ...
    @property
    def customer_email(self) -> str | None: ...
    @property
    def customer_email_pending(self) -> bool: ...
    @property
    def identity(self) -> tuple[str, str] | None: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def employee_unknown(self) -> bool: ...
    @property
    def team_id(self) -> str: ...
    @property
    def teammate_replies(self) -> int | None: ...
    @property
    def last_admin_reply_at(self) -> datetime | None: ...
    @property
    def sample_stratum(self) -> str: ...
    @property
    def sample_position(self) -> int | None: ...


def sampled(stratum: str, position: int, percent: int) -> bool:
    """Whether the closure at `position` (0, 1, 2… in the order a stratum's closures were recorded) is in a sample
    of `percent`: systematic sampling, from a starting point of the stratum's own (a checksum of its name, the same
    in every process), so any run of a teammate's closures is sampled within one closure of `percent`, and the
    same closure is always decided the same."""
    if percent >= 100:
        return True
    start = zlib.crc32(stratum.encode()) % 100
    return (start + (position + 1) * percent) // 100 > (start + position * percent) // 100


def _left_out(closure: ClosureFacts, rules: Rules) -> tuple[bool, bool, bool, bool]:
    """The rules of whom to survey, on what is known of the closure: team, replies, last reply, sample. What isn't
    known yet (replies before the send's look-up, a position of a closure recorded before sampling) leaves it in."""
    replies, last_reply, position = closure.teammate_replies, closure.last_admin_reply_at, closure.sample_position
    return (
        rules.team_left_out(closure.team_id),
        replies is not None and replies < rules.min_teammate_replies,
        rules.max_since_reply is not None
        and last_reply is not None
        and closure.closed_at - last_reply > rules.max_since_reply,
        position is not None and not sampled(closure.sample_stratum, position, rules.sample_percent),
    )


def closure_decide(closure: ClosureFacts, rules: Rules, known: Iterable[Known], stage: Stage) -> Fate:
    """What happens to `closure` under `rules`, given the other surveys `known` of its customer and conversation
    (the closure itself need not be left out: a close never holds itself back)."""
    others = [other for other in known if other is not closure and (other.pk is None or other.pk != closure.pk)]
    return verdicts_decide(
        closure.channel,
        closure.assignee_kind,
        closure.customer_email,
        closure.customer_email_pending,
        closure.tags,
        closure.employee_unknown,
        rules.enabled_channels,
        rules.do_not_send_tags,
        customer_surveyed(closure, rules.window, others, stage),
        conversation_surveyed(closure, others, stage),
        _left_out(closure, rules),
        # Crediting the last teammate to reply, whom only the send's look-up finds: a team or nobody assigned is
        # nobody's to judge before.
        rules.last_replier and closure.teammate_replies is None,
    )


# Pure, and asked again and again with the same answers (the dry run asks 100,000 times).
@lru_cache(maxsize=2**16)
def verdicts_decide(
    channel: Channel | None,
    assignee_kind: AssigneeKind,
    customer_email: str | None,
    customer_email_pending: bool,
    tags: tuple[str, ...],
    employee_unknown: bool,
    enabled_channels: frozenset[Channel],
    do_not_send_tags: frozenset[str],
    customer_within_window: bool,
    conversation_already_surveyed: bool,
    left_out: tuple[bool, bool, bool, bool] = (False, False, False, False),
    assignee_pending: bool = False,
) -> Fate:
    """Every rule's verdict on what is known, and the decision they come to (rules.decide)."""
    candidate = SurveyCandidate(
        channel=channel,
        assignee_kind=assignee_kind,
        customer_email=customer_email,
        customer_email_pending=customer_email_pending,
        tags=tags,
        enabled_channels=enabled_channels,
        do_not_send_tags=do_not_send_tags,
        customer_surveyed_within_window=customer_within_window,
        conversation_already_surveyed=conversation_already_surveyed,
        employee_unknown_to_stella=employee_unknown,
        team_left_out=left_out[0],
        too_few_replies=left_out[1],
        reply_too_old=left_out[2],
        not_sampled=left_out[3],
        assignee_pending=assignee_pending,
    )
    verdicts = tuple((rule.__name__, rule(candidate)) for rule in RULES)
    verdict = decide(dict(verdicts))
    return Fate(verdict.decision, verdict.reason, verdict.error_message, verdicts)


def cancel_reason(
    *,
    closed_at: datetime,
    delay_ends_at: datetime,
    events: Iterable[tuple[datetime, str]],
    newer_closes: Iterable[datetime],
) -> CancelReason | None:
    """Why a close waiting out its delay is cancelled, if it is: the first in time of a reopen, reply, snooze or
    deletion during its delay (`events`: (occurred at, kind), other kinds ignored) and a newer close of its
    conversation during its delay (`newer_closes`: closed at, whatever became of those closes since: when one
    happened, it superseded this one, and a webhook that arrives late changes nothing of that). After the delay
    nothing cancels: the close is sent, and a newer one finds the conversation surveyed."""
    during = partial(during_delay, closed_at=closed_at, delay_ends_at=delay_ends_at)
    # (when, events before closes at the same moment, why); the first of equals is the one kept.
    candidates: list[tuple[datetime, int, CancelReason]] = [
        (occurred_at, 0, reason)
        for occurred_at, kind in events
        if (reason := CANCELLING_KINDS.get(kind)) is not None and during(occurred_at)
    ]
    candidates += [(at, 1, CancelReason.SUPERSEDED) for at in newer_closes if during(at) and at > closed_at]
    if not candidates:
        return None
    return min(candidates, key=lambda candidate: candidate[:2])[2]
