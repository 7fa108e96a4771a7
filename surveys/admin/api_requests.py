"""The API Status tabs, as on Stella's own page: Requests, Test Requests, Invalid Requests."""

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from integrations import messages
from portal.admin_helpers import NoCountPaginator, ReadOnlyAdminMixin, name_cell, shortened
from surveys.admin.tabs import RESEND_LABEL, admin_tabs
from surveys.delivery.survey_requests import RESENDABLE
from surveys.models import ApiRequest, InvalidApiRequest, SurveyRequest, TestApiRequest
from surveys.reporting.presenters import RESOLVED_BY_RESEND, api_request_outcome, api_request_reason, channel_label

# What a call's error can be, each name once (integrations/messages.py): a cancellation is never a call's.
CALL_ERRORS = [
    (code, words) for code, words in messages.REASON_CHOICES if messages.MESSAGES[code].kind != messages.Kind.CANCELLED
]


class ErrorMessageFilter(admin.SimpleListFilter):
    """Stella's messages and ours, as a fixed list: no query over the log to find them."""

    title = "error message"
    parameter_name = "error"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return CALL_ERRORS

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        # By code, or by the words it reads as (a link written by hand).
        return queryset.filter(error_code__in=messages.REASON_GROUPS.get(value) or messages.codes_like(value))


class ResolvedFilter(admin.SimpleListFilter):
    """A failure a resend has since fixed needs nothing more: working through the list, hide those."""

    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Still to fix"), ("yes", "Sent since")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(ApiRequest.unresolved_condition())
        if self.value() == "yes":
            return queryset.exclude(ApiRequest.unresolved_condition())
        return queryset


