"""What the portal reads back from Stella: its feedback records, those quarantined, and its employees
(read-only, as Stella has them), and, on the account's page, where the reading stands (with a crash's
traceback for an operator, and the records quarantined) and "Sync employees now" / "Pull feedback now"."""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template import engines
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from portal.admin_helpers import ReadOnlyAdminMixin, shortened
from portal.text import displayable
from surveys.loop.employees import EmployeeSync, teammates_unknown_to_stella
from surveys.loop.feedback import FeedbackPull
from surveys.loop.quarantine import quarantined_feedback_of
from surveys.loop.sync import SYNC_JOBS, stella_sync_job_run
from surveys.models import (
    Account,
    Feedback,
    IntercomNote,
    QuarantinedFeedback,
    StellaEmployee,
    StellaSyncState,
    Teammate,
)

UNKNOWN_SHOWN = 20
QUARANTINED_SHOWN = 5


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stella's records, as its Data Return API last sent them: evidence, never edited here."""

    list_display = [
        "request_created_at",
        "account",
        "conversation",
        "employee",
        "channel",
        "delivery_status",
        "star_rating",
        "short_comment",
        "request_link",
    ]
    # Filters with fixed choices only: one over the column's values would scan every record to list them.
    list_filter = ["account", "mode", "is_recovery"]
    list_select_related = ["account", "survey_request"]
    search_fields = ["=ext_interaction_id", "=uuid", "employee_email", "employee_custom_id"]
    date_hierarchy = "request_created_at"
    show_full_result_count = False
    fields = [
        "account", "uuid", "sequence_id", "ext_interaction_id", "request_link", "mode", "is_recovery", "channel",
        "employee_name", "employee_email", "employee_custom_id", "delivery_status", "request_created_at",
        "request_sent_at", "response_received_at", "star_rating", "customer_comment", "first_seen_at", "updated_at", "raw",
    ]  # fmt: skip
    readonly_fields = flatten(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Feedback]:
        return super().get_queryset(request).defer("raw")

    @admin.display(description="conversation", ordering="ext_interaction_id")
    def conversation(self, record: Feedback) -> str:
        return record.ext_interaction_id or "—"

    @admin.display(description="teammate", ordering="employee_email")
    def employee(self, record: Feedback) -> str:
        return displayable(record.employee_name or record.employee_email or record.employee_custom_id) or "—"

    @admin.display(description="comment")
    def short_comment(self, record: Feedback) -> str:
        return shortened(record.comment) if record.comment else ""

    @admin.display(description="comment")
    def customer_comment(self, record: Feedback) -> str:
        """Whole, as people are shown text from outside (the stored record keeps every character)."""
        return displayable(record.comment)

    @admin.display(description="survey request")
    def request_link(self, record: Feedback) -> str:
        if record.survey_request_id is None:
            return "None: no request of ours has this conversation id"
        url = reverse("admin:surveys_surveyrequest_change", args=[record.survey_request_id])
        return format_html('<a href="{}">{}</a>', url, record.survey_request)


@admin.register(QuarantinedFeedback)
class QuarantinedFeedbackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stella's records the portal can't store as sent, kept raw with why: to raise with Stella."""

    list_display = ["quarantined_at", "account", "sequence_id", "uuid", "conversation", "short_reason"]
    list_filter = ["account"]
    list_select_related = ["account"]
    search_fields = ["=uuid", "=ext_interaction_id", "=sequence_id"]
    show_full_result_count = False
    fields = [
        "account", "sequence_id", "uuid", "ext_interaction_id", "reason", "quarantined_at", "erased_at", "raw_text",
    ]  # fmt: skip
    readonly_fields = flatten(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedFeedback]:
        return super().get_queryset(request).defer("raw")

    @admin.display(description="conversation", ordering="ext_interaction_id")
    def conversation(self, record: QuarantinedFeedback) -> str:
        return record.ext_interaction_id or "—"

    @admin.display(description="why", ordering="reason")
    def short_reason(self, record: QuarantinedFeedback) -> str:
        return shortened(record.reason)

    @admin.display(description="as Stella sent it")
    def raw_text(self, record: QuarantinedFeedback) -> str:
        return format_html('<pre class="json">{}</pre>', record.raw)


@admin.register(StellaEmployee)
class StellaEmployeeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stella's employees, as the last employee sync listed them."""

    list_display = ["name", "email", "custom_id", "active", "account", "synced_at"]
    list_filter = ["account", "active"]
    list_select_related = ["account"]
    search_fields = ["name", "email", "=custom_id", "=stella_id"]


# ---- On the account's page ----


def _when(moment: datetime | None) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}" if moment else "never"


