"""Keeping DailyCount current. Every change of a survey request's state, and every test or invalid
call, moves a count in the same transaction as the change, so the status page's counts and chart
are exact without reading the log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Q, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from surveys.models import ApiRequest, DailyCount, SurveyRequest
from surveys.suppression import Decision

K = DailyCount.Kind
S = SurveyRequest.Status
BUCKETS = {
    S.SCHEDULED: K.WAITING,
    S.SENDING: K.WAITING,
    S.SENT: K.SENT,
    S.SUPPRESSED: K.SUPPRESSED,
    S.CANCELLED: K.CANCELLED,
    S.INVALID: K.INVALID,
    S.FAILED: K.FAILED,
    S.AMBIGUOUS: K.FAILED,
}


def survey_bucket(status: str, decision: str) -> str:
    if status == S.SENT and decision == Decision.DO_NOT_SEND:
        return K.DO_NOT_SEND
    return BUCKETS[status]


def day_of(moment: datetime) -> date:
    return timezone.localdate(moment)


def daily_count_add(*, account_id: int, day: date, kind: str, delta: int = 1) -> None:
    counts = DailyCount.objects.filter(account_id=account_id, day=day, kind=kind)
    if counts.update(count=F("count") + delta):
        return
    try:
        with transaction.atomic():
            DailyCount.objects.create(account_id=account_id, day=day, kind=kind, count=delta)
    except IntegrityError:  # created meanwhile by a concurrent writer
        counts.update(count=F("count") + delta)


def daily_counts_move(*, account_id: int, day: date, old: str, new: str) -> None:
    """One request moved from one state to another: one statement once both counts exist."""
    if old == new:
        return
    moved = DailyCount.objects.filter(account_id=account_id, day=day, kind__in=[old, new]).update(
        count=F("count") + Case(When(kind=new, then=1), default=-1)
    )
    if moved < 2 and not DailyCount.objects.filter(account_id=account_id, day=day, kind=new).exists():
        daily_count_add(account_id=account_id, day=day, kind=new)


def count_survey_request_transition(survey_request: SurveyRequest, *, old_status: str, old_decision: str) -> None:
    daily_counts_move(
        account_id=survey_request.account_id,
        day=day_of(survey_request.closed_at),
        old=survey_bucket(old_status, old_decision),
        new=survey_bucket(survey_request.status, survey_request.decision),
    )


def count_api_request(api_request: ApiRequest) -> None:
    """Count a call as it is recorded: made with a test key, or rejected (here, or by Stella)."""
    day = day_of(api_request.created_at)
    if api_request.mode == "test" and api_request.url and api_request.outcome == ApiRequest.Outcome.PENDING:
        daily_count_add(account_id=api_request.account_id, day=day, kind=K.TEST_CALLS)
    if api_request.outcome == ApiRequest.Outcome.INVALID:
        daily_count_add(account_id=api_request.account_id, day=day, kind=K.INVALID_CALLS)


@transaction.atomic
def daily_counts_rebuild(*, models: tuple[Any, Any, Any] | None = None) -> int:
    """Count everything again from the log: for repair, and for data that predates the counts.

    Writers wait while it runs (SQLite's write lock; on PostgreSQL, a table lock), so no
    change lands between reading the log and writing the counts. `models` lets a migration
    pass its historical SurveyRequest, ApiRequest and DailyCount.
    """
    survey_requests, api_requests, daily_counts = models or (SurveyRequest, ApiRequest, DailyCount)
    if connection.vendor == "postgresql":
        tables = ", ".join(model._meta.db_table for model in (survey_requests, api_requests, daily_counts))
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
    daily_counts.objects.all().delete()
    rows: dict[tuple[int, date, str], int] = {}
    per_day = (
        survey_requests.objects.annotate(day=TruncDate("closed_at"))
        .values("account_id", "day", "status", "decision")
        .annotate(n=Count("pk"))
    )
    for row in per_day:
        key = (row["account_id"], row["day"], survey_bucket(row["status"], row["decision"]))
        rows[key] = rows.get(key, 0) + row["n"]
    calls_per_day = (
        api_requests.objects.annotate(day=TruncDate("created_at"))
        .values("account_id", "day")
        .annotate(
            tests=Count("pk", filter=Q(mode="test") & ~Q(url="")),
            invalid=Count("pk", filter=Q(outcome=ApiRequest.Outcome.INVALID)),
        )
    )
    for row in calls_per_day:
        for kind, n in ((K.TEST_CALLS, row["tests"]), (K.INVALID_CALLS, row["invalid"])):
            if n:
                rows[(row["account_id"], row["day"], kind)] = n
    daily_counts.objects.bulk_create(
        daily_counts(account_id=account_id, day=day, kind=kind, count=n) for (account_id, day, kind), n in rows.items()
    )
    return len(rows)