@admin.register(ApiRequest)
class ApiRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # What happened and why first; the rest fits a 1366 px screen, the full text is on the request's page.
    list_display = ["created_at", "call_outcome", "error", "conversation", "account_name", "mode", "teammate"]  # fmt: skip
    list_filter = ["account", ("created_at", admin.DateFieldListFilter), "mode", ErrorMessageFilter]
    change_list_template = "admin/surveys/change_list_tabs.html"
    tab = "requests"
    list_select_related = ["account", "survey_request"]
    list_max_show_all = 0  # "show all" on a million rows would be no kindness
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the log
    search_fields = ["=survey_request__conversation_id"]
    show_full_result_count = False
    actions = ["resend"]
    fields = [
        "created_at", "account", "survey_request_link", "mode", "call_outcome", "error_message", "explanation", "method",
        "url", "request_headers_shown", "request_body_shown", "status_code", "response_body_shown", "duration_ms",
        "finished_at",
    ]  # fmt: skip
    readonly_fields = flatten(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiRequest]:
        return (
            super()
            .get_queryset(request)
            .defer("request_body", "response_body", "request_headers", "survey_request__verdicts")
            .order_by("-created_at", "-pk")
        )

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        try:
            page_number = max(1, int(request.GET.get(PAGE_VAR, 1)))
        except ValueError:
            page_number = 1
        return NoCountPaginator(
            queryset, per_page, page_number=page_number, orphans=orphans, allow_empty_first_page=allow_empty_first_page
        )

    @admin.display(description="conversation", ordering="survey_request__conversation_id")
    def conversation(self, api_request: ApiRequest) -> str:
        survey_request = api_request.survey_request
        return format_html(
            '<a href="{}">{}</a> <a href="{}" target="_blank" rel="noopener" title="Open in Intercom">↗</a>',
            reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk]),
            survey_request.conversation_id,
            survey_request.conversation_url,
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        tabs = admin_tabs(request, self.tab, family="call")
        return super().changelist_view(request, {**(extra_context or {}), "admin_tabs": tabs})

    @admin.display(description="outcome", ordering="outcome")
    def call_outcome(self, api_request: ApiRequest) -> str:
        return api_request_outcome(api_request)

    @admin.display(description="channel")
    def channel(self, api_request: ApiRequest) -> str:
        return channel_label(api_request.survey_request)

    @admin.display(description="customer email")
    def customer_email(self, api_request: ApiRequest) -> str:
        return api_request.survey_request.customer_email

    @admin.display(description="teammate")
    def teammate(self, api_request: ApiRequest) -> str:
        survey_request = api_request.survey_request
        return name_cell(survey_request.teammate_name or survey_request.teammate_email)

    @admin.display(description="account", ordering="account__name")
    def account_name(self, api_request: ApiRequest) -> str:
        return name_cell(api_request.account.name)

    @admin.display(description="error", ordering="error_code")
    def error(self, api_request: ApiRequest) -> str:
        if not api_request.error_message:
            return ""
        where = "before reaching Stella" if api_request.rejected_locally else "by Stella"
        message, explanation = api_request_reason(api_request, csm=True)
        resolved = (
            format_html(' <span class="resolved">✓ {}</span>', RESOLVED_BY_RESEND) if api_request.is_resolved else ""
        )
        return format_html("{}{}", shortened(message, title=f"{explanation} ({where})"), resolved)

    @admin.display(description="request headers")
    def request_headers_shown(self, api_request: ApiRequest) -> str:
        return _json(api_request.request_headers)

    @admin.display(description="request body")
    def request_body_shown(self, api_request: ApiRequest) -> str:
        return _json(api_request.request_body)

    @admin.display(description="response body")
    def response_body_shown(self, api_request: ApiRequest) -> str:
        try:
            return _json(json.loads(api_request.response_body))
        except ValueError:
            return (
                format_html('<pre class="json">{}</pre>', api_request.response_body)
                if api_request.response_body
                else "—"
            )

    @admin.display(description="survey request")
    def survey_request_link(self, api_request: ApiRequest) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:surveys_surveyrequest_change", args=[api_request.survey_request_id]),
            api_request.survey_request,
        )

    @admin.display(description="in plain words")
    def explanation(self, api_request: ApiRequest) -> str:
        return api_request_reason(api_request, csm=True)[1] or "—"

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("surveys.change_surveyrequest")

    @admin.action(description=RESEND_LABEL, permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[ApiRequest]) -> Any:
        from surveys.admin.survey_requests import resend_with_confirmation

        survey_requests = SurveyRequest.objects.filter(
            pk__in=queryset.values("survey_request_id"), status__in=RESENDABLE
        )
        return resend_with_confirmation(self, request, survey_requests, selected=queryset)


