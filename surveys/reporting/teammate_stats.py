"""The satisfaction report (the status page's Teammates view), its CSV and the API: per teammate, team or channel,
over the chosen days, the surveys Stella sent and had answered, the share of ratings that were 4 or 5 stars, the
spread of the stars, the trend by week and the change against the days just before. Reads only
TeammateDailyCount, which the feedback pull keeps current (surveys/loop/teammate_counts.py): two queries, whatever
the log holds. And the records behind a figure (feedback_behind), for the drill-down: one page of them at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    NO_FIGURE,
    average_rating,
    mask_emails_in,
    percent_label,
    rating_label,
    response_rate,
    stars,
    stars_in_words,
    stella_channel_label,
    teammate_label,
)
from surveys.reporting.status import StatusFilter

# The status page's filters the report takes: its figures are per teammate, team or channel, whatever the
# reason or conversation.
TEAMMATE_FILTERS = ("account", "date_from", "date_to")
# What the report groups by, and the column of the daily counts each reads.
GROUPS = {"teammate": "teammate", "team": "team", "channel": "channel"}
GROUP_LABELS = {"teammate": "Teammate", "team": "Team", "channel": "Channel"}
# Below this many ratings a share or an average says little: the report cautions.
FEW_RESPONSES = 10
# "Low ratings": the ratings the satisfaction share leaves out.
LOW_RATINGS = (1, 2, 3)
NO_TEAM = "No team given"
FIGURE_COLUMNS = ("requested", "delivered", "responded", "rating_sum", "rating_count")
STAR_COLUMNS = ("stars_1", "stars_2", "stars_3", "stars_4", "stars_5")


@dataclass(frozen=True)
class Figures:
    """What the counts add up to for one row and period."""

    requested: int = 0
    delivered: int = 0
    responded: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    stars: tuple[int, ...] = (0, 0, 0, 0, 0)  # how many 1★, 2★ … 5★

    def plus(self, other: Figures) -> Figures:
        return Figures(
            requested=self.requested + other.requested,
            delivered=self.delivered + other.delivered,
            responded=self.responded + other.responded,
            rating_sum=self.rating_sum + other.rating_sum,
            rating_count=self.rating_count + other.rating_count,
            stars=tuple(a + b for a, b in zip(self.stars, other.stars, strict=True)),
        )

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.responded, self.delivered)

    @property
    def average_rating(self) -> float | None:
        return average_rating(self.rating_sum, self.rating_count)

    @property
    def satisfied(self) -> int:
        """Ratings of 4 or 5 stars."""
        return self.stars[3] + self.stars[4]

    @property
    def satisfaction(self) -> float | None:
        """4–5★ ratings out of all ratings, 0 to 1; None when nobody rated."""
        return round(self.satisfied / self.rating_count, 4) if self.rating_count else None

    @property
    def few(self) -> bool:
        """Too few ratings to trust a share or an average (some, but fewer than FEW_RESPONSES)."""
        return self.rating_count < FEW_RESPONSES

    @property
    def response_rate_label(self) -> str:
        return percent_label(self.response_rate)

    @property
    def average_rating_label(self) -> str:
        return rating_label(self.average_rating)

    @property
    def satisfaction_label(self) -> str:
        return percent_label(self.satisfaction)

    @property
    def spread(self) -> list[Spread]:
        """Each star's count and share of the ratings, 5★ first, as the report draws them."""
        return [
            Spread(star=star, count=self.stars[star - 1], share=self.stars[star - 1] / (self.rating_count or 1))
            for star in range(5, 0, -1)
        ]

    @property
    def low(self) -> int:
        return sum(self.stars[star - 1] for star in LOW_RATINGS)


@dataclass(frozen=True)
class Spread:
    star: int
    count: int
    share: float  # 0 to 1

    @property
    def percent(self) -> int:
        return round(self.share * 100)


@dataclass(frozen=True)
class Week:
    """One week (Monday to Sunday, cut to the chosen days) of a row: its ratings and how many were 4–5★."""

    starts: date
    ratings: int = 0
    satisfied: int = 0

    @property
    def satisfaction(self) -> float | None:
        return round(self.satisfied / self.ratings, 4) if self.ratings else None

    @property
    def label(self) -> str:
        share = percent_label(self.satisfaction)
        if not self.ratings:
            return f"Week of {self.starts:%-d %b}: no ratings"
        return f"Week of {self.starts:%-d %b}: {share} satisfied, of {self.ratings} rating{'s' if self.ratings != 1 else ''}"


