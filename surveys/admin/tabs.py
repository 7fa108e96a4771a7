"""The tabs above the request lists, as on Stella's API Status page: Requests | Test Requests |
Invalid Requests, then the survey requests by outcome, each with its count. Moving between tabs
keeps the filters that still apply: all of them within one list, the account and search across."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode

from surveys.models import CallCount, SurveyOutcome
from surveys.selectors import accounts_visible_to, daily_count_totals

PAGE_PARAMS = {"p", "o", "e", "_changelist_filters"}  # paging and sorting belong to one list
SHARED_PARAMS = ("account__id__exact", "q")  # mean the same on every list
OUTCOME_PARAM = "outcome"
# The one resend action of every request list, named the same on each.
RESEND_LABEL = "Resend the selected requests once the cause is fixed (invalid, failed or ambiguous ones)"


@dataclass(frozen=True)
class AdminTab:
    key: str
    label: str
    changelist: str  # the admin URL name of the list the tab shows
    count_kind: str  # the DailyCount kind counted; empty: the tab counts nothing of its own
    outcome: str = ""  # survey requests with this outcome only

    @property
    def family(self) -> str:
        return "survey" if self.outcome else "call"

    @property
    def url(self) -> str:
        return self.url_with({})

    def url_with(self, query: dict[str, str]) -> str:
        query = {**query, OUTCOME_PARAM: self.outcome} if self.outcome else query
        return reverse(self.changelist) + (f"?{urlencode(query)}" if query else "")


ADMIN_TABS = [
    AdminTab("requests", "Requests", "admin:surveys_apirequest_changelist", ""),
    AdminTab("test", "Test Requests", "admin:surveys_testapirequest_changelist", CallCount.TEST_CALLS),
    AdminTab("invalid", "Invalid Requests", "admin:surveys_invalidapirequest_changelist", CallCount.INVALID_CALLS),
    *(
        AdminTab(outcome.value, str(outcome.label), "admin:surveys_surveyrequest_changelist", outcome, outcome)
        for outcome in (
            SurveyOutcome.SENT,
            SurveyOutcome.DO_NOT_SEND,
            SurveyOutcome.SUPPRESSED,
            SurveyOutcome.CANCELLED,
            SurveyOutcome.FAILED,
            SurveyOutcome.WAITING,
        )
    ),
]


@dataclass(frozen=True)
class ShownTab:
    label: str
    url: str
    count: int | None
    current: bool


def admin_tabs(request: HttpRequest, current: str, *, family: str) -> list[ShownTab]:
    """The tabs for a list of `family` ("call" or "survey"), `current` being the tab shown (if any);
    counts in the chosen account, all time, from the daily counts (one query, never a scan of the log)."""
    accounts = accounts_visible_to(request.user)
    account_id = request.GET.get("account__id__exact", "")
    if account_id.isdigit():
        accounts = accounts.filter(pk=account_id)
    totals = daily_count_totals(accounts)
    shown = []
    for tab in ADMIN_TABS:
        if tab.family == family:
            query = {k: str(v) for k, v in request.GET.items() if k not in PAGE_PARAMS and k != OUTCOME_PARAM}
        else:
            query = {k: request.GET[k] for k in SHARED_PARAMS if request.GET.get(k)}
        count = totals.get(tab.count_kind, 0) if tab.count_kind else None
        shown.append(ShownTab(tab.label, tab.url_with(query), count, tab.key == current))
    return shown
