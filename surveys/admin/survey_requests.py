from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten, flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from integrations import messages as messages_registry
from portal.admin_helpers import ReadOnlyAdminMixin, name_cell, shortened
from portal.errors import traceback_bounded
from portal.text import displayable, plural
from surveys.admin.tabs import OUTCOME_PARAM, RESEND_LABEL, admin_tabs
from surveys.delivery.survey_requests import RESENDABLE, survey_requests_resend
from surveys.loop.employees import ResendRecheck, teammates_recheck_before_resend
from surveys.loop.recovery import recovery_state
from surveys.models import ApiRequest, SurveyOutcome, SurveyRequest
from surveys.reporting.presenters import (
    api_request_outcome,
    channel_label,
    rule_verdicts,
    stars,
    stars_in_words,
    stella_side,
    survey_request_feedback,
    survey_request_outcome,
    survey_request_reason,
)
from surveys.selectors import survey_request_send_failures

# A request whose sender keeps failing may have many failed tasks: its page shows the newest, and links to the rest.
FAILURES_SHOWN = 3


def resend_with_confirmation(
    model_admin: admin.ModelAdmin, request: HttpRequest, survey_requests: QuerySet[SurveyRequest], *, selected: QuerySet
) -> TemplateResponse | None:
    """The resend action of both admins: ambiguous requests may already have reached the customer,
    so resending one takes a confirmation first."""
    resendable = list(survey_requests.select_related("account"))
    if _is_ambiguous_unconfirmed(resendable, request):
        return _confirm_resend(model_admin, request, resendable, selected=selected)
    # Stella had no such employee: read Stella's employees again first, so a teammate added in Stella since is recognised.
    recheck = teammates_recheck_before_resend(resendable, now=timezone.now())
    unknown = {survey_request.pk for survey_request in recheck.still_unknown}
    resent = survey_requests_resend([s for s in resendable if s.pk not in unknown], by=request.user.get_username())
    _report_resent(model_admin, request, len(resent), not_resendable=selected.count() - len(resendable))
    _report_recheck(model_admin, request, recheck)
    return None


def _is_ambiguous(survey_request: SurveyRequest) -> bool:
    return survey_request.status == SurveyRequest.Status.AMBIGUOUS


def _is_ambiguous_unconfirmed(resendable: list[SurveyRequest], request: HttpRequest) -> bool:
    return any(_is_ambiguous(s) for s in resendable) and request.POST.get("confirmed") != "yes"


def _confirm_resend(
    model_admin: admin.ModelAdmin, request: HttpRequest, resendable: list[SurveyRequest], *, selected: QuerySet
) -> TemplateResponse:
    """The page that asks whether to resend requests that may already have reached the customer."""
    return TemplateResponse(
        request,
        "admin/surveys/confirm_resend.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": "Resend requests that may already have reached the customer?",
            "ambiguous": [s for s in resendable if _is_ambiguous(s)],
            "others": [s for s in resendable if not _is_ambiguous(s)],
            "selected": [str(pk) for pk in selected.values_list("pk", flat=True)],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": model_admin.model._meta,
        },
    )


def _report_resent(model_admin: admin.ModelAdmin, request: HttpRequest, resent: int, *, not_resendable: int) -> None:
    model_admin.message_user(
        request,
        f"Resending {plural(resent, 'survey request')}: each goes through the rules again and, if it passes, "
        "to Stella as a new request."
        + (f" {plural(not_resendable, 'selected request')} weren't invalid, failed or ambiguous and were left alone."
           if not_resendable else ""),
        messages.SUCCESS if resent else messages.WARNING,
    )  # fmt: skip


def _report_recheck(model_admin: admin.ModelAdmin, request: HttpRequest, recheck: ResendRecheck) -> None:
    """What re-reading Stella's employees left unresolved: teammates Stella still lacks, reads that failed."""
    if recheck.still_unknown:
        who = sorted({s.teammate_name or s.teammate_email or s.teammate_id for s in recheck.still_unknown})
        model_admin.message_user(
            request,
            f"Not resent: Stella still has no employee for {', '.join(who)} (read from Stella just now). "
            f"{messages_registry.STELLA_EMPLOYEE_NOT_FOUND.fix} Then resend.",
            messages.WARNING,
        )
    for why in recheck.unchecked:
        model_admin.message_user(request, f"Stella's employees could not be read again ({why}).", messages.WARNING)


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


