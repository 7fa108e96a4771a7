"""Per Stella employee, channel and day: how many requests Stella recorded, delivered and had answered, and their
stars, kept current as feedback records arrive or change (TeammateDailyCount, read by the satisfaction report),
and counted again from the stored records on demand (teammate_counts_rebuild)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Model

from surveys.loop.stella import clip
from surveys.models import (
    Feedback,
    TeammateDailyCount,
)
from surveys.reporting.counts import day_of

STAR_COLUMNS = ("stars_1", "stars_2", "stars_3", "stars_4", "stars_5")
COUNT_COLUMNS = ("requested", "delivered", "responded", "rating_sum", "rating_count", *STAR_COLUMNS)
# What a record's counting reads of it: the feedback pull loads its old rows with these only.
COUNTED_FIELDS = (
    "uuid", "survey_request", "mode", "is_recovery", "channel", "employee_email", "employee_custom_id",
    "employee_name", "team", "delivery_status", "request_created_at", "request_sent_at", "response_received_at",
    "star_rating",
)  # fmt: skip
Key = tuple[date, str, str, str]  # day, mode, teammate, channel


def feedback_delivered(delivery_status: str, request_sent_at: datetime | None) -> bool:
    """Stella sent the survey and it didn't bounce for good ("Not sent: …" and "Hard bounce" weren't delivered)."""
    status = delivery_status.strip().lower()
    return request_sent_at is not None and not status.startswith("not sent") and "hard bounce" not in status


def counted_of(row: Feedback) -> tuple[Key, tuple[int, ...]] | None:
    """Where one record counts (day, mode, teammate, channel) and what it adds there, in COUNT_COLUMNS' order;
    None for a recovery record, or one with no request time to give it a day."""
    if row.is_recovery or row.request_created_at is None:
        return None
    key = (
        day_of(row.request_created_at),
        row.mode,
        clip(row.employee_email or row.employee_custom_id, TeammateDailyCount, "teammate"),
        clip(row.channel, TeammateDailyCount, "channel"),
    )
    star = row.star_rating
    values = (
        1,
        int(feedback_delivered(row.delivery_status, row.request_sent_at)),
        int(row.response_received_at is not None),
        star or 0,
        int(star is not None),
        *(int(star == stars) for stars in range(1, 6)),
    )
    return key, values


@dataclass
class TeammateCounts:
    """Changes to TeammateDailyCount, by (day, mode, teammate, channel), collected for one write."""

    deltas: dict[Key, list[int]] = field(default_factory=dict)
    names: dict[Key, str] = field(default_factory=dict)
    teams: dict[Key, str] = field(default_factory=dict)

    @classmethod
    def of_changes(cls, rows: list[Feedback], existing: dict[str, Feedback]) -> TeammateCounts:
        """What storing `rows` over the `existing` ones (by uuid) changes."""
        deltas = cls()
        for row in rows:
            if (old := existing.get(row.uuid)) is not None:
                deltas.add(old, sign=-1)
            deltas.add(row, sign=1)
        return deltas

    def add(self, row: Feedback, *, sign: int) -> None:
        """Add (sign 1) or take back (sign -1) what one record counts: nothing for a recovery record, or
        one with no request time to give it a day. The name and team come from the records added."""
        counted = counted_of(row)
        if counted is None:
            return
        key, values = counted
        totals = self.deltas.setdefault(key, [0] * len(COUNT_COLUMNS))
        for index, value in enumerate(values):
            totals[index] += sign * value
        if sign > 0 and row.employee_name:
            self.names[key] = clip(row.employee_name, TeammateDailyCount, "teammate_name")
        if sign > 0 and row.team:
            self.teams[key] = clip(row.team, TeammateDailyCount, "team")

    def write(self, *, account_id: int) -> None:
        """Add every non-zero change to its count, creating counts that don't exist yet: one statement per
        chunk of rows (a page's records share few days and teammates), in a fixed order so two writers
        lock shared counts alike. Raw SQL for the same reason as DailyCount's (surveys/reporting/counts.py): the ORM
        has no increment-on-conflict."""
        rows = sorted(
            (key, totals)
            for key, totals in self.deltas.items()
            if any(totals) or key in self.names or key in self.teams
        )
        chunk = max(1, (connection.features.max_query_params or 999) // len(_UPSERT_COLUMNS))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [value for key, totals in part for value in self._upsert_params(account_id, key, totals)]
            with connection.cursor() as cursor:
                cursor.execute(_upsert_sql(len(part)), params)

    def _upsert_params(self, account_id: int, key: Key, totals: list[int]) -> list[Any]:
        """One row's values, in _UPSERT_COLUMNS' order."""
        day, mode, teammate, channel = key
        day_value = TeammateDailyCount._meta.get_field("day").get_db_prep_value(day, connection)
        name, team = self.names.get(key, ""), self.teams.get(key, "")
        return [account_id, day_value, mode, teammate, channel, name, team, *totals]


_KEY_COLUMNS = ("account", "day", "mode", "teammate", "channel")
_UPSERT_COLUMNS = (*_KEY_COLUMNS, "teammate_name", "team", *COUNT_COLUMNS)


def _upsert_sql(rows: int) -> str:
    """INSERT of `rows` rows of _UPSERT_COLUMNS that adds the counts to those already there, and keeps the latest
    non-empty name and team."""
    meta = TeammateDailyCount._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    column = {field.name: quote(field.column) for field in meta.concrete_fields if field.column}
    updates = [f"{column[name]} = {table}.{column[name]} + EXCLUDED.{column[name]}" for name in COUNT_COLUMNS]
    updates += [
        f"{column[kept]} = CASE WHEN EXCLUDED.{column[kept]} <> '' "
        f"THEN EXCLUDED.{column[kept]} ELSE {table}.{column[kept]} END"
        for kept in ("teammate_name", "team")
    ]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_UPSERT_COLUMNS)) + ")"] * rows)
    return (
        f"INSERT INTO {table} ({', '.join(column[name] for name in _UPSERT_COLUMNS)}) VALUES {placeholders} "
        f"ON CONFLICT ({', '.join(column[name] for name in _KEY_COLUMNS)}) DO UPDATE SET {', '.join(updates)}"
    )


@transaction.atomic
def teammate_counts_rebuild(
    *, feedback_model: type[Model] = Feedback, count_model: type[Model] = TeammateDailyCount, chunk: int = 5000
) -> int:
    """Count every stored feedback record again: for repair, and for counts that predate a column (the stars,
    the team). Returns how many counts it wrote. Takes the models so a migration can run it on its own.

    Writers wait while it runs (SQLite's write lock; on PostgreSQL, a table lock), as daily_counts_rebuild's do.
    """
    if connection.vendor == "postgresql":
        tables = ", ".join(model._meta.db_table for model in (feedback_model, count_model))
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
    count_model._default_manager.all().delete()
    by_account: dict[int, TeammateCounts] = {}
    records = (
        feedback_model._default_manager.filter(is_recovery=False, request_created_at__isnull=False)
        .order_by("request_created_at", "pk")
        .only("account_id", *(name for name in COUNTED_FIELDS if name not in ("uuid", "survey_request")))
    )
    for row in records.iterator(chunk_size=chunk):
        by_account.setdefault(row.account_id, TeammateCounts()).add(row, sign=1)  # type: ignore[attr-defined, arg-type]
    count_model._default_manager.bulk_create(
        (
            count_model(
                account_id=account_id, day=day, mode=mode, teammate=teammate, channel=channel,
                teammate_name=counts.names.get(key, ""), team=counts.teams.get(key, ""),
                **dict(zip(COUNT_COLUMNS, sums, strict=True)),
            )
            for account_id, counts in by_account.items()
            for key, sums in counts.deltas.items()
            for day, mode, teammate, channel in [key]
        ),
        batch_size=1000,
    )  # fmt: skip
    return sum(len(counts.deltas) for counts in by_account.values())
