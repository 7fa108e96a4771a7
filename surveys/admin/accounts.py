import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from portal.crypto import SecretUndecryptable, secret_decrypt, secret_encrypt
from portal.durations import HumanDurationField, format_duration
from portal.history import Source, configuration_changed_by
from portal.redaction import mask_secret
from surveys.accounts.account import integration_health_ensure, integration_settings_update
from surveys.accounts.checklist import SANDBOX_KEY_PREFIXES, sandbox_key_hint
from surveys.accounts.oauth import account_authorize_url
from surveys.accounts.teams import account_teams
from surveys.accounts.test_request import account_go_live_week
from surveys.admin import configuration, dry_run, feedback, onboarding
from surveys.decisions.dry_run import WHOM_TO_SURVEY
from surveys.loop.employees import teammate_match_refresh
from surveys.loop.sync import stella_sync_job_run
from surveys.models import Account, IntegrationSettings, Teammate
from surveys.reporting.attention import Problem, account_attention, accounts_attention

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec

# Stella takes a while to report a request: flagging sooner would flag every request.
MIN_RECONCILE_AFTER = timedelta(hours=1)
MAX_RECONCILE_AFTER = timedelta(days=30)
# Bounds on what a CSM types: a survey a week after the close asks about a conversation nobody remembers, and a
# customer held back over a year is never surveyed at all.
MAX_CHANNEL_DELAY = timedelta(days=7)
MAX_SUPPRESSION_WINDOW = timedelta(days=365)
SECRET_FIELDS = (
    "test_api_key",
    "production_api_key",
    "intercom_access_token",
    "stella_api_secret",
    "low_rating_webhook",
)


