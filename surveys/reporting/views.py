"""The API Request Status page for support teams: read-only, behind login, their accounts only."""

from collections.abc import Iterator, Mapping
from datetime import tzinfo
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import View
from django.views.generic import TemplateView

from portal.csv_export import Cell, csv_response
from portal.middleware import user_time_zone_save
from portal.models import time_zones
from surveys.models import Account
from surveys.reporting.attention import support_alerts
from surveys.reporting.presenters import present
from surveys.reporting.status import (
    CHART_KINDS,
    DEFAULT_DAYS,
    SURVEY_REQUESTS,
    TABS,
    TABS_BY_KEY,
    Counts,
    StatusFilter,
    StatusFilterForm,
    Tab,
    TimeZoneForm,
    status_chart,
    status_counts,
    status_page,
    status_rows,
)
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
from surveys.selectors import accounts_visible_to

# What the page shows instead of a field the user got wrong, until it is fixed.
DEFAULTS_SHOWN = {
    "date_from": f"the last {DEFAULT_DAYS} days",
    "account": "all your accounts",
    "channel": "any channel",
    "reason": "any reason",
    "q": "every conversation",
    "tab": f"the {TABS[0].label} tab",
}


class StatusPageView(LoginRequiredMixin, TemplateView):
    template_name = "surveys/status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(self.request.GET, accounts=accounts)
        # A mistake in the filter keeps the page: what was typed stays in the fields with the reason beside it,
        # and the rest of the page shows the filter less the mistake (the defaults in its place) and says so.
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        rows, older = status_page(status_filter)
        counts = status_counts(status_filter)
        query = {key: value for key, value in shown.data.items() if key not in ("before", "tab") and value}
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=_defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            tab=status_filter.tab,
            tabs=[(tab, _count(counts, tab), _url(query, tab=tab.key)) for tab in TABS],
            rows=[present(row) for row in rows],
            stella_column=status_filter.tab.listing is SURVEY_REQUESTS,
            **_status_links(query, status_filter, older=older),
            chart=status_chart(counts, status_filter),
            legend=[(kind.label, kind.value) for kind in CHART_KINDS],  # coloured by portal.css, as the bars are
            **_page_head(accounts),
            **kwargs,
        )


def _status_links(query: dict[str, str], status_filter: StatusFilter, *, older: str) -> dict[str, str]:
    """Where the page's links go, keeping its filter: the next page (rows `older` than these), the first, the
    export and the Teammates view."""
    tab = status_filter.tab.key
    return {
        "older_url": _url(query, tab=tab, before=older) if older else "",
        "newest_url": _url(query, tab=tab) if status_filter.before else "",
        "export_url": reverse("status_export") + _url(query, tab=tab),
        "teammates_url": reverse("status_teammates") + _url(_teammate_query(query)),
    }


def _page_head(accounts: QuerySet[Account]) -> dict[str, Any]:
    """What the head of every status view shows: alerts, and the zone times are shown in."""
    return {
        "alerts": support_alerts(accounts, now=timezone.now()),
        "time_zone": timezone.get_current_timezone_name(),
        "days_zone": timezone.get_default_timezone_name(),
        "time_zones_grouped": list(zip(("Common", "Every zone"), time_zones(), strict=True)),
        "invalid_tab": TABS_BY_KEY["invalid"],
    }


def _teammate_query(params: Mapping[str, str]) -> dict[str, str]:
    """The filters of the status page the Teammates view takes (account and dates), as given."""
    return {name: params[name] for name in TEAMMATE_FILTERS if params.get(name)}


# The report's own choices, beside the status page's filters: what it groups by, bots in or out, the sort.
REPORT_CHOICES = ("group", "bots", "sort")


def _report_choices(params: Mapping[str, str]) -> tuple[str, bool, str]:
    """The grouping (teammate unless team or channel is asked for), whether bots are counted, and the sort."""
    group = params.get("group", "")
    return (group if group in GROUPS else "teammate"), params.get("bots") == "1", params.get("sort", "")


