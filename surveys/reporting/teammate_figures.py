"""What the satisfaction report's figures are for one teammate, team or channel (surveys/reporting/teammate_stats.py
reads them): the counts of a period, the stars' spread, the weeks, the change against the days before, and how the
report draws a row's stars and weeks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from portal.text import displayable
from surveys.reporting.presenters import (
    NO_FIGURE,
    average_rating,
    percent_label,
    rating_label,
    response_rate,
    stella_channel_label,
    teammate_label,
)

# What the report groups by, and the column of the daily counts each reads.
GROUPS = {"teammate": "teammate", "team": "team", "channel": "channel"}
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
