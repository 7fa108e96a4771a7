"""The satisfaction report's pages (the status page's Teammates view, and the answers behind a figure): read-only,
behind login, the user's accounts only. Its CSV is with the status page's, in views.py."""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Page
from django.db.models import QuerySet
from django.urls import reverse
from django.views.generic import TemplateView

from surveys.models import Account
from surveys.reporting.recovery import recovery_counts
from surveys.reporting.status import StatusFilter, StatusFilterForm
from surveys.reporting.teammate_figures import FEW_RESPONSES, GROUPS, Bar, TeammateRow
from surveys.reporting.teammate_stats import (
    GROUP_LABELS,
    RATINGS,
    TEAMMATE_FILTERS,
    TeammateStats,
    feedback_behind,
    feedback_freshness,
    group_label,
    teammate_name_of,
    teammate_stats,
)
from surveys.reporting.view_helpers import (
    defaults_shown,
    page_head,
    query_string,
    report_choices,
    report_query,
    teammate_query,
)
from surveys.selectors import accounts_visible_to


class TeammatesView(LoginRequiredMixin, TemplateView):
    """The satisfaction report: per teammate, team or channel over the chosen days, the surveys Stella sent and
    had answered, the share of 4–5★ ratings, the stars' spread, the weeks' trend and the change against the days
    before, each figure linked to the answers behind it; the user's accounts only."""

    template_name = "surveys/teammates.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(teammate_query(self.request.GET), accounts=accounts)
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        query = teammate_query(shown.data)
        group, bots, sort = report_choices(self.request.GET)
        stats = teammate_stats(status_filter, group=group, bots=bots, sort=sort)
        here = report_query(query, group, bots)
        behind = reverse("status_teammate_responses")
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            stats=stats,
            few=FEW_RESPONSES,
            sampled=_sampled(accounts, status_filter),
            rows=[_linked(row, _behind_urls(behind, here, row)) for row in stats.rows],
            totals=_linked(stats.totals, _behind_urls(behind, here, stats.totals)),
            keep=[(name, value) for name, value in report_query({}, group, bots, sort=sort).items()],
            headers=_sort_headers(here, stats),
            groups=[
                (GROUP_LABELS[name], query_string(report_query(query, name, bots)), name == group) for name in GROUPS
            ],
            bots=bots,
            bots_url=query_string(report_query(query, group, not bots, sort=self.request.GET.get("sort", ""))),
            freshness=feedback_freshness(status_filter),
            recovery=recovery_counts(status_filter),
            status_url=reverse("status") + query_string(query),
            export_url=reverse("status_teammates_export")
            + query_string(report_query(query, group, bots, sort=stats.sort)),
            **page_head(accounts),
            **kwargs,
        )


# The report's columns: (label, sort name or "", what it means). Team only when grouped by teammate.
REPORT_COLUMNS = [
    ("Sent", "sent", "Surveys Stella sent that didn't bounce for good"),
    ("Responses", "responses", "Customers who rated the teammate"),
    ("Response rate", "response_rate", "Customers who answered, out of the surveys sent"),
    ("Satisfaction", "satisfaction", "4–5★ ratings out of all ratings"),
    ("Average", "average", "The mean star rating, out of 5"),
    ("Ratings", "", "How many of each star, 5★ first: click one to read those answers"),
    ("By week", "", "The satisfaction share of each week, Monday to Sunday"),
    ("Change", "change", "The satisfaction share against the days just before, as many"),
]


def _sampled(accounts: QuerySet[Account], status_filter: StatusFilter) -> list[tuple[str, int]]:
    """The accounts shown that survey a sample of their closures, and how much: their figures count the sample."""
    shown = accounts.filter(integration__sample_percent__lt=100)
    if status_filter.account_ids is not None:
        shown = shown.filter(pk__in=status_filter.account_ids)
    return list(shown.values_list("name", "integration__sample_percent"))