def _report_query(query: Mapping[str, str], group: str, bots: bool, **extra: str) -> dict[str, str]:
    """The link's parameters: the filters, then the report's choices where they aren't the defaults."""
    return {
        **query,
        **({"group": group} if group != "teammate" else {}),
        **({"bots": "1"} if bots else {}),
        **{name: value for name, value in extra.items() if value},
    }


class TeammatesView(LoginRequiredMixin, TemplateView):
    """The satisfaction report: per teammate, team or channel over the chosen days, the surveys Stella sent and
    had answered, the share of 4–5★ ratings, the stars' spread, the weeks' trend and the change against the days
    before, each figure linked to the answers behind it; the user's accounts only."""

    template_name = "surveys/teammates.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(_teammate_query(self.request.GET), accounts=accounts)
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        query = _teammate_query(shown.data)
        group, bots, sort = _report_choices(self.request.GET)
        stats = teammate_stats(status_filter, group=group, bots=bots, sort=sort)
        here = _report_query(query, group, bots)
        behind = reverse("status_teammate_responses")
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=_defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            stats=stats,
            few=FEW_RESPONSES,
            rows=[_linked(row, _behind_urls(behind, here, row)) for row in stats.rows],
            totals=_linked(stats.totals, _behind_urls(behind, here, stats.totals)),
            keep=[(name, value) for name, value in _report_query({}, group, bots, sort=sort).items()],
            headers=_sort_headers(here, stats),
            groups=[(GROUP_LABELS[name], _url(_report_query(query, name, bots)), name == group) for name in GROUPS],
            bots=bots,
            bots_url=_url(_report_query(query, group, not bots, sort=self.request.GET.get("sort", ""))),
            freshness=feedback_freshness(status_filter),
            status_url=reverse("status") + _url(query),
            export_url=reverse("status_teammates_export") + _url(_report_query(query, group, bots, sort=stats.sort)),
            **_page_head(accounts),
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
            header["url"] = _url({**here, "sort": chosen})
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
    urls = {rating or "all": behind + _url({**base, **({"rating": rating} if rating else {})}) for rating in RATINGS}
    return urls


class TeammateResponsesView(LoginRequiredMixin, TemplateView):
    """The answers behind a figure of the report: the conversations (linked to Intercom), their stars and
    comments, newest first, with a filter for low ratings."""

    template_name = "surveys/teammate_responses.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(_teammate_query(self.request.GET), accounts=accounts)
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        query = _teammate_query(shown.data)
        group, bots, _ = _report_choices(self.request.GET)
        key = self.request.GET.get("key")
        rating = self.request.GET.get("rating", "")
        rating = rating if rating in RATINGS else ""
        found, answers = feedback_behind(
            status_filter, group=group, key=key, rating=rating, bots=bots, page=self.request.GET.get("page", 1)
        )
        here = {**_report_query(query, group, bots), **({"key": key} if key is not None else {})}
        name = teammate_name_of(status_filter, key) if group == "teammate" and key else ""
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=_defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            who=name or (group_label(group, key) if key is not None else "Everyone"),
            answers=answers,
            keep=[(name, value) for name, value in here.items() if name not in TEAMMATE_FILTERS]
            + ([("rating", rating)] if rating else []),
            group_label=GROUP_LABELS[group],
            found=found,
            rating=rating,
            ratings=[
                (value, label, _url({**here, **({"rating": value} if value else {})}))
                for value, label in RATINGS.items()
            ],
            here=here,
            older_url=_url({**here, **({"rating": rating} if rating else {}), "page": str(found.next_page_number())})
            if found.has_next()
            else "",
            newer_url=_url(
                {**here, **({"rating": rating} if rating else {}), "page": str(found.previous_page_number())}
            )
            if found.has_previous()
            else "",
            report_url=reverse("status_teammates") + _url(_report_query(query, group, bots)),
            status_url=reverse("status") + _url(query),
            **_page_head(accounts),
            **kwargs,
        )


