"""The account's dry run: its last days' closures replayed under rules a CSM proposes, beside what
happened. It reads only: nothing is sent, saved or queued (surveys/decisions/dry_run.py)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from portal.durations import HumanDurationField
from surveys.decisions.dry_run import (
    DEFAULT_DAYS,
    MAX_DAYS,
    RULE_FIELDS,
    WHOM_TO_SURVEY,
    DryRunResult,
    dry_run,
    proposed_settings,
    settings_summary,
    signed,
)
from surveys.models import Account, IntegrationSettings
from surveys.reporting.presenters import explanation_of

CHANNELS = ("email_enabled", "chat_enabled")
# The form's fields as settings_summary names them.
SUMMARY_NAMES = {
    "channel_delay": "channel delay",
    "suppression_window": "suppression window",
    "do_not_send_tags": "do-not-send tags",
    "include_teams": "included teams",
    "exclude_teams": "excluded teams",
    "min_teammate_replies": "minimum teammate replies",
    "max_days_since_reply": "days since the last reply",
    "sample_percent": "sample",
    "quiet_hours": "quiet hours",
    "quiet_hours_zone": "quiet hours",
    "attribution": "credit",
}


def _model_field(name: str) -> Any:
    return IntegrationSettings._meta.get_field(name)


class DryRunForm(forms.Form):
    """The rules to try, as the account form has them, and how many days of closures to replay."""

    email_enabled = forms.BooleanField(label=_model_field("email_enabled").verbose_name, required=False)
    chat_enabled = forms.BooleanField(label=_model_field("chat_enabled").verbose_name, required=False)
    channel_delay = HumanDurationField(help_text=_model_field("channel_delay").help_text + " E.g. 10m.")
    suppression_window = HumanDurationField(help_text=_model_field("suppression_window").help_text + " E.g. 7d.")
    do_not_send_tags = forms.CharField(
        label="Do-not-send tags", required=False, help_text=_model_field("do_not_send_tags").help_text
    )
    include_teams = forms.CharField(
        label="Included teams", required=False, help_text=_model_field("include_teams").help_text
    )
    exclude_teams = forms.CharField(
        label="Excluded teams", required=False, help_text=_model_field("exclude_teams").help_text
    )
    min_teammate_replies = forms.IntegerField(
        label="Minimum teammate replies",
        min_value=0,
        max_value=100,
        help_text=_model_field("min_teammate_replies").help_text,
    )
    max_days_since_reply = forms.IntegerField(
        label="Max days since reply",
        min_value=0,
        max_value=365,
        required=False,
        help_text=_model_field("max_days_since_reply").help_text,
    )
    sample_percent = forms.IntegerField(
        label="Sample %", min_value=1, max_value=100, help_text=_model_field("sample_percent").help_text
    )
    attribution = forms.ChoiceField(
        label="Credit", choices=_model_field("attribution").choices, help_text=_model_field("attribution").help_text
    )
    time_zone = forms.CharField(label="Time zone", validators=_model_field("time_zone").validators)
    quiet_hours = forms.CharField(
        label="Quiet hours",
        required=False,
        validators=_model_field("quiet_hours").validators,
        help_text=_model_field("quiet_hours").help_text,
    )
    quiet_hours_zone = forms.ChoiceField(
        label="Quiet hours in",
        choices=_model_field("quiet_hours_zone").choices,
        help_text=_model_field("quiet_hours_zone").help_text,
    )
    days = forms.IntegerField(
        min_value=1, max_value=MAX_DAYS, initial=DEFAULT_DAYS, help_text="Replay the closures of this many days."
    )


def dry_run_view(model_admin: admin.ModelAdmin, request: HttpRequest, account_id: int) -> HttpResponse:
    account = get_object_or_404(Account.objects.select_related("integration"), pk=account_id)
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    integration = account.integration
    initial = {**{name: getattr(integration, name) for name in RULE_FIELDS}, "days": DEFAULT_DAYS}
    form = DryRunForm(_with_current(request, integration) if "days" in request.GET else None, initial=initial)
    result = None
    if form.is_bound and form.is_valid():
        proposed = proposed_settings(integration, **{name: form.cleaned_data[name] for name in RULE_FIELDS})
        result = dry_run(account, proposed, days=form.cleaned_data["days"])
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Dry run for {account}",
        "account": account,
        "current_channels": settings_summary(integration)["channels"],
        "opts": model_admin.model._meta,
        "original": account,
        "form": form,
        "result": result,
        "fields": _fields_with_current(form, integration),
        "rows": _table(result),
        "changed": result.changed if result else [],
    }
    return TemplateResponse(request, "admin/surveys/account/dry_run.html", context)


def _with_current(request: HttpRequest, integration: IntegrationSettings) -> QueryDict:
    """The query, with the current value of each rule of whom to survey it leaves out (a link made before they
    were on the form keeps them as they are)."""
    data = request.GET.copy()
    for name in WHOM_TO_SURVEY:
        if name not in data:
            value = getattr(integration, name)
            data[name] = "" if value is None else str(value)
    return data


def _fields_with_current(form: DryRunForm, integration: IntegrationSettings) -> list[tuple[Any, str]]:
    """Each field but the channels' (shown together), with the account's current value beside it."""
    current = settings_summary(integration)
    return [(form[name], current.get(SUMMARY_NAMES.get(name, ""), "")) for name in form.fields if name not in CHANNELS]


def _table(result: DryRunResult | None) -> list[dict[str, Any]]:
    """Each decision and reason with its counts, the change signed, and the reason explained as everywhere else."""
    if result is None:
        return []
    return [
        {
            "decision": row.result.label,
            "reason": row.result.reason_label,
            "explanation": explanation_of(row.result.reason, csm=True),
            "current": row.current,
            "proposed": row.proposed,
            "change": signed(row.change),
        }
        for row in result.rows
    ]


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The account admin's extra pages for this part, named admin:surveys_account_*."""

    def view(request: HttpRequest, account_id: int) -> HttpResponse:
        return dry_run_view(model_admin, request, account_id)

    return [
        path(
            "<int:account_id>/dry-run/",
            model_admin.admin_site.admin_view(view),
            name="surveys_account_dry_run",
        )
    ]
