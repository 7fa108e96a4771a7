"""The rules of whom to survey (issue 20) in the one decision, without a database: teams, teammate replies, the last
reply, the sample; each leaves a closure out, suppressed with its own reason, whatever else is true of it."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.decision import Closure, QuietHours, Rules, Stage, closure_decide, sampled
from surveys.decisions.rules import Decision, InvalidReason, LeftOutReason

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = Rules(
    enabled_channels=frozenset({Channel.CHAT}),
    do_not_send_tags=frozenset({"fraud"}),
    window=timedelta(0),
    delay=timedelta(0),
)
CLOSURE = Closure(
    pk=10, conversation_id="c1", closed_at=T0, send_after=T0, channel=Channel.CHAT, assignee_kind=AssigneeKind.ADMIN,
    customer_email="ada@customer.example", customer_email_pending=False, identity=None, tags=(),
)  # fmt: skip


def fate(closure=CLOSURE, **rules):
    return closure_decide(closure, replace(RULES, **rules), [], Stage.SEND)


@pytest.mark.parametrize(
    ("team", "include", "exclude", "left_out"),
    [
        ("", set(), set(), False),
        ("11", {"11"}, set(), False),
        ("22", {"11"}, set(), True),
        ("", {"11"}, set(), True),  # no team is none of the included
        ("22", set(), {"22"}, True),
        ("11", {"11", "22"}, {"11"}, True),  # excluded wins
        ("", set(), {"22"}, False),
    ],
)
def test_teams(team, include, exclude, left_out):
    found = fate(replace(CLOSURE, team_id=team), include_teams=frozenset(include), exclude_teams=frozenset(exclude))
    assert (found.decision, found.reason) == (
        (Decision.SUPPRESSED, LeftOutReason.TEAM_LEFT_OUT) if left_out else (Decision.SEND, None)
    )
    assert found.verdicts_stored["team_not_surveyed"] == ("team_left_out" if left_out else None)


@pytest.mark.parametrize(
    ("replies", "minimum", "left_out"), [(None, 2, False), (1, 2, True), (2, 2, False), (0, 0, False)]
)
def test_teammate_replies_not_counted_yet_leave_it_in(replies, minimum, left_out):
    found = fate(replace(CLOSURE, teammate_replies=replies), min_teammate_replies=minimum)
    assert found.reason == (LeftOutReason.TOO_FEW_REPLIES if left_out else None)


@pytest.mark.parametrize(
    ("days_before", "maximum", "left_out"),
    [(None, 7, False), (6.9, 7, False), (7.1, 7, True), (30, None, False), (0, 0, False)],
)
def test_days_since_the_last_reply(days_before, maximum, left_out):
    last = T0 - timedelta(days=days_before) if days_before is not None else None
    found = fate(
        replace(CLOSURE, last_admin_reply_at=last),
        max_since_reply=timedelta(days=maximum) if maximum is not None else None,
    )
    assert found.reason == (LeftOutReason.REPLY_TOO_OLD if left_out else None)


def test_left_out_beats_invalid_and_do_not_send():
    """An excluded team's closure is nobody's error and nothing for Stella to record, not even flagged."""
    closure = replace(CLOSURE, team_id="22", assignee_kind=AssigneeKind.BOT, customer_email=None, tags=("fraud",))
    found = fate(closure, exclude_teams=frozenset({"22"}))
    assert (found.decision, found.reason, found.error_message) == (Decision.SUPPRESSED, LeftOutReason.TEAM_LEFT_OUT, "")
    assert found.verdicts_stored["customer_email_missing"] == InvalidReason.INVALID_CUSTOMER  # every verdict is kept


@pytest.mark.parametrize("percent", [1, 5, 10, 33, 50, 67, 90, 99])
@pytest.mark.parametrize("stratum", ["4100001", "4100002", ""])
def test_every_run_of_a_teammates_closures_is_sampled_within_one_closure_of_the_share(percent, stratum):
    """Systematic sampling: any 100 closures in a row of one teammate (a week's, say) sample N of them, give or take
    one; far tighter than the ±5 points a coin per closure would miss about one week in three."""
    picked = [sampled(stratum, position, percent) for position in range(1400)]
    for start in range(0, 900, 37):
        for length in (100, 137, 400):
            share = sum(picked[start : start + length])
            assert abs(share - length * percent / 100) <= 1


def test_a_sample_is_the_same_whoever_asks_and_differs_between_teammates():
    tess = [sampled("4100001", position, 50) for position in range(40)]
    assert tess == [sampled("4100001", position, 50) for position in range(40)]
    assert all(sampled("4100001", position, 100) for position in range(40))
    assert len({tuple(sampled(teammate, position, 30) for position in range(10)) for teammate in "abcdefgh"}) > 1


def test_a_closure_recorded_before_sampling_is_left_in():
    assert fate(replace(CLOSURE, sample_position=None), sample_percent=1).reason is None
    out = [fate(replace(CLOSURE, sample_position=n), sample_percent=10).reason for n in range(10)]
    assert out.count(None) == 1 and out.count(LeftOutReason.NOT_SAMPLED) == 9


PARIS = "Europe/Paris"


@pytest.mark.parametrize(
    ("hours", "due", "goes"),
    [
        ("21:00-08:00", "2026-03-02T19:59+00:00", "2026-03-02T19:59+00:00"),  # 20:59 in Paris: not yet quiet
        ("21:00-08:00", "2026-03-02T20:00+00:00", "2026-03-03T07:00+00:00"),  # 21:00: waits until 08:00 next day
        ("21:00-08:00", "2026-03-03T03:00+00:00", "2026-03-03T07:00+00:00"),  # 04:00, past midnight
        ("21:00-08:00", "2026-03-03T07:00+00:00", "2026-03-03T07:00+00:00"),  # 08:00: the end is not quiet
        ("12:00-14:00", "2026-03-02T11:30+00:00", "2026-03-02T13:00+00:00"),  # within a day
        ("21:00-08:00", "2026-03-28T21:00+00:00", "2026-03-29T06:00+00:00"),  # over the spring change: 08:00 CEST
        # The autumn change: 02:15 CET comes after 02:30 CEST; its quiet hours end at 02:30 CET, not before it.
        ("21:00-02:30", "2026-10-25T01:15+00:00", "2026-10-25T01:30+00:00"),
        ("21:00-02:30", "2026-10-25T00:15+00:00", "2026-10-25T00:30+00:00"),  # 02:15 CEST, the first time round
    ],
)
def test_quiet_hours_in_the_accounts_time_zone(hours, due, goes):
    quiet = QuietHours.of(hours, PARIS)
    assert quiet.ends_after(datetime.fromisoformat(due)) == datetime.fromisoformat(goes)


def test_a_close_due_in_quiet_hours_waits_for_them_to_end_after_its_delay():
    rules = replace(RULES, delay=timedelta(minutes=30), quiet_hours=QuietHours.of("22:00-07:00", "UTC"))
    assert rules.send_after(datetime(2026, 3, 2, 21, 0, tzinfo=UTC)) == datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
    assert rules.send_after(datetime(2026, 3, 2, 21, 45, tzinfo=UTC)) == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    assert rules.longest_wait == timedelta(hours=9, minutes=30)
    assert replace(RULES, delay=timedelta(minutes=5)).send_after(T0) == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("kind", [AssigneeKind.TEAM, AssigneeKind.NOBODY])
def test_crediting_the_last_replier_leaves_a_team_or_nobody_to_the_sends_look_up(kind):
    closure = replace(CLOSURE, assignee_kind=kind)
    assert fate(closure).reason == InvalidReason.EMPLOYEE_NOT_FOUND  # crediting the assignee: nobody to credit
    assert fate(closure, last_replier=True).decision == Decision.SEND  # not looked up yet
    # Looked up, and nobody replied: the assignee stays, and there is nobody to credit.
    assert fate(replace(closure, teammate_replies=0), last_replier=True).reason == InvalidReason.EMPLOYEE_NOT_FOUND
