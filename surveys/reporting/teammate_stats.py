"""The satisfaction report (the status page's Teammates view), its CSV and the API: per teammate, team or channel,
over the chosen days, the surveys Stella sent and had answered, the share of ratings that were 4 or 5 stars, the
spread of the stars, the trend by week and the change against the days just before. Reads only
TeammateDailyCount, which the feedback pull keeps current (surveys/loop/teammate_counts.py): two queries, whatever
the log holds. And the records behind a figure (feedback_behind), for the drill-down: one page of them at a time.
What a row's figures are, and how its stars and weeks are drawn: teammate_figures.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncWeek

from portal.paths import path_of
from portal.text import displayable
from surveys.models import Feedback, Teammate, TeammateDailyCount
from surveys.reporting.presenters import (
    mask_emails_in,
    stars,
    stars_in_words,
    stella_channel_label,
    teammate_label,
)
from surveys.reporting.status import StatusFilter
from surveys.reporting.teammate_figures import (
    FIGURE_COLUMNS,
    GROUPS,
    LOW_RATINGS,
    STAR_COLUMNS,
    Figures,
    TeammateRow,
    Week,
)

# The status page's filters the report takes: its figures are per teammate, team or channel, whatever the
# reason or conversation.
TEAMMATE_FILTERS = ("account", "date_from", "date_to")
GROUP_LABELS = {"teammate": "Teammate", "team": "Team", "channel": "Channel"}


@dataclass(frozen=True)
class TeammateStats:
    rows: list[TeammateRow]
    totals: TeammateRow
    weeks: list[date]  # the Monday of each week the days touch
    group: str
    previous_from: date
    previous_to: date
    sort: str


def previous_period(status_filter: StatusFilter) -> tuple[date, date]:
    """The days just before the chosen ones, as many."""
    days = (status_filter.date_to - status_filter.date_from).days + 1
    return status_filter.date_from - timedelta(days=days), status_filter.date_from - timedelta(days=1)


def _bot_teammate(employee: str) -> Exists:
    """Whether the Stella employee named in the outer row's column is an Intercom bot of its account (by email,
    or the Stella custom id it is mapped to)."""
    return Exists(
        Teammate.objects.filter(account_id=OuterRef("account_id"), is_bot=True).filter(
            (Q(email__iexact=OuterRef(employee)) & ~Q(email=""))
            | (Q(stella_custom_id=OuterRef(employee)) & ~Q(stella_custom_id=""))
        )
    )


def _counts(status_filter: StatusFilter, *, since: date, bots: bool) -> QuerySet[TeammateDailyCount]:
    counts = TeammateDailyCount.objects.filter(day__gte=since, day__lte=status_filter.date_to)
    if status_filter.account_ids is not None:
        counts = counts.filter(account_id__in=status_filter.account_ids)
    return counts if bots else counts.exclude(_bot_teammate("teammate"))


def _figures(row: dict[str, Any], suffix: str) -> Figures:
    def value(name: str) -> int:
        return int(row[f"{name}{suffix}"] or 0)

    return Figures(
        requested=value("requested"),
        delivered=value("delivered"),
        responded=value("responded"),
        rating_sum=value("rating_sum"),
        rating_count=value("rating_count"),
        stars=tuple(value(name) for name in STAR_COLUMNS),
    )


def weeks_of(date_from: date, date_to: date) -> list[date]:
    monday = date_from - timedelta(days=date_from.weekday())
    return [monday + timedelta(weeks=n) for n in range((date_to - monday).days // 7 + 1)]


def teammate_stats(
    status_filter: StatusFilter, *, group: str = "teammate", bots: bool = False, sort: str = ""
) -> TeammateStats:
    """Per teammate (team, channel) in the filter's accounts and days (the day Stella created the request, in
    the portal's TIME_ZONE), and the same over the days before, in one query; their weeks in a second. Rows
    with no request in the chosen days are left out of the rows, not of the totals' previous figures. Bots
    (Intercom bots mapped to a Stella employee) are left out unless asked for."""
    previous_from, previous_to = previous_period(status_filter)
    weeks = weeks_of(status_filter.date_from, status_filter.date_to)
    weekly = _weekly(status_filter, group=group, bots=bots)
    rows: list[TeammateRow] = []
    previous_total = Figures()
    for row in _grouped(status_filter, group=group, since=previous_from, bots=bots):
        current, previous = _figures(row, "_now"), _figures(row, "_before")
        previous_total = previous_total.plus(previous)
        if current.requested:
            key = row[GROUPS[group]]
            weeks_of_row = tuple(weekly.get(key, {}).get(week, Week(week)) for week in weeks)
            rows.append(_row(current, previous=previous, weeks=weeks_of_row, **_row_keys(group, key, row)))
    sort = sort if sort.lstrip("-") in SORTS else DEFAULT_SORT
    return TeammateStats(
        rows=sorted_rows(rows, sort),
        totals=_totals(rows, group=group, previous=previous_total, weeks=weeks),
        weeks=weeks,
        group=group,
        previous_from=previous_from,
        previous_to=previous_to,
        sort=sort,
    )


def _grouped(
    status_filter: StatusFilter, *, group: str, since: date, bots: bool
) -> QuerySet[TeammateDailyCount, dict[str, Any]]:
    """Per teammate (team, channel): the counts' sums over the chosen days ("_now") and the days before ("_before")."""
    column = GROUPS[group]
    now, before = Q(day__gte=status_filter.date_from), Q(day__lt=status_filter.date_from)
    sums = {
        f"{name}{suffix}": Sum(name, filter=period)
        for name in (*FIGURE_COLUMNS, *STAR_COLUMNS)
        for suffix, period in (("_now", now), ("_before", before))
    }
    return (
        _counts(status_filter, since=since, bots=bots)
        .values(column)
        .annotate(name=Max("teammate_name"), leader=Max("team"), **sums)
        .order_by(column)
    )