class TeammatesExportView(LoginRequiredMixin, View):
    """The satisfaction report as CSV: the same rows, figures and order, then the totals."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(_teammate_query(request.GET), accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        group, bots, sort = _report_choices(request.GET)
        stats = teammate_stats(status_filter, group=group, bots=bots, sort=sort)
        rows = [[row.teammate, row.teammate_name, row.team, row.channel, *_figures(row)] for row in stats.rows]
        totals: list[Cell] = ["", TOTAL, "", "", *_figures(stats.totals)]
        header = [*TEAMMATE_COLUMNS, *(f"satisfaction_week_of_{week}" for week in stats.weeks)]
        filename = f"teammates-{status_filter.date_from}-{status_filter.date_to}.csv"
        return csv_response(filename, header, [*rows, totals])


TEAMMATE_COLUMNS = [
    "teammate",
    "teammate_name",
    "team",
    "channel",
    "requests",
    "delivered",
    "responded",
    "ratings",
    "response_rate",
    "average_rating",
    "satisfied",
    "satisfaction",
    "stars_1",
    "stars_2",
    "stars_3",
    "stars_4",
    "stars_5",
    "few_ratings",
    "previous_ratings",
    "previous_satisfaction",
    "change",
]
TOTAL = "Total"


def _figures(row: TeammateRow) -> list[Cell]:
    """A row's numbers as the API gives them: rates and shares from 0 to 1, the rating to one decimal, the change
    in share (0.05: 5 points up), empty for none; then each week's satisfaction share."""
    return [
        row.requested,
        row.delivered,
        row.responded,
        row.rating_count,
        row.response_rate,
        row.average_rating,
        row.satisfied,
        row.satisfaction,
        *row.stars,
        "yes" if row.few else "no",
        row.previous.rating_count,
        row.previous.satisfaction,
        row.change,
        *(week.satisfaction for week in row.weeks),
    ]


def _count(counts: Counts, tab: Tab) -> int | None:
    """The tab's count in the filter's accounts and dates; None for a tab that counts nothing of its own."""
    return counts.per_kind.get(tab.count, 0) if tab.count else None


def _defaults_shown(form: StatusFilterForm) -> str:
    """What the page shows in place of the wrong fields, in words: "the last 30 days and any channel"."""
    shown = [DEFAULTS_SHOWN[name] for name in form.wrong_fields() if name in DEFAULTS_SHOWN]
    return " and ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)


class TimeZoneView(LoginRequiredMixin, View):
    """The zone the user reads times in, chosen from the status page's header; back to the page they were on."""

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TimeZoneForm(request.POST)
        if form.is_valid():
            user_time_zone_save(request, form.cleaned_data["time_zone"])
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("status")
        return HttpResponseRedirect(back)


class StatusExportView(LoginRequiredMixin, View):
    """The current tab and filter as CSV: every matching row, streamed, customers masked as on the page.

    UTF-8 with a byte order mark, so that Excel reads the masked names and the dashes right; times in ISO 8601
    with their offset, in the user's zone."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(request.GET, accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        rows = status_rows(status_filter).iterator(chunk_size=2000)
        filename = f"{status_filter.tab.key}-{status_filter.date_from}-{status_filter.date_to}.csv"
        # Streamed after this view returns, when the user's zone is no longer active: the rows take it along.
        return csv_response(filename, COLUMNS, _csv_rows(rows, timezone.get_current_timezone()))


COLUMNS = [
    "time",
    "account",
    "conversation",
    "conversation_url",
    "channel",
    "customer_name",
    "customer_email",
    "teammate",
    "mode",
    "outcome",
    "reason",
    "explanation",
    "delivery_status",
    "star_rating",
    "comment",
    "reconcile",
]


def _csv_rows(rows: Iterator, zone: tzinfo) -> Iterator[list[Cell]]:
    for row in rows:
        with timezone.override(zone):  # for the times in the words too ("resent … on 2026-11-29 10:14 CET")
            shown = present(row)
        yield [
            shown.time.astimezone(zone).isoformat(),
            shown.account,
            shown.conversation_id,
            shown.conversation_url,
            shown.channel,
            shown.customer_name,
            shown.customer,
            shown.teammate,
            shown.mode,
            shown.outcome,
            shown.reason,
            shown.explanation,
            shown.delivery_status,
            shown.star_rating,
            shown.comment,
            shown.reconcile,
        ]


def _url(query: dict[str, str], **extra: str) -> str:
    return "?" + urlencode({**query, **extra})