class StellaFilter(admin.SimpleListFilter):
    """What Stella's feedback records say: the requests a person should look at (an index holds the few flagged),
    and those Stella reported or had answered."""

    title = "Stella"
    parameter_name = "stella"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        flags = [(flag.value, str(flag.label)) for flag in SurveyRequest.ReconcileFlag if flag.value]
        return [*flags, ("reported", "Reported by Stella"), ("answered", "Answered by the customer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in SurveyRequest.ReconcileFlag.values and value:
            return queryset.filter(reconcile_flag=value)
        if value == "reported":
            return queryset.filter(feedback__isnull=False)
        if value == "answered":
            return queryset.filter(feedback__response_received_at__isnull=False)
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
    list_display = ["closed_at", "outcome", "why", "stella", "conversation", "account_name", "teammate", "mode_shown", "channel_shown"]  # fmt: skip
    list_filter = [OutcomeFilter, StellaFilter, "account", "reason", "channel", "mode"]
    list_select_related = ["account", "feedback"]
    search_fields = ["=conversation_id", "customer_email"]
    date_hierarchy = "closed_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/surveys/change_list_tabs.html"
    actions = ["resend"]
    inlines = [ApiRequestInline]
    fieldsets = [
        (None, {"fields": ["account", "conversation", "closed_at", "outcome", "why", "explanation", "send_after", "sent_at", "attempts"]}),
        ("Stella", {"fields": ["reconcile", "delivery_status", "star_rating", "customer_comment", "feedback_record", "service_recovery"]}),
        ("Decision", {"fields": ["decision", "rule_verdicts", "attribution", "mode"]}),
        ("Conversation", {"fields": ["channel_shown", "channel_source", "tags", "customer_name", "customer_email", "customer_role", "customer_id"]}),
        ("Teammate", {"fields": ["assignee_kind", "teammate_name", "teammate_email", "teammate_id"]}),
        ("Source", {"fields": ["status", "status_detail", "send_failures", "inbound_webhook", "closure_id", "created_at", "updated_at"]}),
    ]  # fmt: skip
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SurveyRequest]:
        # list_select_related, here: the changelist adds it only to a queryset that selects nothing yet.
        rows = super().get_queryset(request).select_related(*self.list_select_related)
        return rows.defer("verdicts", "feedback__raw")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        tabs = admin_tabs(request, request.GET.get(OUTCOME_PARAM, ""), family="survey")
        return super().changelist_view(request, {**(extra_context or {}), "admin_tabs": tabs})

    @admin.display(description="outcome", ordering="status")
    def outcome(self, survey_request: SurveyRequest) -> str:
        return survey_request_outcome(survey_request)

    @admin.display(description="reason", ordering="reason")
    def why(self, survey_request: SurveyRequest) -> str:
        reason, explanation = survey_request_reason(survey_request, csm=True)
        return shortened(reason, title=explanation)

    @admin.display(description="in plain words")
    def explanation(self, survey_request: SurveyRequest) -> str:
        return survey_request_reason(survey_request, csm=True)[1] or "—"

    @admin.display(description="Stella")
    def stella(self, survey_request: SurveyRequest) -> str:
        """Stella's delivery status and the stars, or the reconcile flag: cut to the column, whole on hover."""
        side = stella_side(survey_request)
        if side.reconcile:
            return format_html('<span class="short flag" title="{}">⚠ {}</span>', side.reconcile, side.reconcile)
        if not side.delivery_status:
            return "—"
        hover = " · ".join(
            part for part in (side.delivery_status, stars_in_words(side.star_rating), side.comment) if part
        )
        # Answered: the stars say it all (delivered); else Stella's words, cut to the column.
        return shortened(stars(side.star_rating) or side.delivery_status, title=hover)

    @admin.display(description="needs a look")
    def reconcile(self, survey_request: SurveyRequest) -> str:
        """The reconcile flag in plain words; for an ambiguous request, the way to resend it."""
        if not survey_request.reconcile_flag:
            return "No"
        flag = survey_request.get_reconcile_flag_display()
        since = (
            f" (since {timezone.localtime(survey_request.reconciled_at):%Y-%m-%d %H:%M %Z})"
            if survey_request.reconciled_at
            else ""
        )
        if survey_request.status not in RESENDABLE:
            return f"⚠ {flag}{since}"
        url = (
            reverse("admin:surveys_surveyrequest_changelist")
            + "?"
            + urlencode({"q": survey_request.conversation_id, "stella": survey_request.reconcile_flag})
        )
        return format_html(
            '⚠ {}{} — <a href="{}">open it in the list</a>, tick it and choose “Resend”.', flag, since, url
        )

    @admin.display(description="delivery status")
    def delivery_status(self, survey_request: SurveyRequest) -> str:
        side = stella_side(survey_request)
        if not side.delivery_status:
            return "Not reported by Stella (yet)"
        if side.delivery_explanation:
            return format_html('{} <span class="help">{}</span>', side.delivery_status, side.delivery_explanation)
        return side.delivery_status

    @admin.display(description="star rating")
    def star_rating(self, survey_request: SurveyRequest) -> str:
        rating = stella_side(survey_request).star_rating
        return f"{stars(rating)} {stars_in_words(rating)}" if rating is not None else "—"

    @admin.display(description="customer's comment")
    def customer_comment(self, survey_request: SurveyRequest) -> str:
        return displayable(stella_side(survey_request).comment) or "—"

    @admin.display(description="Stella's record")
    def feedback_record(self, survey_request: SurveyRequest) -> SafeString | str:
        feedback = survey_request_feedback(survey_request)
        if feedback is None:
            return "None yet"
        moments = [
            (label, moment)
            for label, moment in (
                ("created", feedback.request_created_at),
                ("sent", feedback.request_sent_at),
                ("answered", feedback.response_received_at),
            )
            if moment
        ]
        return format_html(
            '<a href="{}">{}</a>{}',
            reverse("admin:surveys_feedback_change", args=[feedback.pk]),
            feedback.uuid,
            format_html_join(
                "", "; {} {}", ((label, f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}") for label, moment in moments)
            ),
        )

    @admin.display(description="service recovery")
    def service_recovery(self, survey_request: SurveyRequest) -> SafeString | str:
        """What was done on a low rating (surveys/loop/recovery.py), and when; a failure with why."""
        actions = survey_request.recovery_actions.order_by("pk")
        if not actions:
            return "None: not rated at or under the account's low-rating threshold"
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", "<li>{}: {}</li>", ((a.get_kind_display(), recovery_state(a)) for a in actions)),
        )

    @admin.display(description="mode", ordering="mode")
    def mode_shown(self, survey_request: SurveyRequest) -> str:
        return survey_request.get_mode_display()

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
        return name_cell(teammate or survey_request.get_assignee_kind_display())

    @admin.display(description="account", ordering="account__name")
    def account_name(self, survey_request: SurveyRequest) -> str:
        return name_cell(survey_request.account.name)

    @admin.display(description="every rule's verdict")
    def rule_verdicts(self, survey_request: SurveyRequest) -> str:
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rule_verdicts(survey_request.verdicts)),
        )

    @admin.display(description="sender failures")
    def send_failures(self, survey_request: SurveyRequest) -> SafeString | str:
        """Its send tasks that raised (an error the sender didn't expect), with their tracebacks, escaped."""
        failed = survey_request_send_failures(survey_request.pk)
        shown = list(failed[:FAILURES_SHOWN])
        if not shown:
            return "None"
        total = failed.count() if len(shown) == FAILURES_SHOWN else len(shown)
        everything = reverse("admin:django_q_failure_changelist") + "?" + urlencode({"q": shown[0].name})
        return format_html(
            '<p>{}, newest first; all are in the task queue\'s <a href="{}">failed tasks</a>.</p>{}',
            plural(total, "failed send task"),
            everything,
            format_html_join(
                "",
                '<p><a href="{}">{}</a>, attempt {}</p><pre class="traceback">{}</pre>',
                (
                    (
                        reverse("admin:django_q_failure_change", args=[failure.pk]),
                        f"{timezone.localtime(failure.stopped):%Y-%m-%d %H:%M:%S %Z}",
                        failure.attempt_count,
                        traceback_bounded(str(failure.result)),
                    )
                    for failure in shown
                ),
            ),
        )

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("surveys.change_surveyrequest")

    @admin.action(description=RESEND_LABEL, permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[SurveyRequest]) -> TemplateResponse | None:
        return resend_with_confirmation(self, request, queryset.filter(status__in=RESENDABLE), selected=queryset)
