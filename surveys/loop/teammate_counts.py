"""Per Stella employee, channel and day: how many requests Stella recorded, delivered and had answered, and their
stars, kept current as feedback records arrive or change (TeammateDailyCount, read by the Teammates view)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db import connection

from surveys.loop.stella import clip
from surveys.models import (
    Feedback,
    TeammateDailyCount,
)
from surveys.reporting.counts import day_of

COUNT_COLUMNS = ("requested", "delivered", "responded", "rating_sum", "rating_count")


def feedback_delivered(delivery_status: str, request_sent_at: datetime | None) -> bool:
    """Stella sent the survey and it didn't bounce for good ("Not sent: …" and "Hard bounce" weren't delivered)."""
    status = delivery_status.strip().lower()
    return request_sent_at is not None and not status.startswith("not sent") and "hard bounce" not in status


@dataclass
class TeammateCounts:
    """Changes to TeammateDailyCount, by (day, mode, teammate, channel), collected for one write."""

    deltas: dict[tuple[date, str, str, str], list[int]] = field(default_factory=dict)
    names: dict[tuple[date, str, str, str], str] = field(default_factory=dict)

    def add(self, row: Feedback, *, sign: int) -> None:
        """Add (sign 1) or take back (sign -1) what one record counts: nothing for a recovery record, or
        one with no request time to give it a day."""
        if row.is_recovery or row.request_created_at is None:
            return
        key = (
            day_of(row.request_created_at),
            row.mode,
            clip(row.employee_email or row.employee_custom_id, TeammateDailyCount, "teammate"),
            clip(row.channel, TeammateDailyCount, "channel"),
        )
        values = (
            1,
            int(feedback_delivered(row.delivery_status, row.request_sent_at)),
            int(row.response_received_at is not None),
            row.star_rating or 0,
            int(row.star_rating is not None),
        )
        totals = self.deltas.setdefault(key, [0] * len(COUNT_COLUMNS))
        for index, value in enumerate(values):
            totals[index] += sign * value
        if sign > 0 and row.employee_name:
            self.names[key] = clip(row.employee_name, TeammateDailyCount, "teammate_name")

    def write(self, *, account_id: int) -> None:
        """Add every non-zero change to its count, creating counts that don't exist yet: one statement per
        chunk of rows (a page's records share few days and teammates), in a fixed order so two writers
        lock shared counts alike. Raw SQL for the same reason as DailyCount's (surveys/reporting/counts.py): the ORM
        has no increment-on-conflict."""
        rows = sorted((key, totals) for key, totals in self.deltas.items() if any(totals) or key in self.names)
        if not rows:
            return
        meta = TeammateDailyCount._meta
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        key_names = ("account", "day", "mode", "teammate", "channel")
        names = (*key_names, "teammate_name", *COUNT_COLUMNS)
        column = {field.name: quote(field.column) for field in meta.concrete_fields if field.column}
        updates = [f"{column[name]} = {table}.{column[name]} + EXCLUDED.{column[name]}" for name in COUNT_COLUMNS]
        updates.append(
            f"{column['teammate_name']} = CASE WHEN EXCLUDED.{column['teammate_name']} <> '' "
            f"THEN EXCLUDED.{column['teammate_name']} ELSE {table}.{column['teammate_name']} END"
        )
        day_field = meta.get_field("day")
        chunk = max(1, (connection.features.max_query_params or 999) // len(names))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for (day, mode, teammate, channel), totals in part:
                day_value = day_field.get_db_prep_value(day, connection)
                name = self.names.get((day, mode, teammate, channel), "")
                params += [account_id, day_value, mode, teammate, channel, name, *totals]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(part))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(column[name] for name in names)}) VALUES {placeholders} "
                    f"ON CONFLICT ({', '.join(column[name] for name in key_names)}) DO UPDATE SET {', '.join(updates)}",
                    params,
                )