def _json(value: Any) -> str:
    """A JSON value as people read it: indented, keys in the order they came."""
    if value in (None, "", {}, []):
        return "—"
    return format_html('<pre class="json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


class SubListAdmin(ApiRequestAdmin):
    """A tab of the log: its own list, reached by the tabs rather than the sidebar."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TestApiRequest)
class TestApiRequestAdmin(SubListAdmin):
    """Every request made to Stella with a test key."""

    list_filter = ["account", ("created_at", admin.DateFieldListFilter), "outcome", ErrorMessageFilter, ResolvedFilter]
    tab = "test"


@admin.register(InvalidApiRequest)
class InvalidApiRequestAdmin(SubListAdmin):
    """Every request rejected, by Stella or before reaching it, from either key, with the reason: grouped
    by reason above the list, with what fixes each."""

    list_display = ["created_at", "error", "conversation", "account_name", "mode", "channel", "teammate"]  # fmt: skip
    list_filter = ["account", ("created_at", admin.DateFieldListFilter), "mode", ErrorMessageFilter, ResolvedFilter]
    change_list_template = "admin/surveys/invalid_requests.html"
    tab = "invalid"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {"reason_groups": invalid_reason_groups(request), "can_resend": self.has_resend_permission(request)}
        return super().changelist_view(request, {**(extra_context or {}), **context})


@dataclass(frozen=True)
class ReasonGroup:
    message: str
    account: str
    count: int
    fix: str
    fix_url: str
    rows_url: str
    teammates: list[tuple[str, int, str]]  # for a teammate's problem: who, how many, where to map them


# The to-fix list reads the latest invalid requests only: what is recent is what a CSM works on, and
# the page stays as fast on a log of millions (counting every invalid row ever would not).
REASON_GROUPS_WINDOW = 1000


@dataclass(frozen=True)
class ReasonGroups:
    groups: list[ReasonGroup]
    window: int  # how many of the latest invalid requests were read
    partial: bool  # True: there are older ones the counts leave out


def invalid_reason_groups(request: HttpRequest, *, window: int = REASON_GROUPS_WINDOW) -> ReasonGroups:
    """The latest `window` invalid requests not resolved by a resend, by reason and account, most first, with the fix
    and where to make it (for a teammate's problem, each teammate involved). One query, over an index."""
    latest = _latest_unresolved(request, window=window + 1)
    counts, teammates = _count_by_reason(latest[:window])
    changelist = reverse("admin:surveys_invalidapirequest_changelist")
    groups = [
        _reason_group(message, account, account_name, count, teammates.get((message, account), Counter()), changelist)
        for (message, account, account_name), count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    return ReasonGroups(groups, window, len(latest) > window)


# An invalid request as the to-fix list reads it: error code and message, account id and name, teammate name and email.
_InvalidRow = tuple[str, str, int, str, str, str]


def _latest_unresolved(request: HttpRequest, *, window: int) -> list[_InvalidRow]:
    """The latest `window` invalid requests no resend has resolved, of the account the list is filtered on if any."""
    rows = InvalidApiRequest.objects.all()
    account_id = request.GET.get("account__id__exact", "")
    if account_id.isdigit():
        rows = rows.filter(account_id=account_id)
    return list(
        rows.filter(ApiRequest.unresolved_condition())
        .order_by("-created_at")
        .values_list(
            "error_code",
            "error_message",
            "account_id",
            "account__name",
            "survey_request__teammate_name",
            "survey_request__teammate_email",
        )[:window]
    )


def _count_by_reason(
    rows: list[_InvalidRow],
) -> tuple[Counter[tuple[str, int, str]], dict[tuple[str, int], Counter[tuple[str, str]]]]:
    """How many of `rows` each (message, account) has, and, for a teammate's problem, how many each teammate has."""
    counts: Counter[tuple[str, int, str]] = Counter()
    teammates: dict[tuple[str, int], Counter[tuple[str, str]]] = {}
    for code, text, account, account_name, teammate_name, teammate_email in rows:
        message = messages.words_of(code, text)
        counts[message, account, account_name] += 1
        entry = messages.message(code)
        if entry is not None and entry.per_teammate:
            teammates.setdefault((message, account), Counter())[teammate_name, teammate_email] += 1
    return counts, teammates


def _reason_group(
    message: str, account: int, account_name: str, count: int, teammates: Counter[tuple[str, str]], changelist: str
) -> ReasonGroup:
    """One line of the to-fix list: the fix the message's registry entry names, and where to make it."""
    code = messages.REASON_GROUPS.get(message, [""])[0]
    entry = messages.message(code)
    filter_by = {"error": code} if code else {}
    return ReasonGroup(
        message=message,
        account=account_name,
        count=count,
        fix=entry.fix if entry else "",
        fix_url=messages.fix_url(entry, account) if entry else _settings_url(account),
        rows_url=changelist + "?" + urlencode({**filter_by, "account__id__exact": str(account), "resolved": "no"}),
        teammates=[
            (name or email, n, messages.fix_url(entry, account, teammate=email or name))
            for (name, email), n in teammates.most_common()
        ]
        if entry
        else [],
    )


def _settings_url(account_id: int) -> str:
    """An unknown message: the account's settings, where most of what Stella refuses is set."""
    return reverse("admin:surveys_account_change", args=[account_id]) + "#integration-group"
