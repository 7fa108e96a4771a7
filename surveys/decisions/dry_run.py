"""The dry run: what an account's closures of the last days would have come to under other rules
(channels, channel delay, suppression window, do-not-send tags), beside what did come of them.

Reads only: nothing is sent, saved or queued. The stored closures are replayed in time order
through the rules the live path runs (`rules.evaluate_rules` and `decide`, the suppression
window's bounds, the channel delay's cancelling events), in the order the live path applies them:

- a close cancels its conversation's older close still waiting, then the rules decide
  (`services.IntakeBatch.close`);
- a reopen, reply, snooze or deletion during a close's delay cancels it, a first-message tag
  makes the rules decide again (`services.survey_requests_apply_event`);
- when its delay is over the rules decide once more, with what the send's look-ups learnt
  (`sending._send`), and what Stella answered is taken as it was.

What the live path reads from the database for each closure (the customer's surveys within the
window, the conversation's history) is kept in memory as the replay moves forward in time, after
reading everything in four queries: 100,000 closures replay in seconds.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Field
from django.utils import timezone

from integrations.vocabulary import Channel
from portal.durations import format_duration
from surveys.decisions.decision import Rules, customer_zone_found
from surveys.decisions.replay import CANCELLED, ClosureResult, Loaded, Replay, ReplayedClosure, load_closures, untag
from surveys.models import Account, IntegrationSettings

__all__ = [
    "CANCELLED", "WHOM_TO_SURVEY", "ClosureResult", "dry_run", "proposed_settings", "settings_summary", "signed",
    "whom_to_survey_summary",
]  # fmt: skip

DEFAULT_DAYS = 30
MAX_DAYS = 90
CHANGED_LIMIT = 100  # changed closures listed; all are counted
# The settings a dry run may change: the account's rules.
# The rules of whom to survey and when (issue 20), among them.
WHOM_TO_SURVEY = (
    "include_teams", "exclude_teams", "min_teammate_replies", "max_days_since_reply", "sample_percent", "attribution",
    "time_zone", "quiet_hours", "quiet_hours_zone",
)  # fmt: skip
RULE_FIELDS = (
    "email_enabled",
    "chat_enabled",
    "channel_delay",
    "suppression_window",
    "do_not_send_tags",
    *WHOM_TO_SURVEY,
)


@dataclass(frozen=True)
class Row:
    """One line of the table: a decision and reason, how many closures came to it, and would."""

    result: ClosureResult
    current: int
    proposed: int

    @property
    def change(self) -> int:
        return self.proposed - self.current


@dataclass(frozen=True)
class ChangedClosure:
    survey_request_id: int
    conversation_id: str
    closed_at: datetime
    channel: str  # "" when never looked up
    current: ClosureResult
    proposed: ClosureResult

    @property
    def channel_label(self) -> str:
        return Channel(self.channel).label if self.channel else "Not known"


@dataclass(frozen=True)
class DryRunResult:
    account_id: int
    since: datetime
    until: datetime
    current_settings: dict[str, str]
    proposed_settings: dict[str, str]
    closures: int
    rows: list[Row]
    changed: list[ChangedClosure]  # the first CHANGED_LIMIT, oldest first
    changed_count: int
    # Closed before their channel was looked up (cancelled, suppressed or refused first): the channel
    # rules can't judge them, so turning a channel off or on doesn't change them here.
    channel_unknown: int
    # Whose customer was erased (personal data retention): the suppression window can't follow them.
    erased: int
    # Ended before Intercom was asked for their teammates' replies: the minimum of replies can't judge them.
    replies_unknown: int
    # When the proposed quiet hours are kept in each customer's time zone: no zone of their customer's (never asked,
    # or Intercom named none), so read in the account's. 0 otherwise.
    zones_unknown: int
    # Replayed with the current settings, these come out otherwise than they did: the settings
    # changed during these days, or webhooks came out of order.
    baseline_mismatches: int
    events: int
    load_seconds: float
    replay_seconds: float

    @property
    def seconds(self) -> float:
        return self.load_seconds + self.replay_seconds


def signed(change: int) -> str:
    """A change in a count as the table shows it: +3, −3, or nothing."""
    return f"+{change:,}" if change > 0 else f"\u2212{-change:,}" if change < 0 else ""


def proposed_settings(current: IntegrationSettings, **changes: Any) -> IntegrationSettings:
    """The account's rules with `changes` (fields of RULE_FIELDS), as an unsaved copy the dry run never saves."""
    if unknown := set(changes) - set(RULE_FIELDS):
        raise ValueError(f"a dry run changes only {', '.join(RULE_FIELDS)}, not {', '.join(sorted(unknown))}")
    for name, value in changes.items():  # as the account's form would take them (ValidationError otherwise)
        field = IntegrationSettings._meta.get_field(name)
        assert isinstance(field, Field)
        field.clean(value, current)
    return IntegrationSettings(**{name: changes.get(name, getattr(current, name)) for name in RULE_FIELDS})


