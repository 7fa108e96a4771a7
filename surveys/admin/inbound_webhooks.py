"""The raw webhooks as they arrived, and the conversation events processing recorded from them."""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from integrations.models import InboundWebhook, UnverifiedWebhookCount
from portal.admin_helpers import ReadOnlyAdminMixin, shortened
from portal.text import plural
from surveys.intake.process import REPLAYABLE, inbound_webhook_replay
from surveys.models import ConversationEvent


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    actions = ["replay"]
    # What happened and why first; a long error is cut in the list, whole on the webhook's page.
    list_display = ["received_at", "status", "problem", "topic", "workspace_id", "notification_id"]
    list_filter = ["status", "topic"]
    search_fields = ["notification_id", "workspace_id", "=id"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = [
        "received_at",
        "status",
        "error",
        "error_traceback",
        "topic",
        "workspace_id",
        "notification_id",
        "body_size",
        "body_sha256",
        "occurred_at",
        "processed_at",
        "pretty_headers",
        "pretty_body",
    ]
    readonly_fields = flatten(fields)

    @admin.display(description="error", ordering="error")
    def problem(self, webhook: InboundWebhook) -> str:
        return shortened(webhook.error) if webhook.error else ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundWebhook]:
        return super().get_queryset(request).defer("body", "parsed", "headers", "traceback")

    @admin.display(description="traceback")
    def error_traceback(self, webhook: InboundWebhook) -> str:
        """Where it failed, for whoever fixes the cause: escaped, exactly as Python printed it."""
        if not webhook.traceback:
            return "—"
        return format_html('<pre class="traceback">{}</pre>', webhook.traceback)

    @admin.display(description="headers")
    def pretty_headers(self, webhook: InboundWebhook) -> str:
        return format_html("<pre>{}</pre>", json.dumps(webhook.headers, indent=2))

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_inboundwebhook")

    @admin.action(description="Replay the selected webhooks (processed, ignored or failed)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[InboundWebhook]) -> None:
        outcomes = []
        for webhook in queryset.filter(status__in=REPLAYABLE, erased_at__isnull=True).order_by("occurred_at"):
            webhook = inbound_webhook_replay(webhook)
            outcomes.append(
                f"{webhook}: {webhook.get_status_display().lower()}{f' ({webhook.error})' if webhook.error else ''}"
            )
        erased = queryset.filter(erased_at__isnull=False).count()
        if erased:
            self.message_user(
                request,
                f"{plural(erased, 'webhook')} left alone: their bodies were erased (personal data).",
                messages.WARNING,
            )
        skipped = queryset.exclude(status__in=REPLAYABLE).filter(erased_at__isnull=True).count()
        if outcomes:
            self.message_user(request, "Replayed: " + "; ".join(outcomes), messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{plural(skipped, 'invalid webhook')} left alone: they never passed verification.",
                messages.WARNING,
            )

    @admin.display(description="body")
    def pretty_body(self, webhook: InboundWebhook) -> str:
        """Escaped text. Only a body the parser accepted (so shallow, valid JSON) is laid out; anything
        that failed verification or parsing is shown exactly as stored, never parsed here."""
        text = webhook.body
        if webhook.status != InboundWebhook.Status.INVALID:
            try:
                text = json.dumps(json.loads(webhook.body), indent=2)
            except (ValueError, RecursionError):
                pass
        return format_html('<pre class="webhook-body">{}</pre>', text)


@admin.register(ConversationEvent)
class ConversationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "account", "conversation_id", "kind", "tags"]
    list_filter = ["kind", "account"]
    list_select_related = ["account"]
    search_fields = ["conversation_id"]
    show_full_result_count = False


@admin.register(UnverifiedWebhookCount)
class UnverifiedWebhookCountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests that failed verification beyond the rate at which they are stored, per minute."""

    list_display = ["minute", "count"]
    date_hierarchy = "minute"