def _weekly(status_filter: StatusFilter, *, group: str, bots: bool) -> dict[str, dict[date, Week]]:
    """Per teammate (team, channel), their weeks of the chosen days that have counts."""
    column = GROUPS[group]
    per_week = (
        _counts(status_filter, since=status_filter.date_from, bots=bots)
        .annotate(week=TruncWeek("day"))
        .values(column, "week")
        .annotate(ratings=Sum("rating_count"), satisfied=Sum(F("stars_4") + F("stars_5")))
        .order_by()
    )
    weekly: dict[str, dict[date, Week]] = {}
    for row in per_week:
        week = _as_date(row["week"])
        weekly.setdefault(row[column], {})[week] = Week(week, row["ratings"] or 0, row["satisfied"] or 0)
    return weekly


def _row_keys(group: str, key: str, row: dict[str, Any]) -> dict[str, str]:
    """Who or what a row is: the group's key, and for a teammate their name and team leader."""
    if group == "teammate":
        return {"group": group, "teammate": key, "teammate_name": row["name"] or "", "team": row["leader"] or ""}
    return {"group": group, GROUPS[group]: key}


def _totals(rows: list[TeammateRow], *, group: str, previous: Figures, weeks: list[date]) -> TeammateRow:
    """Everyone's row: the rows' figures and weeks added up, and the days before's of every teammate."""
    current = Figures()
    for row in rows:
        current = current.plus(row)
    return _row(
        current,
        group=group,
        previous=previous,
        weeks=tuple(
            Week(week, sum(row.weeks[n].ratings for row in rows), sum(row.weeks[n].satisfied for row in rows))
            for n, week in enumerate(weeks)
        ),
        total=True,
    )


def _row(figures: Figures, **fields: Any) -> TeammateRow:
    return TeammateRow(
        requested=figures.requested,
        delivered=figures.delivered,
        responded=figures.responded,
        rating_sum=figures.rating_sum,
        rating_count=figures.rating_count,
        stars=figures.stars,
        **fields,
    )


def group_label(group: str, key: str) -> str:
    """A teammate, team or channel as the report names it, from its key alone (a teammate's name unknown)."""
    if group == "team":
        return TeammateRow(group=group, team=key).label
    if group == "channel":
        return TeammateRow(group=group, channel=key).label
    return TeammateRow(group=group, teammate=key).label


def teammate_name_of(status_filter: StatusFilter, teammate: str) -> str:
    """The name Stella gives the teammate in the filter's accounts, if any: one query."""
    counts = TeammateDailyCount.objects.filter(teammate=teammate).exclude(teammate_name="")
    if status_filter.account_ids is not None:
        counts = counts.filter(account_id__in=status_filter.account_ids)
    return counts.order_by("-day").values_list("teammate_name", flat=True).first() or ""


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# The columns the report sorts by, and what each sorts on; rows without a figure go last either way.
SORTS: dict[str, Callable[[TeammateRow], Any]] = {
    "name": lambda row: row.label.casefold(),
    "team": lambda row: (displayable(row.team) or "\uffff").casefold(),
    "sent": lambda row: row.delivered,
    "responses": lambda row: row.rating_count,
    "response_rate": lambda row: row.response_rate,
    "satisfaction": lambda row: row.satisfaction,
    "average": lambda row: row.average_rating,
    "change": lambda row: row.change,
}
DEFAULT_SORT = "-responses"


def sorted_rows(rows: list[TeammateRow], sort: str) -> list[TeammateRow]:
    """By the column sort names ("-" first: highest first), then by name; rows without the figure last."""
    key = SORTS[sort.lstrip("-")]
    by_name = sorted(rows, key=SORTS["name"])
    with_figure = [row for row in by_name if key(row) is not None]
    without = [row for row in by_name if key(row) is None]
    return sorted(with_figure, key=key, reverse=sort.startswith("-")) + without


