import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.debug import sensitive_post_parameters

from integrations.models import Account, ConversationEvent, InboundWebhook, IntegrationSettings, Teammate
from integrations.oauth import intercom_authorize_url
from integrations.services import REPLAYABLE, inbound_webhook_replay
from portal.durations import HumanDurationField, format_duration
from portal.redaction import mask_secret
from surveys.selectors import account_test_week

SECRET_FIELDS = ("test_api_key", "production_api_key", "intercom_access_token")


class IntegrationSettingsForm(forms.ModelForm):
    """Secrets are never sent back to the browser: the field shows the last 4 characters
    as a placeholder, and leaving it empty keeps the stored value."""

    channel_delay = HumanDurationField(help_text=IntegrationSettings._meta.get_field("channel_delay").help_text)
    stella_api_url = forms.URLField(
        label="Stella API URL",
        required=False,
        assume_scheme="https",
        help_text=IntegrationSettings._meta.get_field("stella_api_url").help_text,
    )
    suppression_window = HumanDurationField(
        help_text=IntegrationSettings._meta.get_field("suppression_window").help_text + " E.g. 7d."
    )

    class Meta:
        model = IntegrationSettings
        fields = [
            "enabled", "mode", "test_api_key", "production_api_key", "stella_api_url", "brand", "language",
            "email_enabled", "chat_enabled", "channel_delay", "suppression_window", "do_not_send_tags",
            "intercom_access_token", "alert_recipients",
        ]  # fmt: skip
        widgets = {name: forms.PasswordInput(render_value=False) for name in SECRET_FIELDS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            stored = getattr(self.instance, name)
            field = self.fields[name]
            field.required = False
            field.widget.attrs["placeholder"] = f"stored: {mask_secret(stored)}" if stored else "not set"
            field.widget.attrs["autocomplete"] = "off"
            field.help_text = "Leave empty to keep the stored value." if stored else ""

    def has_changed(self) -> bool:
        # An account added with the default settings still gets its settings row.
        return super().has_changed() or self.instance.pk is None

    def _clean_secret(self, name: str) -> str:
        return self.cleaned_data.get(name) or getattr(self.instance, name)

    def clean_test_api_key(self) -> str:
        return self._clean_secret("test_api_key")

    def clean_production_api_key(self) -> str:
        return self._clean_secret("production_api_key")

    def clean_intercom_access_token(self) -> str:
        return self._clean_secret("intercom_access_token")


class IntegrationSettingsInline(admin.StackedInline):
    model = IntegrationSettings
    form = IntegrationSettingsForm
    can_delete = False
    min_num = 1
    max_num = 1
    readonly_fields = ["attention"]
    fieldsets = [
        (None, {"fields": ["attention", "enabled", "mode"]}),
        ("Stella Connect", {"fields": ["test_api_key", "production_api_key", "stella_api_url", "brand", "language"]}),
        (
            "Rules",
            {"fields": ["email_enabled", "chat_enabled", "channel_delay", "suppression_window", "do_not_send_tags"]},
        ),
        ("Intercom", {"fields": ["intercom_access_token"]}),
        ("Error-rate alert", {"fields": ["alert_recipients"]}),
    ]

    @admin.display(description="needs attention")
    def attention(self, settings: IntegrationSettings) -> str:
        return format_html_join(mark_safe("<br>"), "⚠ {}", ((problem,) for problem in attention(settings))) or "—"


def attention(settings: IntegrationSettings) -> list[str]:
    """What a CSM has to fix before this account's surveys can flow."""
    problems = []
    if settings.sending_paused_at:
        problems.append(
            f"Sending paused since {settings.sending_paused_at:%Y-%m-%d %H:%M} UTC: {settings.sending_paused_reason}. "
            "Enter a new key (or switch mode) to resume."
        )
    if settings.intercom_token_rejected_at:
        problems.append(
            f"Intercom rejected the access token on {settings.intercom_token_rejected_at:%Y-%m-%d %H:%M} UTC. "
            "Connect with Intercom again, or enter a new token."
        )
    if settings.error_alert_since:
        problems.append(
            f"Over 5% of the last hour's requests were invalid or failed ({settings.error_alert_rate:.0f}%, "
            f"since {settings.error_alert_since:%H:%M} UTC): see Invalid requests."
        )
    return problems


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    filter_horizontal = ["support_users"]
    change_form_template = "admin/integrations/account/change_form.html"
    list_display = [
        "name",
        "intercom_workspace_id",
        "enabled",
        "mode",
        "channels",
        "delay",
        "window",
        "keys",
        "problems",
    ]
    list_select_related = ["settings"]
    search_fields = ["name", "intercom_workspace_id"]
    list_filter = ["settings__enabled", "settings__mode"]
    inlines = [IntegrationSettingsInline]

    @admin.display(boolean=True, ordering="settings__enabled")
    def enabled(self, account: Account) -> bool:
        return account.settings.enabled

    @admin.display(ordering="settings__mode")
    def mode(self, account: Account) -> str:
        return account.settings.get_mode_display()

    @admin.display
    def channels(self, account: Account) -> str:
        return ", ".join(sorted(channel.label for channel in account.settings.enabled_channels)) or "none"

    @admin.display(description="channel delay")
    def delay(self, account: Account) -> str:
        return format_duration(account.settings.channel_delay)

    @admin.display(description="suppression window")
    def window(self, account: Account) -> str:
        return format_duration(account.settings.suppression_window)

    @admin.display(description="API keys (test / production)")
    def keys(self, account: Account) -> str:
        settings = account.settings
        return f"{mask_secret(settings.test_api_key) or '—'} / {mask_secret(settings.production_api_key) or '—'}"

    @admin.display(description="needs attention")
    def problems(self, account: Account) -> str:
        return format_html_join(mark_safe("<br>"), "⚠ {}", ((problem,) for problem in attention(account.settings)))

    @method_decorator(sensitive_post_parameters(*(f"settings-0-{name}" for name in SECRET_FIELDS)))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Keys typed into the form stay out of error reports."""
        return super().changeform_view(request, *args, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "<int:account_id>/go-live/",
                self.admin_site.admin_view(self.go_live_view),
                name="integrations_account_go_live",
            ),
            path(
                "<int:account_id>/connect-intercom/",
                self.admin_site.admin_view(self.connect_intercom_view),
                name="integrations_account_connect_intercom",
            ),
        ]
        return urls + super().get_urls()

    def go_live_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Switch from the test key to the production key, after a look at how testing went."""
        account = get_object_or_404(Account.objects.select_related("settings"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        settings = account.settings
        back = redirect("admin:integrations_account_change", account.pk)
        if settings.mode == IntegrationSettings.Mode.LIVE:
            self.message_user(request, f"{account} is already live.", messages.INFO)
            return back
        if request.method == "POST":
            if not settings.production_api_key:
                self.message_user(request, "Enter the production API key first.", messages.ERROR)
                return back
            settings.mode = IntegrationSettings.Mode.LIVE
            settings.save()
            self.message_user(request, f"{account} is live: surveys now go to customers with the production key.")
            return back
        context = {
            **self.admin_site.each_context(request),
            "title": f"Switch {account} to live?",
            "account": account,
            "opts": self.model._meta,
            "original": account,
            "week": account_test_week(account),
            "has_production_key": bool(settings.production_api_key),
        }
        return TemplateResponse(request, "admin/integrations/account/go_live.html", context)

    def connect_intercom_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(Account, pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        return redirect(intercom_authorize_url(request, account))


@admin.register(Teammate)
class TeammateAdmin(admin.ModelAdmin):
    """Who Stella should credit for an Intercom teammate, when not their email (or for a bot)."""

    list_display = ["name", "email", "intercom_id", "account", "is_bot", "stella_custom_id", "fetched_at"]
    list_editable = ["stella_custom_id"]
    list_filter = ["account", "is_bot"]
    list_select_related = ["account"]
    search_fields = ["name", "email", "=intercom_id", "stella_custom_id"]
    readonly_fields = ["fetched_at"]


class ReadOnlyAdminMixin:
    """Logs are evidence: nobody edits or deletes them from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    actions = ["replay"]
    list_display = ["received_at", "topic", "workspace_id", "account", "status", "error", "notification_id"]
    list_filter = ["status", "topic", "account"]
    list_select_related = ["account"]
    search_fields = ["notification_id", "workspace_id", "=id"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = [
        "received_at",
        "status",
        "error",
        "topic",
        "account",
        "workspace_id",
        "notification_id",
        "occurred_at",
        "processed_at",
        "pretty_headers",
        "pretty_body",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundWebhook]:
        return super().get_queryset(request).defer("body", "headers")

    @admin.display(description="headers")
    def pretty_headers(self, webhook: InboundWebhook) -> str:
        return format_html("<pre>{}</pre>", json.dumps(webhook.headers, indent=2))

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_inboundwebhook")

    @admin.action(description="Replay the selected webhooks (processed, ignored or failed)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[InboundWebhook]) -> None:
        outcomes = []
        for webhook in queryset.filter(status__in=REPLAYABLE).order_by("occurred_at"):
            webhook = inbound_webhook_replay(webhook)
            outcomes.append(
                f"{webhook}: {webhook.get_status_display().lower()}{f' ({webhook.error})' if webhook.error else ''}"
            )
        skipped = queryset.exclude(status__in=REPLAYABLE).count()
        if outcomes:
            self.message_user(request, "Replayed: " + "; ".join(outcomes), messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} invalid webhook(s) left alone: they never passed verification.", messages.WARNING
            )

    @admin.display(description="body")
    def pretty_body(self, webhook: InboundWebhook) -> str:
        try:
            text = json.dumps(json.loads(webhook.body), indent=2)
        except ValueError:
            text = webhook.body
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', text)


@admin.register(ConversationEvent)
class ConversationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "account", "conversation_id", "kind", "tags"]
    list_filter = ["kind", "account"]
    list_select_related = ["account"]
    search_fields = ["conversation_id"]
    show_full_result_count = False