@dataclass(frozen=True)
class TeammateRow(Figures):
    """One teammate, team or channel over the chosen days (with every key empty: everyone's total), and the same
    over the days just before, as many."""

    group: str = "teammate"
    teammate: str = ""  # the Stella employee's email, else their custom id; empty: Stella named nobody
    teammate_name: str = ""
    team: str = ""  # the teammate's team leader in Stella
    channel: str = ""  # in Stella's words
    previous: Figures = field(default_factory=Figures)
    weeks: tuple[Week, ...] = ()
    total: bool = False

    @property
    def label(self) -> str:
        if self.total:
            return "Total"
        if self.group == "team":
            return displayable(self.team) or NO_TEAM
        if self.group == "channel":
            return self.channel_label
        return teammate_label(self.teammate, self.teammate_name)

    @property
    def channel_label(self) -> str:
        return stella_channel_label(self.channel)

    @property
    def key(self) -> str:
        """What the drill-down narrows to: the teammate, team or channel."""
        return getattr(self, GROUPS[self.group])

    @property
    def change(self) -> float | None:
        """The satisfaction share's change against the days before, in points (0.05: 5 points up)."""
        if self.satisfaction is None or self.previous.satisfaction is None:
            return None
        return round(self.satisfaction - self.previous.satisfaction, 4)

    @property
    def change_label(self) -> str:
        if self.change is None:
            return NO_FIGURE
        points = round(self.change * 100)
        return "±0 pts" if points == 0 else f"{'+' if points > 0 else '−'}{abs(points)} pts"

    @property
    def spread_bars(self) -> list[Bar]:
        return spread_bars(self)

    @property
    def trend_bars(self) -> list[Bar]:
        return trend_bars(self.weeks)

    @property
    def caution(self) -> str:
        """Why not to trust the row's share and average, if so."""
        if not self.rating_count or not self.few:
            return ""
        return f"Only {self.rating_count} rating{'s' if self.rating_count != 1 else ''}: too few to trust"

    @property
    def change_few(self) -> bool:
        """The change rests on too few ratings, now or before."""
        return self.change is not None and (self.few or self.previous.few)


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
    column = GROUPS[group]
    previous_from, previous_to = previous_period(status_filter)
    now, before = Q(day__gte=status_filter.date_from), Q(day__lt=status_filter.date_from)
    sums = {
        f"{name}{suffix}": Sum(name, filter=period)
        for name in (*FIGURE_COLUMNS, *STAR_COLUMNS)
        for suffix, period in (("_now", now), ("_before", before))
    }
    grouped = (
        _counts(status_filter, since=previous_from, bots=bots)
        .values(column)
        .annotate(name=Max("teammate_name"), leader=Max("team"), **sums)
        .order_by(column)
    )
    weekly: dict[str, dict[date, Week]] = {}
    per_week = (
        _counts(status_filter, since=status_filter.date_from, bots=bots)
        .annotate(week=TruncWeek("day"))
        .values(column, "week")
        .annotate(ratings=Sum("rating_count"), satisfied=Sum(F("stars_4") + F("stars_5")))
        .order_by()
    )
    for row in per_week:
        week = _as_date(row["week"])
        weekly.setdefault(row[column], {})[week] = Week(week, row["ratings"] or 0, row["satisfied"] or 0)
    weeks = weeks_of(status_filter.date_from, status_filter.date_to)
    rows: list[TeammateRow] = []
    previous_total = Figures()
    for row in grouped:
        current, previous = _figures(row, "_now"), _figures(row, "_before")
        previous_total = previous_total.plus(previous)
        if not current.requested:
            continue
        key = row[column]
        rows.append(
            _row(
                current,
                group=group,
                teammate=key if group == "teammate" else "",
                teammate_name=(row["name"] or "") if group == "teammate" else "",
                team=key if group == "team" else ((row["leader"] or "") if group == "teammate" else ""),
                channel=key if group == "channel" else "",
                previous=previous,
                weeks=tuple(weekly.get(key, {}).get(week, Week(week)) for week in weeks),
            )
        )
    current_total = Figures()
    for row in rows:
        current_total = current_total.plus(row)
    totals = _row(
        current_total,
        group=group,
        previous=previous_total,
        weeks=tuple(
            Week(week, sum(row.weeks[n].ratings for row in rows), sum(row.weeks[n].satisfied for row in rows))
            for n, week in enumerate(weeks)
        ),
        total=True,
    )
    sort = sort if sort.lstrip("-") in SORTS else DEFAULT_SORT
    return TeammateStats(
        rows=sorted_rows(rows, sort),
        totals=totals,
        weeks=weeks,
        group=group,
        previous_from=previous_from,
        previous_to=previous_to,
        sort=sort,
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
    a rating ("low", "satisfied" or a star); one page of them (a count and a page: two queries), and the page's
    answers as the drill-down shows them."""
    records = Feedback.objects.filter(
        is_recovery=False,
        request_created_at__gte=status_filter.starts,
        request_created_at__lt=status_filter.ends,
        response_received_at__isnull=False,
    )
    if status_filter.account_ids is not None:
        records = records.filter(account_id__in=status_filter.account_ids)
    if key is not None:
        if group == "teammate":
            records = records.filter(Q(employee_email=key) | Q(employee_email="", employee_custom_id=key))
        else:
            records = records.filter(**{GROUPS[group]: key})
    if not bots:
        records = records.exclude(_bot_teammate("employee_email")).exclude(_bot_teammate("employee_custom_id"))
    if rating == "low":
        records = records.filter(star_rating__in=LOW_RATINGS)
    elif rating == "satisfied":
        records = records.filter(star_rating__in=(4, 5))
    elif rating in RATINGS and rating:
        records = records.filter(star_rating=int(rating))
    records = records.select_related("account", "survey_request").order_by("-response_received_at", "-pk")
    found = Paginator(records, BEHIND_PAGE_SIZE).get_page(page)
    answers = [
        Behind(
            responded_at=record.response_received_at,
            account=record.account.name,
            conversation_id=displayable(record.ext_interaction_id),
            conversation_url=conversation_url(record),
            teammate=teammate_label(record.employee_email or record.employee_custom_id, record.employee_name),
            channel=stella_channel_label(record.channel),
            star_rating=record.star_rating,
            comment=mask_emails_in(displayable(record.comment)),
        )
        for record in found.object_list
    ]
    return found, answers


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


# ---- How the report draws a row's stars and weeks (SVG, sized by attributes: the CSP allows no inline style) ----


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    height: float
    css: str
    label: str
    rating: str = ""  # the drill-down's rating filter for the bar


def spread_bars(figures: Figures) -> list[Bar]:
    """The stars' spread as one bar 100 wide, 5★ on the left: a segment per star, as wide as its share."""
    bars, x = [], 0.0
    for spread in figures.spread:
        if not spread.count:
            continue
        width = round(spread.share * 100, 2)
        label = f"{spread.star}★: {spread.count} ({spread.percent}%)"
        bars.append(Bar(x=x, width=width, y=0, height=10, css=f"s{spread.star}", label=label, rating=str(spread.star)))
        x = round(x + width, 2)
    return bars


TREND_HEIGHT = 24


def trend_bars(weeks: tuple[Week, ...]) -> list[Bar]:
    """Each week's satisfaction share as a bar (100 wide in all, TREND_HEIGHT high at 100%); a week with no
    rating is a dot on the baseline; a week with few ratings is drawn paler."""
    if not weeks:
        return []
    step = 100 / len(weeks)
    bars = []
    for n, week in enumerate(weeks):
        share = week.satisfaction
        height = 1.0 if share is None else max(1.0, round(share * TREND_HEIGHT, 2))
        css = "none" if share is None else ("few" if week.ratings < FEW_RESPONSES else "")
        bars.append(
            Bar(
                x=round(n * step + step * 0.15, 2),
                width=round(step * 0.7, 2),
                y=round(TREND_HEIGHT - height, 2),
                height=height,
                css=css,
                label=week.label,
            )
        )
    return bars