class IntegrationSettingsForm(forms.ModelForm):
    """Secrets are never sent back to the browser: the field shows the last 4 characters
    as a placeholder, and leaving it empty keeps the stored value."""

    channel_delay = HumanDurationField(
        help_text=IntegrationSettings._meta.get_field("channel_delay").help_text,
        maximum=MAX_CHANNEL_DELAY,
        example="10m",
    )
    stella_api_url = forms.URLField(
        label="Stella API URL",
        required=False,
        assume_scheme="https",
        help_text=IntegrationSettings._meta.get_field("stella_api_url").help_text,
    )
    suppression_window = HumanDurationField(
        help_text=IntegrationSettings._meta.get_field("suppression_window").help_text,
        maximum=MAX_SUPPRESSION_WINDOW,
        example="7d",
    )
    reconcile_after = HumanDurationField(
        required=False,
        help_text=IntegrationSettings._meta.get_field("reconcile_after").help_text + "; empty keeps it",
        minimum=MIN_RECONCILE_AFTER,
        maximum=MAX_RECONCILE_AFTER,
        example="24h",
    )

    class Meta:
        model = IntegrationSettings
        fields = [
            "enabled", "mode", "test_api_key", "production_api_key", "stella_api_url", "brand", "language",
            "email_enabled", "chat_enabled", "channel_delay", "suppression_window", "do_not_send_tags",
            "intercom_access_token", "alert_recipients", "stella_api_secret", "employee_sync_enabled",
            "feedback_return_enabled", "reconcile_after", "intercom_notes_enabled", "intercom_note_author_id",
            "intercom_region",
            # Inbox app and service recovery.
            "low_rating_threshold", "low_rating_tag", "low_rating_note", "low_rating_assign", "low_rating_webhook",
            *WHOM_TO_SURVEY,
        ]  # fmt: skip
        widgets = {name: forms.PasswordInput(render_value=False) for name in SECRET_FIELDS}

    def __init__(self, *args: Any, kept_secrets: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Secrets typed into a submission the form sent back with an error (kept encrypted in the session).
        self.kept_secrets = kept_secrets or {}
        for name in SECRET_FIELDS:
            stored = getattr(self.instance, name)
            field = self.fields[name]
            field.required = False
            field.widget.attrs["placeholder"] = f"stored: {mask_secret(stored)}" if stored else "not set"
            field.widget.attrs["autocomplete"] = "off"
            field.help_text = "Leave empty to keep the stored value." if stored else ""
            if kept := self.kept_secrets.get(name):
                field.widget.attrs["placeholder"] = f"typed: {mask_secret(kept)}, kept until you save"
                field.help_text = "What you typed is kept (not saved yet): save to store it, or type another."
            if settings.SANDBOX and name in SANDBOX_KEY_PREFIXES:
                field.help_text = f"{field.help_text} {sandbox_key_hint(name)}".strip()
        self.fields["intercom_region"].required = False
        for name in WHOM_TO_SURVEY:  # see clean: a form posted without them keeps them
            self.fields[name].required = False
        secret = self.fields["stella_api_secret"]
        secret.help_text = f"{IntegrationSettings._meta.get_field('stella_api_secret').help_text} {secret.help_text}"
        if settings.SANDBOX:
            secret.help_text += f" Sandbox: its Stella takes the secret {settings.SANDBOX_STELLA_API_SECRET}."

    def has_changed(self) -> bool:
        # An account added with the default settings still gets its settings row.
        return super().has_changed() or self.instance.pk is None

    def _clean_secret(self, name: str) -> str:
        return self.cleaned_data.get(name) or self.kept_secrets.get(name) or getattr(self.instance, name)

    def clean_test_api_key(self) -> str:
        return self._clean_secret("test_api_key")

    def clean_production_api_key(self) -> str:
        return self._clean_secret("production_api_key")

    def clean_intercom_access_token(self) -> str:
        return self._clean_secret("intercom_access_token")

    def clean_stella_api_secret(self) -> str:
        return self._clean_secret("stella_api_secret")

    def clean_intercom_region(self) -> str:
        """Left out of the form keeps the stored region (a form from before regions had none)."""
        return self.cleaned_data.get("intercom_region") or self.instance.intercom_region

    def clean_low_rating_webhook(self) -> str:
        return self._clean_secret("low_rating_webhook")

    def clean(self) -> dict[str, Any]:
        """A rule of whom to survey the posted form leaves out (a script's post, a page from before it was on the
        form) keeps its stored value; one left empty is checked as the model has it."""
        cleaned = super().clean() or self.cleaned_data
        for name in WHOM_TO_SURVEY:
            if self.add_prefix(name) not in self.data:
                cleaned[name] = getattr(self.instance, name)
        return cleaned

    def clean_reconcile_after(self) -> timedelta:
        """Empty (or left out of the form) keeps the stored time: 0 would flag every request at once."""
        if not str(self.data.get(self.add_prefix("reconcile_after"), "")).strip():
            return self.instance.reconcile_after
        value: timedelta = self.cleaned_data["reconcile_after"]
        return value


class IntegrationSettingsInline(admin.StackedInline):
    model = IntegrationSettings
    form = IntegrationSettingsForm
    can_delete = False
    min_num = 1
    max_num = 1
    readonly_fields = ["intercom_teams"]
    fieldsets = [
        (None, {"fields": ["enabled", "mode"]}),
        ("Stella Connect", {"fields": ["test_api_key", "production_api_key", "stella_api_url", "brand", "language"]}),
        (
            "Rules",
            {"fields": ["email_enabled", "chat_enabled", "channel_delay", "suppression_window", "do_not_send_tags"]},
        ),
        ("Rules: whom to survey", {"fields": ["intercom_teams", *WHOM_TO_SURVEY]}),
        (
            "Stella: employees and feedback",
            {"fields": ["stella_api_secret", "employee_sync_enabled", "feedback_return_enabled", "reconcile_after"]},
        ),
        (
            "Intercom",
            {
                "fields": [
                    "intercom_access_token",
                    "intercom_region",
                    "intercom_notes_enabled",
                    "intercom_note_author_id",
                ]
            },
        ),
        ("Error-rate alert", {"fields": ["alert_recipients"]}),
        (
            "Inbox app and service recovery",
            {
                "fields": [
                    "low_rating_threshold", "low_rating_tag", "low_rating_note", "low_rating_assign",
                    "low_rating_webhook",
                ],
                "description": "On a low rating: any of these, and an email to the alert recipients above. "
                "Intercom actions are made as the Intercom note author.",
            },
        ),
    ]  # fmt: skip

    @admin.display(description="Intercom teams")
    def intercom_teams(self, integration: IntegrationSettings | None) -> str:
        """The workspace's teams by name beside their ids, for the team rules (asked of Intercom: GET /teams)."""
        if integration is None or integration.pk is None:
            return "Save the account, connected with Intercom, to see its teams."
        return render_to_string("admin/surveys/account/intercom_teams.html", {"found": account_teams(integration)})


# Where a secret typed into a form sent back with an error waits for the corrected save, and for how long.
KEPT_SECRETS = "account_form_secrets"
KEPT_SECONDS = 600


def _kept_secrets_read(request: HttpRequest, key: str) -> dict[str, str]:
    kept = request.session.get(key)
    if not kept or kept.get("expires", 0) < time.time():
        return {}
    try:
        return {name: secret_decrypt(value) for name, value in kept["secrets"].items() if name in SECRET_FIELDS}
    except SecretUndecryptable:
        return {}


def problems_html(problems: list[Problem]) -> str:
    """Each problem with its fix (linked where it is made); "Nothing to fix" only when there is none."""
    return render_to_string("admin/surveys/account/problems.html", {"problems": problems})


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    filter_horizontal = ["support_users"]
    change_form_template = "admin/surveys/account/change_form.html"
    # What needs fixing right after the name: on a 1366 px screen nothing that matters is off to the right.
    # The keys (masked) are on the account's page: in the list they pushed the workspace off a 1366 px screen.
    list_display = ["name", "workspace", "problems", "enabled", "mode", "channels", "delay", "window"]
    list_select_related = ["integration", "health"]
    search_fields = ["name", "intercom_workspace_id"]
    list_filter = ["integration__enabled", "integration__mode"]
    readonly_fields = ["attention", "stella_sync_status", "stella_unknown_teammates"]
    inlines = [IntegrationSettingsInline]
    actions = ["sync_employees_now", "pull_feedback_now"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """In the sandbox, a new account comes with a workspace id of its own, which the sandbox's Intercom connects
        (the real one's comes from the customer's Intercom)."""
        initial = super().get_changeform_initial_data(request)
        if settings.SANDBOX:
            initial.setdefault("intercom_workspace_id", f"sandbox-{secrets.token_hex(4)}")
        return initial

    def get_fields(self, request: HttpRequest, obj: Account | None = None) -> tuple[str, ...]:
        fields = ("name", "intercom_workspace_id", "support_users")
        return ("attention", *fields) if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> "_FieldsetSpec":
        account: _FieldsetSpec = [(None, {"fields": self.get_fields(request, obj)})]
        if obj is None:
            return account
        return [*account, ("Stella sync", {"fields": ["stella_sync_status", "stella_unknown_teammates"]})]

    @admin.display(description="workspace", ordering="intercom_workspace_id")
    def workspace(self, account: Account) -> str:
        return account.intercom_workspace_id

    @admin.display(boolean=True, ordering="integration__enabled")
    def enabled(self, account: Account) -> bool:
        return account.integration.enabled

    @admin.display(ordering="integration__mode")
    def mode(self, account: Account) -> str:
        return account.integration.get_mode_display()

    @admin.display
    def channels(self, account: Account) -> str:
        return ", ".join(sorted(channel.label for channel in account.integration.enabled_channels)) or "none"

    @admin.display(description="delay")
    def delay(self, account: Account) -> str:
        return format_duration(account.integration.channel_delay)

    @admin.display(description="suppression")
    def window(self, account: Account) -> str:
        return format_duration(account.integration.suppression_window)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's accounts with their problems, read for the page at once (surveys/reporting/attention.py)."""
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)
        found = accounts_attention(Account.objects.filter(pk__in=[account.pk for account in page]), now=timezone.now())
        by_pk = {account.pk: problems for account, problems in found.items()}
        for account in page:
            account.attention_problems = by_pk.get(account.pk, [])
        return changelist

    @admin.display(description="needs attention")
    def problems(self, account: Account) -> str:
        problems = getattr(account, "attention_problems", None)
        if problems is None:
            problems = account_attention(account, now=timezone.now())
        return problems_html(problems)

    @admin.display(description="needs attention")
    def attention(self, account: Account) -> str:
        return problems_html(account_attention(account, now=timezone.now()))

    @admin.display(description="reading back from Stella")
    def stella_sync_status(self, account: Account) -> str:
        return feedback.stella_sync_block(account)

    @admin.display(description="teammates Stella won't recognise")
    def stella_unknown_teammates(self, account: Account) -> str:
        return feedback.unknown_teammates_block(account)

    # Configuration on record (surveys/admin/configuration.py): what the form saves is put down to the user, and
    # the page shows the account's history below the form.
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        with configuration_changed_by(Source.ADMIN, user=request.user):
            return super().add_view(request, form_url, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        with configuration_changed_by(Source.ADMIN, user=request.user):
            return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False, change: bool = False,
        form_url: str = "", obj: Account | None = None,
    ) -> HttpResponse:  # fmt: skip
        if obj is not None and obj.pk:
            context.update(configuration.history_context(self, request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @method_decorator(sensitive_post_parameters(*(f"integration-0-{name}" for name in SECRET_FIELDS)))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Keys typed into the form stay out of error reports. A secret typed into a submission that comes back with
        an error (a wrong duration, say) is kept, encrypted in the session as OAuth keeps a token, never in the page:
        the corrected save stores it, rather than silently nothing."""
        if request.method != "POST":
            return super().changeform_view(request, *args, **kwargs)
        key = f"{KEPT_SECRETS}:{kwargs.get('object_id') or (args[0] if args else 'add')}"
        kept = _kept_secrets_read(request, key)
        typed = {name: request.POST.get(f"integration-0-{name}", "") for name in SECRET_FIELDS}
        request.kept_secrets = {**kept, **{name: value for name, value in typed.items() if value}}  # type: ignore[attr-defined]
        response = super().changeform_view(request, *args, **kwargs)
        if response.status_code in (301, 302) or not request.kept_secrets:  # type: ignore[attr-defined]
            request.session.pop(key, None)
        else:
            request.session[key] = {
                "secrets": {name: secret_encrypt(value) for name, value in request.kept_secrets.items()},  # type: ignore[attr-defined]
                "expires": time.time() + KEPT_SECONDS,
            }
        return response

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Account, inline: admin.options.InlineModelAdmin, prefix: str
    ) -> dict[str, Any]:
        formset_kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, IntegrationSettingsInline):
            formset_kwargs["form_kwargs"] = {"kept_secrets": getattr(request, "kept_secrets", {})}
        return formset_kwargs

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool) -> None:
        """Settings are saved through the service, so a changed key visibly lifts a pause."""
        if formset.model is not IntegrationSettings:
            super().save_formset(request, form, formset, change)
            return
        for integration in formset.save(commit=False):
            integration_settings_update(integration)

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        integration_health_ensure(form.instance)

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "<int:account_id>/go-live/",
                self.admin_site.admin_view(self.go_live_view),
                name="surveys_account_go_live",
            ),
            path(
                "<int:account_id>/connect-intercom/",
                self.admin_site.admin_view(self.connect_intercom_view),
                name="surveys_account_connect_intercom",
            ),
            *dry_run.urls(self),
            *onboarding.urls(self),
            *configuration.urls(self),
            *feedback.urls(self),
        ]
        return urls + super().get_urls()

    @admin.action(description="Sync employees with Stella now", permissions=["change"])
    def sync_employees_now(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        for account in queryset.select_related("integration"):
            result = stella_sync_job_run(account, job="employees", now=timezone.now())
            feedback.stella_sync_message(request, account, result)

    @admin.action(description="Pull feedback from Stella now", permissions=["change"])
    def pull_feedback_now(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        for account in queryset.select_related("integration"):
            result = stella_sync_job_run(account, job="feedback", now=timezone.now())
            feedback.stella_sync_message(request, account, result)

    def go_live_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Switch from the test key to the production key, after a look at how testing went."""
        account = get_object_or_404(Account.objects.select_related("integration"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        integration = account.integration
        back = redirect("admin:surveys_account_change", account.pk)
        if integration.mode == IntegrationSettings.Mode.LIVE:
            self.message_user(request, f"{account} is already live.", messages.INFO)
            return back
        if request.method == "POST":
            if not integration.production_api_key:
                self.message_user(request, "Enter the production API key first.", messages.ERROR)
                return back
            with configuration_changed_by(Source.GO_LIVE, user=request.user):
                integration_settings_update(integration, mode=IntegrationSettings.Mode.LIVE)
            self.message_user(request, f"{account} is live: surveys now go to customers with the production key.")
            return back
        context = {
            **self.admin_site.each_context(request),
            "title": f"Switch {account} to live?",
            "account": account,
            "opts": self.model._meta,
            "original": account,
            "week": account_go_live_week(account),
            "problems": account_attention(account, now=timezone.now()),
            "has_production_key": bool(integration.production_api_key),
        }
        return TemplateResponse(request, "admin/surveys/account/go_live.html", context)

    def connect_intercom_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(Account, pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        return redirect(account_authorize_url(request, account))


@admin.register(Teammate)
class TeammateAdmin(admin.ModelAdmin):
    """Who Stella should credit for an Intercom teammate, when not their email (or for a bot)."""

    # Who, whose, whether Stella knows them and the custom id to type: the Intercom id and when it was looked up are
    # on the teammate's page, so the list fits a 1366 px screen with the Stella match in view.
    list_display = ["name", "email", "account", "stella_match", "stella_custom_id", "is_bot"]
    list_editable = ["stella_custom_id"]
    list_filter = ["account", "is_bot", "stella_match"]
    list_select_related = ["account"]
    search_fields = ["name", "email", "=intercom_id", "stella_custom_id"]
    readonly_fields = ["fetched_at", "stella_match", "stella_checked_at"]

    def save_model(self, request: HttpRequest, obj: Teammate, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if {"stella_custom_id", "email", "is_bot"} & set(form.changed_data):
            # Whether Stella will recognise them now, from the employees last synced: no wait for the next sync.
            teammate_match_refresh(obj, now=timezone.now())
