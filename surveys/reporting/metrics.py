"""What the domain shows on /metrics (portal/metrics.py; README, "Operating the portal"), read from the database at
scrape time (registered in SurveysConfig.ready). Each figure reads an index or the daily counts, so a scrape costs
the same on a database of a hundred rows or a hundred million:

- survey requests closed today, by outcome (DailyCount: a row per account and outcome);
- survey requests waiting to be sent, and how long the longest-due one has been due (the (status, send_after) index);
- how far behind Stella's Data Return the feedback pull is, the worst account (a StellaSyncState row per account);
- Intercom notes waiting to be posted (the outbox's partial index).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet, Sum
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from surveys.models import Account, DailyCount, IntercomNote, StellaSyncState, SurveyOutcome, SurveyRequest
from surveys.reporting.counts import day_of

# Rows waiting are counted up to this many: a count of a larger backlog would cost the scrape more than it tells.
COUNT_CAP = 100_000


def survey_metrics(now: datetime) -> Iterable[Metric]:
    yield _closed_today(now)
    yield from _waiting_to_send(now)
    yield from _feedback_pull_lag(now)
    yield GaugeMetricFamily(
        "portal_intercom_notes_waiting",
        f"Intercom notes waiting to be posted: the outbox's depth (counted up to {COUNT_CAP}).",
        value=_capped_count(IntercomNote.objects.filter(status=IntercomNote.Status.WAITING)),
    )


def _capped_count(rows: QuerySet) -> int:
    """How many, up to COUNT_CAP: the rows' default ordering dropped, so counting them reads only the index."""
    return rows.order_by()[:COUNT_CAP].count()


def _closed_today(now: datetime) -> Metric:
    today = DailyCount.objects.filter(day=day_of(now), kind__in=SurveyOutcome.values)
    counts = dict(today.values("kind").annotate(total=Sum("count")).values_list("kind", "total"))
    family = GaugeMetricFamily(
        "portal_survey_requests_today",
        "Survey requests of conversations closed today (the portal's TIME_ZONE), by where they stand now.",
        labels=["outcome"],
    )
    for outcome in SurveyOutcome:
        family.add_metric([outcome.value], counts.get(outcome.value, 0))
    return family


def _waiting_to_send(now: datetime) -> Iterable[Metric]:
    waiting = GaugeMetricFamily(
        "portal_survey_requests_waiting",
        f"Survey requests scheduled (due or not) or being sent now, by status (counted up to {COUNT_CAP}).",
        labels=["status"],
    )
    for status in (SurveyRequest.Status.SCHEDULED, SurveyRequest.Status.SENDING):
        waiting.add_metric([status.value], _capped_count(SurveyRequest.objects.filter(status=status)))
    yield waiting
    # A paused or disabled account's requests wait until it resumes, by design: a CSM's matter, not a late sender.
    due = SurveyRequest.objects.due(now=now).of_sending_accounts().values_list("send_after", flat=True).first()
    yield GaugeMetricFamily(
        "portal_survey_request_send_lag_seconds",
        "How long the longest-due survey request of an account that sends has been due (0: none is).",
        value=(now - due).total_seconds() if due else 0,
    )


def _feedback_pull_lag(now: datetime) -> Iterable[Metric]:
    # The accounts stella_sync_all pulls feedback for (surveys/loop/sync.py): feedback return on, with an API secret.
    pulling = Account.objects.filter(integration__feedback_return_enabled=True).exclude(
        integration__stella_api_secret=""
    )
    last_pulls = dict(
        StellaSyncState.objects.filter(account__in=pulling).values_list("account_id", "feedback_synced_at")
    )
    pulled = [last for last in last_pulls.values() if last is not None]
    yield GaugeMetricFamily(
        "portal_stella_feedback_pull_lag_seconds",
        "Seconds since the last successful read of Stella's feedback records, of the account longest without one.",
        value=(now - min(pulled)).total_seconds() if pulled else 0,
    )
    yield GaugeMetricFamily(
        "portal_stella_feedback_accounts_never_pulled",
        "Accounts with feedback return on and an API secret whose feedback was never read successfully.",
        value=pulling.count() - len(pulled),
    )
