"""Keeping DailyCount current. Every change of a survey request's state, and every test or invalid
call, moves a count in the same transaction as the change, so the status page's counts and chart
are exact without reading the log."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from surveys.models import ApiRequest, CallCount, DailyCount, SurveyRequest

# Count changes a batch collects instead of writing each at once (daily_counts_deferred), by account, day and kind.
_deferred: ContextVar[dict[tuple[int, date, str], int] | None] = ContextVar("deferred_daily_counts", default=None)


@contextmanager
def daily_counts_deferred() -> Iterator[dict[tuple[int, date, str], int]]:
    """Within a batch's transaction: collect its count changes and write them as the block ends, so the batch holds
    each count's row lock only for its last moment, not its whole length (parallel batches of one account would
    otherwise queue on it). A caller rolling back part of the batch restores the dict it is given."""
    pending: dict[tuple[int, date, str], int] = {}
    token = _deferred.set(pending)
    try:
        yield pending
    finally:
        _deferred.reset(token)
    by_account_day: dict[tuple[int, date], dict[str, int]] = {}
    for (account_id, day, kind), delta in sorted(pending.items()):  # one order for every writer: no deadlock
        if delta:
            by_account_day.setdefault((account_id, day), {})[kind] = delta
    for (account_id, day), deltas in by_account_day.items():
        _daily_counts_upsert(account_id=account_id, day=day, deltas=deltas)


def day_of(moment: datetime) -> date:
    """The day a moment counts on: in the portal's TIME_ZONE, whoever's request moved it (never the user's zone)."""
    return timezone.localdate(moment, timezone=timezone.get_default_timezone())


def daily_count_add(*, account_id: int, day: date, kind: str, delta: int = 1) -> None:
    _daily_counts_upsert(account_id=account_id, day=day, deltas={kind: delta})


def daily_counts_move(*, account_id: int, day: date, old: str, new: str) -> None:
    """One request moved from one outcome to another: one statement, whether or not either count exists yet."""
    if old != new:
        _daily_counts_upsert(account_id=account_id, day=day, deltas={old: -1, new: 1})


def _daily_counts_upsert(*, account_id: int, day: date, deltas: Mapping[str, int]) -> None:
    """Add each delta to its count of the day, creating the count if it has none, in one statement.

    Raw SQL because the ORM has no increment-on-conflict (bulk_create(update_conflicts=True) sets the
    column to the inserted value), and any read-then-write pair loses increments to a concurrent
    writer that creates the row in between. The rows go in a fixed order (by kind), so two moves
    lock the counts they share in the same order instead of deadlocking each other.
    """
    if (pending := _deferred.get()) is not None:
        for kind, delta in deltas.items():
            pending[(account_id, day, kind)] = pending.get((account_id, day, kind), 0) + delta
        return
    meta = DailyCount._meta
    quote = connection.ops.quote_name
    columns = {field.name: quote(field.column) for field in meta.concrete_fields if field.column}
    table = quote(meta.db_table)
    account, day_column, kind, count = (columns[name] for name in ("account", "day", "kind", "count"))
    day_value = meta.get_field("day").get_db_prep_value(day, connection)
    rows = sorted(deltas.items())
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({account}, {day_column}, {kind}, {count}) VALUES {values} "
            f"ON CONFLICT ({account}, {day_column}, {kind}) DO UPDATE SET {count} = {table}.{count} + EXCLUDED.{count}",
            [param for row_kind, delta in rows for param in (account_id, day_value, row_kind, delta)],
        )


def count_survey_request_recorded(survey_request: SurveyRequest, *, delta: int = 1) -> None:
    """`delta=-1`: the count of a record that was not saved after all, taken back."""
    daily_count_add(
        account_id=survey_request.account_id,
        day=day_of(survey_request.closed_at),
        kind=survey_request.outcome,
        delta=delta,
    )


def count_survey_request_transition(survey_request: SurveyRequest, *, old_status: str, old_decision: str) -> None:
    daily_counts_move(
        account_id=survey_request.account_id,
        day=day_of(survey_request.closed_at),
        old=SurveyRequest.outcome_of(old_status, old_decision),
        new=survey_request.outcome,
    )


def count_api_request_recorded(api_request: ApiRequest) -> None:
    """Count a call as its row is first saved: made with a test key, or rejected here before any call."""
    day = day_of(api_request.created_at)
    if api_request.is_test_call:
        daily_count_add(account_id=api_request.account_id, day=day, kind=CallCount.TEST_CALLS)
    if api_request.is_invalid:
        daily_count_add(account_id=api_request.account_id, day=day, kind=CallCount.INVALID_CALLS)


def count_api_request_finished(api_request: ApiRequest) -> None:
    """Count a call Stella answered as invalid."""
    if api_request.is_invalid:
        daily_count_add(
            account_id=api_request.account_id, day=day_of(api_request.created_at), kind=CallCount.INVALID_CALLS
        )


@transaction.atomic
def daily_counts_rebuild() -> int:
    """Count everything again from the log: for repair, and for data that predates the counts.

    Writers wait while it runs (SQLite's write lock; on PostgreSQL, a table lock), so no
    change lands between reading the log and writing the counts.
    """
    if connection.vendor == "postgresql":
        tables = ", ".join(model._meta.db_table for model in (SurveyRequest, ApiRequest, DailyCount))
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
    DailyCount.objects.all().delete()
    rows: dict[tuple[int, date, str], int] = {}
    per_day = (
        SurveyRequest.objects.annotate(day=TruncDate("closed_at", tzinfo=timezone.get_default_timezone()))
        .values("account_id", "day", "status", "decision")
        .annotate(n=Count("pk"))
    )
    for row in per_day:
        key = (row["account_id"], row["day"], SurveyRequest.outcome_of(row["status"], row["decision"]))
        rows[key] = rows.get(key, 0) + row["n"]
    for kind, calls in (
        (CallCount.TEST_CALLS, ApiRequest.objects.test_calls()),
        (CallCount.INVALID_CALLS, ApiRequest.objects.invalid()),
    ):
        per_call_day = (
            calls.annotate(day=TruncDate("created_at", tzinfo=timezone.get_default_timezone()))
            .values("account_id", "day")
            .annotate(n=Count("pk"))
        )
        for call_row in per_call_day:
            rows[(call_row["account_id"], call_row["day"], kind)] = call_row["n"]
    DailyCount.objects.bulk_create(
        DailyCount(account_id=account_id, day=day, kind=kind, count=n) for (account_id, day, kind), n in rows.items()
    )
    return len(rows)