def _sort_headers(here: Mapping[str, str], stats: TeammateStats) -> list[dict[str, str]]:
    """Each column's header: its link sorts by it (highest first; again: lowest first), and which way it is."""
    columns = [(GROUP_LABELS[stats.group], "name", "")]
    if stats.group == "teammate":
        columns.append(("Team", "team", "The teammate's team leader in Stella"))
    headers = []
    for label, name, title in [*columns, *REPORT_COLUMNS]:
        header = {"label": label, "title": title, "url": "", "aria_sort": "", "name": name}
        if name:
            first = name if name in ("name", "team") else f"-{name}"  # words A to Z, figures highest first
            current = stats.sort.lstrip("-") == name
            chosen = ("" if stats.sort.startswith("-") else "-") + name if current else first
            header["url"] = query_string({**here, "sort": chosen})
            if current:
                header["aria_sort"] = "descending" if stats.sort.startswith("-") else "ascending"
        headers.append(header)
    return headers


def _linked(row: TeammateRow, urls: dict[str, str]) -> tuple[TeammateRow, dict[str, str], list[tuple[Bar, str]]]:
    """A row, the links from its figures, and each segment of its stars' spread with its link."""
    return row, urls, [(bar, urls[bar.rating]) for bar in row.spread_bars]


def _behind_urls(behind: str, here: Mapping[str, str], row: TeammateRow) -> dict[str, str]:
    """Links from a row's figures to the answers behind them: all, the satisfied, the low, each star."""
    who = {} if row.total else {"key": row.key}
    base = {**here, **who}
    urls = {
        rating or "all": behind + query_string({**base, **({"rating": rating} if rating else {})}) for rating in RATINGS
    }
    return urls


class TeammateResponsesView(LoginRequiredMixin, TemplateView):
    """The answers behind a figure of the report: the conversations (linked to Intercom), their stars and
    comments, newest first, with a filter for low ratings."""

    template_name = "surveys/teammate_responses.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(teammate_query(self.request.GET), accounts=accounts)
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        query = teammate_query(shown.data)
        group, bots, _ = report_choices(self.request.GET)
        key = self.request.GET.get("key")
        rating = self.request.GET.get("rating", "")
        rating = rating if rating in RATINGS else ""
        found, answers = feedback_behind(
            status_filter, group=group, key=key, rating=rating, bots=bots, page=self.request.GET.get("page", 1)
        )
        here = {**report_query(query, group, bots), **({"key": key} if key is not None else {})}
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            who=_who(status_filter, group, key),
            answers=answers,
            keep=[(name, value) for name, value in here.items() if name not in TEAMMATE_FILTERS]
            + ([("rating", rating)] if rating else []),
            group_label=GROUP_LABELS[group],
            found=found,
            rating=rating,
            ratings=[(value, label, query_string(_with_rating(here, value))) for value, label in RATINGS.items()],
            here=here,
            **_page_links(found, _with_rating(here, rating)),
            report_url=reverse("status_teammates") + query_string(report_query(query, group, bots)),
            status_url=reverse("status") + query_string(query),
            **page_head(accounts),
            **kwargs,
        )


def _who(status_filter: StatusFilter, group: str, key: str | None) -> str:
    """Whose answers these are: the teammate's name in Stella, else the key as the report names it; or everyone's."""
    if key is None:
        return "Everyone"
    name = teammate_name_of(status_filter, key) if group == "teammate" and key else ""
    return name or group_label(group, key)


def _with_rating(query: dict[str, str], rating: str) -> dict[str, str]:
    return {**query, "rating": rating} if rating else query


def _page_links(found: Page, query: dict[str, str]) -> dict[str, str]:
    """The links to the next (older) and previous (newer) page of answers, if any."""
    return {
        "older_url": query_string(query, page=str(found.next_page_number())) if found.has_next() else "",
        "newer_url": query_string(query, page=str(found.previous_page_number())) if found.has_previous() else "",
    }
