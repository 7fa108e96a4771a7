"""The API Status tabs, as on Stella's own page: Requests, Test Requests, Invalid Requests."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from portal.admin_helpers import NoCountPaginator, ReadOnlyAdminMixin
from surveys.models import ApiRequest, InvalidApiRequest, SurveyRequest, TestApiRequest
from surveys.presenters import KNOWN_MESSAGES, api_request_reason
from surveys.services import RESENDABLE


class ErrorMessageFilter(admin.SimpleListFilter):
    """Stella's messages and ours, as a fixed list: no query over the log to find them."""

    title = "error message"
    parameter_name = "error"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(message, message) for message in KNOWN_MESSAGES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(error_message=self.value()) if self.value() else queryset


@admin.register(ApiRequest)
class ApiRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at", "account", "conversation", "channel", "customer_email", "teammate", "mode", "outcome",
        "error",
    ]  # fmt: skip
    list_filter = ["account", ("created_at", admin.DateFieldListFilter), "mode", ErrorMessageFilter]
    list_select_related = ["account", "survey_request"]
    list_max_show_all = 0  # "show all" on a million rows would be no kindness
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the log
    search_fields = ["=survey_request__conversation_id"]
    show_full_result_count = False
    actions = ["resend"]
    fields = [
        "created_at", "account", "survey_request_link", "mode", "method", "url", "request_headers", "request_body",
        "status_code", "response_body", "duration_ms", "outcome", "error_message", "explanation", "finished_at",
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

    @admin.display(description="channel")
    def channel(self, api_request: ApiRequest) -> str:
        return api_request.survey_request.get_channel_display()

    @admin.display(description="customer email")
    def customer_email(self, api_request: ApiRequest) -> str:
        return api_request.survey_request.customer_email

    @admin.display(description="teammate")
    def teammate(self, api_request: ApiRequest) -> str:
        survey_request = api_request.survey_request
        return survey_request.teammate_name or survey_request.teammate_email

    @admin.display(description="error", ordering="error_message")
    def error(self, api_request: ApiRequest) -> str:
        if not api_request.error_message:
            return ""
        where = "before reaching Stella" if api_request.rejected_locally else "by Stella"
        message, explanation = api_request_reason(api_request)
        return format_html('<span title="{} ({})">{}</span>', explanation, where, message)

    @admin.display(description="survey request")
    def survey_request_link(self, api_request: ApiRequest) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:surveys_surveyrequest_change", args=[api_request.survey_request_id]),
            api_request.survey_request,
        )

    @admin.display(description="in plain words")
    def explanation(self, api_request: ApiRequest) -> str:
        return api_request_reason(api_request)[1]

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("surveys.change_surveyrequest")

    @admin.action(
        description="Resend the selected requests' surveys (invalid, failed or ambiguous)", permissions=["resend"]
    )
    def resend(self, request: HttpRequest, queryset: QuerySet[ApiRequest]) -> Any:
        from surveys.admin.survey_requests import resend_with_confirmation

        survey_requests = SurveyRequest.objects.filter(
            pk__in=queryset.values("survey_request_id"), status__in=RESENDABLE
        )
        return resend_with_confirmation(self, request, survey_requests, selected=queryset)


@admin.register(TestApiRequest)
class TestApiRequestAdmin(ApiRequestAdmin):
    """Every request made to Stella with a test key."""

    list_filter = ["account", ("created_at", admin.DateFieldListFilter), "outcome", ErrorMessageFilter]


@admin.register(InvalidApiRequest)
class InvalidApiRequestAdmin(ApiRequestAdmin):
    """Every request rejected, by Stella or before reaching it, from either key, with the reason."""

    list_display = ["created_at", "account", "conversation", "channel", "customer_email", "teammate", "mode", "error"]
