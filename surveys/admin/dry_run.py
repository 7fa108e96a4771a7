"""The account's dry run: its last days' closures replayed under rules a CSM proposes, beside what
happened. It reads only: nothing is sent, saved or queued (surveys/decisions/dry_run.py)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from portal.durations import HumanDurationField
from surveys.decisions.dry_run import (
    DEFAULT_DAYS,
    MAX_DAYS,
    RULE_FIELDS,
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
    days = forms.IntegerField(
        min_value=1, max_value=MAX_DAYS, initial=DEFAULT_DAYS, help_text="Replay the closures of this many days."
    )


def dry_run_view(model_admin: admin.ModelAdmin, request: HttpRequest, account_id: int) -> HttpResponse:
    account = get_object_or_404(Account.objects.select_related("integration"), pk=account_id)
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    integration = account.integration
    initial = {**{name: getattr(integration, name) for name in RULE_FIELDS}, "days": DEFAULT_DAYS}
    form = DryRunForm(request.GET if "days" in request.GET else None, initial=initial)
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