def stella_sync_block(account: Account) -> SafeString:
    """Where reading back from Stella stands for the account: each job's last run, its error in words for a
    CSM and, if it crashed, the traceback for an operator (folded); the feedback records quarantined; and the
    buttons to run the jobs now. Everything from outside is escaped by the template."""
    state = StellaSyncState.objects.filter(account=account).first() or StellaSyncState(account=account)
    integration = getattr(account, "integration", None)
    quarantined = list(quarantined_feedback_of(account)[:QUARANTINED_SHOWN]) if account.pk else []
    context = {
        "account": account,
        "state": state,
        "no_secret": integration is not None and not integration.stella_api_secret,
        "employees": account.stella_employees.count() if account.pk else 0,
        "employees_synced": _when(state.employees_synced_at),
        "employees_attempted": _when(state.employees_attempted_at),
        "feedback_synced": _when(state.feedback_synced_at),
        "waiting_until": (
            _when(state.feedback_retry_at)
            if state.feedback_retry_at and state.feedback_retry_at > timezone.now()
            else ""
        ),
        "quarantined": [(row, _when(row.quarantined_at)) for row in quarantined],
        "quarantined_count": quarantined_feedback_of(account).count() if quarantined else 0,
        "quarantined_url": reverse("admin:surveys_quarantinedfeedback_changelist")
        + f"?account__id__exact={account.pk}",
    }
    return render_to_string("admin/surveys/account/stella_sync.html", context)


def unknown_teammates_block(account: Account) -> SafeString:
    """The teammates Stella won't recognise, each linked to where their Stella custom id is set."""
    unknown = list(teammates_unknown_to_stella(account)[: UNKNOWN_SHOWN + 1]) if account.pk else []
    if not unknown:
        checked = account.pk and Teammate.objects.filter(account=account, stella_checked_at__isnull=False).exists()
        return mark_safe("✓ None: Stella has every teammate.") if checked else mark_safe("Not checked yet.")
    links = format_html_join(
        mark_safe("<br>"),
        '⚠ <a href="{}">{}</a> {}',
        (
            (
                reverse("admin:surveys_teammate_change", args=[teammate.pk]),
                teammate.name or teammate.intercom_id,
                f"({teammate.email or 'no email'}{', custom id ' + teammate.stella_custom_id if teammate.stella_custom_id else ''})",
            )
            for teammate in unknown[:UNKNOWN_SHOWN]
        ),
    )
    everyone = (
        reverse("admin:surveys_teammate_changelist")
        + f"?account__id__exact={account.pk}&stella_match__exact={Teammate.StellaMatch.UNMATCHED}"
    )
    more = "all of them" if len(unknown) > UNKNOWN_SHOWN else "the list"
    return format_html(
        '{}<br>Give each their Stella employee custom id (or add them in Stella). <a href="{}">See {}</a>.',
        links,
        everyone,
        more,
    )


TITLES = {"employees": "Sync employees with Stella", "feedback": "Pull feedback from Stella"}

CONFIRM = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block content %}
<p>{{ explanation }}</p>
<form method="post">{% csrf_token %}
  <input type="submit" value="{{ title }}">
  <a href="{% url 'admin:surveys_account_change' account.pk %}" class="button cancel-link">Back to {{ account }}</a>
</form>
{% endblock %}"""
)
EXPLANATIONS = {
    "employees": "Reads Stella's employees with the account's {mode} key and its API secret, then marks each "
    "teammate Stella won't recognise. It also runs every hour by itself.",
    "feedback": "Reads Stella's feedback records after the saved cursor with the account's {mode} key and its "
    "API secret, links them to survey requests and flags what Stella hasn't reported. It also runs every "
    "15 minutes by itself.",
}


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The account admin's "… now" pages, named admin:surveys_account_stella_sync."""

    def view(request: HttpRequest, account_id: int, job: str) -> HttpResponse:
        return stella_sync_view(model_admin, request, account_id, job)

    return [
        path(
            "<int:account_id>/stella-sync/<str:job>/",
            model_admin.admin_site.admin_view(view),
            name="surveys_account_stella_sync",
        )
    ]


def stella_sync_view(model_admin: admin.ModelAdmin, request: HttpRequest, account_id: int, job: str) -> HttpResponse:
    """GET: what the job does, and a button. POST: run it now for this account, and say what came of it."""
    account = get_object_or_404(Account.objects.select_related("integration"), pk=account_id)
    if job not in SYNC_JOBS:
        raise PermissionDenied
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    title = TITLES[job]
    if request.method == "POST":
        stella_sync_message(request, account, stella_sync_job_run(account, job=job, now=timezone.now()))
        return redirect("admin:surveys_account_change", account.pk)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title} for {account}?",
        "account": account,
        "opts": model_admin.model._meta,
        "original": account,
        "explanation": EXPLANATIONS[job].format(mode=account.integration.get_mode_display().lower()),
    }
    return TemplateResponse(request, CONFIRM, context)


def stella_sync_message(request: HttpRequest, account: Account, result: EmployeeSync | FeedbackPull) -> None:
    level = messages.ERROR if result.error else messages.WARNING if result.skipped else messages.SUCCESS
    messages.add_message(request, level, f"{account}: {result}")


@admin.register(IntercomNote)
class IntercomNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The notes posted on Intercom conversations for accounts that turn them on: one per survey request and
    event. A failed one says why; one that may have reached Intercom is never posted again."""

    list_display = ["created_at", "account", "conversation", "event", "status", "posted_at", "short_error"]
    list_filter = ["status", "event", "account"]
    list_select_related = ["account", "survey_request"]
    search_fields = ["=survey_request__conversation_id"]
    show_full_result_count = False
    fields = ["account", "survey_request", "event", "status", "body", "post_after", "posted_at", "error", "created_at"]

    @admin.display(description="conversation")
    def conversation(self, note: IntercomNote) -> str:
        return note.survey_request.conversation_id

    @admin.display(description="error")
    def short_error(self, note: IntercomNote) -> str:
        return shortened(note.error)
