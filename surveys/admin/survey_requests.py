from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten, flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from portal.admin_helpers import ReadOnlyAdminMixin, shortened
from surveys.admin.tabs import OUTCOME_PARAM, admin_tabs
from surveys.models import ApiRequest, SurveyOutcome, SurveyRequest
from surveys.presenters import (
    api_request_outcome,
    channel_label,
    rule_verdicts,
    survey_request_outcome,
    survey_request_reason,
)
from surveys.services import RESENDABLE, survey_requests_resend


def resend_with_confirmation(
    model_admin: admin.ModelAdmin, request: HttpRequest, survey_requests: QuerySet[SurveyRequest], *, selected: QuerySet
) -> TemplateResponse | None:
    """The resend action of both admins: ambiguous requests may already have reached the customer,
    so resending one takes a confirmation first."""
    resendable = list(survey_requests.select_related("account"))
    ambiguous = [s for s in resendable if s.status == SurveyRequest.Status.AMBIGUOUS]
    if ambiguous and request.POST.get("confirmed") != "yes":
        return TemplateResponse(
            request,
            "admin/surveys/confirm_resend.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": "Resend requests that may already have reached the customer?",
                "ambiguous": ambiguous,
                "others": [s for s in resendable if s.status != SurveyRequest.Status.AMBIGUOUS],
                "selected": [str(pk) for pk in selected.values_list("pk", flat=True)],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": model_admin.model._meta,
            },
        )
    resent = survey_requests_resend(resendable, by=request.user.get_username())
    skipped = selected.count() - len(resent)
    model_admin.message_user(
        request,
        f"Resending {len(resent)} survey request(s): each goes through the rules again and, if they pass, "
        "to Stella as a new request."
        + (f" {skipped} selected weren't invalid, failed or ambiguous and were left alone." if skipped else ""),
        messages.SUCCESS if resent else messages.WARNING,
    )
    return None


class OutcomeFilter(admin.SimpleListFilter):
    """Where each request stands, in the status page's words: the tabs above the list use it too."""

    title = "outcome"
    parameter_name = OUTCOME_PARAM

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(SurveyOutcome.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in SurveyOutcome.values:
            return queryset.filter(SurveyRequest.outcome_condition(SurveyOutcome(value)))
        return queryset


class ApiRequestInline(admin.TabularInline):
    model = ApiRequest
    extra = 0
    can_delete = False
    fields = ["created_at", "link", "mode", "status_code", "call_outcome", "error_message", "duration_ms"]
    readonly_fields = flatten(fields)
    ordering = ["-created_at"]
    verbose_name_plural = "requests to Stella"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiRequest]:
        return super().get_queryset(request).defer("request_body", "response_body", "request_headers")

    @admin.display(description="request")
    def link(self, api_request: ApiRequest) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:surveys_apirequest_change", args=[api_request.pk]), api_request.pk
        )

    @admin.display(description="outcome")
    def call_outcome(self, api_request: ApiRequest) -> str:
        return api_request_outcome(api_request)


@admin.register(SurveyRequest)
class SurveyRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # What happened and why first; the rest fits a 1366 px screen, the full text is on the request's page.
    list_display = ["closed_at", "outcome", "why", "conversation", "account_name", "channel_shown", "teammate"]  # fmt: skip
    list_filter = [OutcomeFilter, "account", "reason", "channel", "mode"]
    list_select_related = ["account"]
    search_fields = ["=conversation_id", "customer_email"]
    date_hierarchy = "closed_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/surveys/change_list_tabs.html"
    actions = ["resend"]
    inlines = [ApiRequestInline]
    fieldsets = [
        (None, {"fields": ["account", "conversation", "closed_at", "outcome", "why", "explanation", "send_after", "sent_at", "attempts"]}),
        ("Decision", {"fields": ["decision", "rule_verdicts", "mode"]}),
        ("Conversation", {"fields": ["channel_shown", "channel_source", "tags", "customer_name", "customer_email", "customer_role", "customer_id"]}),
        ("Teammate", {"fields": ["assignee_kind", "teammate_name", "teammate_email", "teammate_id"]}),
        ("Source", {"fields": ["status", "status_detail", "inbound_webhook", "closure_id", "created_at", "updated_at"]}),
    ]  # fmt: skip
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SurveyRequest]:
        return super().get_queryset(request).defer("verdicts")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        tabs = admin_tabs(request, request.GET.get(OUTCOME_PARAM, ""), family="survey")
        return super().changelist_view(request, {**(extra_context or {}), "admin_tabs": tabs})

    @admin.display(description="outcome", ordering="status")
    def outcome(self, survey_request: SurveyRequest) -> str:
        return survey_request_outcome(survey_request)

    @admin.display(description="reason", ordering="reason")
    def why(self, survey_request: SurveyRequest) -> str:
        reason, explanation = survey_request_reason(survey_request)
        return shortened(reason, title=explanation)

    @admin.display(description="in plain words")
    def explanation(self, survey_request: SurveyRequest) -> str:
        return survey_request_reason(survey_request)[1] or "—"

    @admin.display(description="channel", ordering="channel")
    def channel_shown(self, survey_request: SurveyRequest) -> str:
        return channel_label(survey_request)

    @admin.display(description="conversation", ordering="conversation_id")
    def conversation(self, survey_request: SurveyRequest) -> str:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener" title="Open in Intercom">{} ↗</a>',
            survey_request.conversation_url,
            survey_request.conversation_id,
        )

    @admin.display(description="teammate", ordering="teammate_email")
    def teammate(self, survey_request: SurveyRequest) -> str:
        teammate = survey_request.teammate_name or survey_request.teammate_email
        return shortened(teammate or survey_request.get_assignee_kind_display(), narrow=True)

    @admin.display(description="account", ordering="account__name")
    def account_name(self, survey_request: SurveyRequest) -> str:
        return shortened(survey_request.account.name, narrow=True)

    @admin.display(description="every rule's verdict")
    def rule_verdicts(self, survey_request: SurveyRequest) -> str:
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rule_verdicts(survey_request.verdicts)),
        )

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("surveys.change_surveyrequest")

    @admin.action(
        description="Resend the selected (invalid, failed or ambiguous) once the cause is fixed", permissions=["resend"]
    )
    def resend(self, request: HttpRequest, queryset: QuerySet[SurveyRequest]) -> TemplateResponse | None:
        return resend_with_confirmation(self, request, queryset.filter(status__in=RESENDABLE), selected=queryset)