# ---- The records behind a figure ----

RATINGS = {
    "": "Every response",
    "low": "Low ratings (1–3★)",
    "satisfied": "Satisfied (4–5★)",
    **{str(star): f"{star}★ only" for star in range(5, 0, -1)},
}
BEHIND_PAGE_SIZE = 50


@dataclass(frozen=True)
class Behind:
    """One response as the drill-down shows it."""

    responded_at: datetime | None
    account: str
    conversation_id: str
    conversation_url: str
    teammate: str
    channel: str
    star_rating: int | None
    comment: str  # emails in it masked, as the customer's are

    @property
    def stars(self) -> str:
        return stars(self.star_rating)

    @property
    def stars_in_words(self) -> str:
        return stars_in_words(self.star_rating)


def conversation_url(feedback: Feedback) -> str:
    """Where the conversation is in Intercom: its request's link, else one built from the ids."""
    request = feedback.survey_request
    if request is not None and request.conversation_url:
        return request.conversation_url
    if not feedback.ext_interaction_id:
        return ""
    return settings.INTERCOM_APP_URL + path_of(
        "a", "apps", feedback.account.intercom_workspace_id, "conversations", feedback.ext_interaction_id
    )


def feedback_behind(
    status_filter: StatusFilter,
    *,
    group: str,
    key: str | None,
    rating: str = "",
    bots: bool = False,
    page: int | str = 1,
) -> tuple[Page, list[Behind]]:
    """The customers' answers behind a figure of the report: the records of the teammate, team or channel (key
    None: everyone) whose request Stella created in the chosen days, answered, newest answer first, narrowed to
    a rating ("low", "satisfied" or a star); one page of them, and the page's answers as the drill-down shows them.
    Three queries: a count, the page's ids (sorted narrow, off the teammate's index), then those records with
    their account and request; sorting whole joined records instead costs three times as much on a busy
    teammate's month."""
    records = Feedback.objects.filter(
        is_recovery=False,
        request_created_at__gte=status_filter.starts,
        request_created_at__lt=status_filter.ends,
        response_received_at__isnull=False,
    )
    if status_filter.account_ids is not None:
        records = records.filter(account_id__in=status_filter.account_ids)
    if key is not None:
        records = records.filter(_of_key(group, key))
    if not bots:
        records = records.exclude(_bot_teammate("employee_email")).exclude(_bot_teammate("employee_custom_id"))
    ids = _rated(records, rating).order_by("-response_received_at", "-pk").values_list("pk", flat=True)
    found = Paginator(ids, BEHIND_PAGE_SIZE).get_page(page)
    shown = Feedback.objects.select_related("account", "survey_request").in_bulk(list(found.object_list))
    return found, [_behind(shown[pk]) for pk in found.object_list if pk in shown]


def _of_key(group: str, key: str) -> Q:
    """The records of one teammate (by email, else by custom id), team or channel."""
    if group == "teammate":
        return Q(employee_email=key) | Q(employee_email="", employee_custom_id=key)
    return Q(**{GROUPS[group]: key})


def _rated(records: QuerySet[Feedback], rating: str) -> QuerySet[Feedback]:
    """The records with a rating of RATINGS: "low", "satisfied" or one star; every one for anything else."""
    if rating == "low":
        return records.filter(star_rating__in=LOW_RATINGS)
    if rating == "satisfied":
        return records.filter(star_rating__in=(4, 5))
    if rating in RATINGS and rating:
        return records.filter(star_rating=int(rating))
    return records


def _behind(record: Feedback) -> Behind:
    return Behind(
        responded_at=record.response_received_at,
        account=record.account.name,
        conversation_id=displayable(record.ext_interaction_id),
        conversation_url=conversation_url(record),
        teammate=teammate_label(record.employee_email or record.employee_custom_id, record.employee_name),
        channel=stella_channel_label(record.channel),
        star_rating=record.star_rating,
        comment=mask_emails_in(displayable(record.comment)),
    )


@dataclass(frozen=True)
class FeedbackFreshness:
    """How current the figures are: the oldest last successful read of Stella's feedback among the accounts
    that have read any, and how many of the accounts never have."""

    oldest_read_at: datetime | None
    never_read: int


def feedback_freshness(status_filter: StatusFilter) -> FeedbackFreshness:
    """One query over the filter's accounts and their sync states."""
    read = status_filter.accounts.aggregate(
        oldest=Min("stella_sync__feedback_synced_at"),
        never=Count("pk", filter=Q(stella_sync__feedback_synced_at__isnull=True)),
    )
    return FeedbackFreshness(oldest_read_at=read["oldest"], never_read=read["never"])