def settings_summary(integration: IntegrationSettings) -> dict[str, str]:
    """The rules in the words of the account admin (channels, channel delay, suppression window, tags, and whom to
    survey)."""
    return {
        "channels": ", ".join(sorted(Channel(channel).label for channel in integration.enabled_channels)) or "none",
        "channel delay": format_duration(integration.channel_delay),
        "suppression window": format_duration(integration.suppression_window),
        "do-not-send tags": ", ".join(sorted(integration.do_not_send_tag_names)) or "none",
        **whom_to_survey_summary(integration),
    }


def whom_to_survey_summary(integration: IntegrationSettings) -> dict[str, str]:
    """The rules of whom to survey in the account admin's words: teams, replies, the last reply, the sample."""
    days = integration.max_days_since_reply
    return {
        "included teams": ", ".join(sorted(integration.include_team_ids)) or "any",
        "excluded teams": ", ".join(sorted(integration.exclude_team_ids)) or "none",
        "minimum teammate replies": str(integration.min_teammate_replies or "none"),
        "days since the last reply": f"at most {days}" if days is not None else "any",
        "sample": f"{integration.sample_percent}%",
        "credit": integration.get_attribution_display().lower(),
        "quiet hours": quiet_hours_words(integration),
    }


def quiet_hours_words(integration: IntegrationSettings) -> str:
    """ "21:00-08:00 Europe/Paris", or "21:00-08:00 in each customer's time zone (else Europe/Paris)", or "none"."""
    if not integration.quiet_hours:
        return "none"
    if integration.quiet_hours_zone == "customer":
        return f"{integration.quiet_hours} in each customer's time zone (else {integration.time_zone})"
    return f"{integration.quiet_hours} {integration.time_zone}"


def dry_run(
    account: Account,
    proposed: IntegrationSettings,
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    changed_limit: int = CHANGED_LIMIT,
) -> DryRunResult:
    """Replay the account's closures of the last `days` under `proposed` (see `proposed_settings`)
    and under its current settings, beside what was stored. Reads only."""
    until = now or timezone.now()
    since = until - timedelta(days=days)
    current = account.integration
    loaded = load_closures(
        account.pk, since=since, until=until, window=max(current.suppression_window, proposed.suppression_window)
    )
    started = time.perf_counter()
    closures = loaded.closures
    untag(closures, loaded.events)
    baseline, proposal = _replay_both(loaded, current, proposed)
    stored = [closure.stored for closure in closures]
    changed_count, changed = _changed(closures, stored, proposal, limit=changed_limit)
    return DryRunResult(
        account_id=account.pk,
        since=since,
        until=until,
        current_settings=settings_summary(current),
        proposed_settings=settings_summary(proposed),
        closures=len(closures),
        rows=_rows(stored, proposal),
        changed=changed,
        changed_count=changed_count,
        channel_unknown=sum(not closure.channel for closure in closures),
        erased=sum(bool(closure.erased) for closure in closures),
        replies_unknown=sum(closure.replies_at_send is None for closure in closures),
        zones_unknown=sum(not customer_zone_found(closure.customer_time_zone) for closure in closures)
        if Rules.of(proposed).quiet_in_customer_zone
        else 0,
        baseline_mismatches=_differences(stored, baseline),
        events=len(loaded.events),
        load_seconds=loaded.seconds,
        replay_seconds=time.perf_counter() - started,
    )


def _replay_both(
    loaded: Loaded, current: IntegrationSettings, proposed: IntegrationSettings
) -> list[list[ClosureResult]]:
    """What the closures come to replayed under the current settings, then under the proposed ones."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the replay makes many small objects and frees none: a collection would only walk them
    try:
        return [Replay(loaded, rules).run() for rules in (current, proposed)]
    finally:
        if gc_was_enabled:
            gc.enable()


def _rows(stored: list[ClosureResult], proposal: list[ClosureResult]) -> list[Row]:
    """The table: every result either way, in the table's order, with how many closures came and would come to it."""
    current_counts, proposed_counts = Counter(stored), Counter(proposal)
    return [
        Row(result, current_counts[result], proposed_counts[result])
        for result in sorted(current_counts.keys() | proposed_counts.keys(), key=ClosureResult.sort_key)
    ]


def _changed(
    closures: list[ReplayedClosure], stored: list[ClosureResult], proposal: list[ClosureResult], *, limit: int
) -> tuple[int, list[ChangedClosure]]:
    """How many closures would come out otherwise, and the first `limit` of them, oldest first."""
    count, changed = 0, list[ChangedClosure]()
    for closure, was, would in zip(closures, stored, proposal, strict=True):
        if was == would:
            continue
        count += 1
        if len(changed) < limit:
            changed.append(
                ChangedClosure(
                    closure.pk, closure.conversation_id, closure.closed_at, closure.channel or "", was, would
                )
            )
    return count, changed


def _differences(stored: list[ClosureResult], replayed: list[ClosureResult]) -> int:
    return sum(was != again for was, again in zip(stored, replayed, strict=True))
