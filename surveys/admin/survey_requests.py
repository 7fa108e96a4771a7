from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from integrations.admin import ReadOnlyAdminMixin
from surveys.models import SurveyRequest
from surveys.suppression import RULES, SuppressionReason


@admin.register(SurveyRequest)
class SurveyRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "closed_at",
        "account",
        "conversation",
        "channel",
        "customer_email",
        "teammate",
        "status",
        "decision",
        "reason",
        "status_detail",
        "mode",
        "send_after",
    ]
    list_filter = ["account", "status", "decision", "reason", "channel", "mode"]
    list_select_related = ["account"]
    search_fields = ["=conversation_id", "customer_email"]
    date_hierarchy = "closed_at"
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "account",
                    "conversation",
                    "closed_at",
                    "status",
                    "status_detail",
                    "send_after",
                    "sent_at",
                    "attempts",
                ]
            },
        ),
        ("Decision", {"fields": ["decision", "reason", "rule_verdicts", "mode"]}),
        (
            "Conversation",
            {
                "fields": [
                    "channel",
                    "channel_source",
                    "tags",
                    "customer_name",
                    "customer_email",
                    "customer_role",
                    "customer_id",
                ]
            },
        ),
        ("Teammate", {"fields": ["assignee_kind", "teammate_name", "teammate_email", "teammate_id"]}),
        ("Source", {"fields": ["inbound_webhook", "closure_id", "created_at", "updated_at"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SurveyRequest]:
        return super().get_queryset(request).defer("verdicts")

    @admin.display(description="conversation", ordering="conversation_id")
    def conversation(self, survey_request: SurveyRequest) -> str:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>',
            survey_request.conversation_url,
            survey_request.conversation_id,
        )

    @admin.display(description="teammate", ordering="teammate_email")
    def teammate(self, survey_request: SurveyRequest) -> str:
        return (
            survey_request.teammate_email or survey_request.teammate_name or survey_request.get_assignee_kind_display()
        )

    @admin.display(description="every rule's verdict")
    def rule_verdicts(self, survey_request: SurveyRequest) -> str:
        verdicts = survey_request.verdicts
        rows = (
            (
                rule.__name__.replace("_", " "),
                SuppressionReason(verdicts[rule.__name__]).label if verdicts[rule.__name__] else "passed",
            )
            for rule in RULES
            if rule.__name__ in verdicts
        )
        return format_html("<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows))
