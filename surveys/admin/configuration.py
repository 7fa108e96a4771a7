"""The account page's configuration history: every recorded change in words (old → new, who, when, through what),
and putting a version's rules back in one action, itself recorded (surveys/accounts/configuration.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format

from surveys.accounts.configuration import NotRestorable, account_configuration_history, integration_rules_restore
from surveys.models import Account, IntegrationSettings

# Where the history sits on the account's page.
ANCHOR = "configuration-history"


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The account admin's extra pages for this part, named admin:surveys_account_*."""

    def restore(request: HttpRequest, account_id: int, history_id: int) -> HttpResponse:
        return restore_view(model_admin, request, account_id, history_id)

    return [
        path(
            "<int:account_id>/configuration/<int:history_id>/restore/",
            model_admin.admin_site.admin_view(restore),
            name="surveys_account_rules_restore",
        )
    ]


def rule_fields(model_admin: admin.ModelAdmin) -> list[str]:
    """The settings a restore puts back: those of the settings form's fieldsets named "Rules…", as the admin
    shows them, so a rule added to that section is restorable without more work (what the section only shows,
    such as Intercom's team names, is not a setting)."""
    settings = {field.name for field in IntegrationSettings._meta.concrete_fields}
    inline = next((inline for inline in model_admin.inlines if inline.model is IntegrationSettings), None)
    fieldsets = [options["fields"] for title, options in getattr(inline, "fieldsets", None) or () if _is_rules(title)]
    return [name for fields in fieldsets for name in _names(fields) if name in settings]


def _is_rules(title: object) -> bool:
    return str(title or "").startswith("Rules")


def _names(fields: Sequence[str | Sequence[str]]) -> list[str]:
    """A fieldset's field names, those shown side by side on one line included."""
    return [name for entry in fields for name in ((entry,) if isinstance(entry, str) else entry)]


def history_context(model_admin: admin.ModelAdmin, request: HttpRequest, account: Account) -> dict[str, Any]:
    """What the account's change page shows of its history."""
    return {
        "configuration_history": account_configuration_history(account, rule_fields=rule_fields(model_admin)),
        "configuration_can_restore": model_admin.has_change_permission(request, account),
        "configuration_anchor": ANCHOR,
    }


def restore_view(model_admin: admin.ModelAdmin, request: HttpRequest, account_id: int, history_id: int) -> HttpResponse:
    """POST: the rules as they were in one recorded version of the settings, then back to the account's page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    account = get_object_or_404(Account.objects.select_related("integration"), pk=account_id)
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    back = redirect(f"{reverse('admin:surveys_account_change', args=[account.pk])}#{ANCHOR}")
    record = IntegrationSettings.history.filter(id=account.integration.pk, history_id=history_id).first()
    try:
        changed = integration_rules_restore(
            account.integration, history_id=history_id, fields=rule_fields(model_admin), user=request.user
        )
    except NotRestorable as exc:
        messages.error(request, f"{exc} Nothing was changed.")
        return back
    except ValidationError as exc:  # a value the rules no longer allow
        messages.error(request, f"Those rules can't be put back as they were: {'; '.join(exc.messages)}. Nothing "
                       "was changed.")  # fmt: skip
        return back
    assert record is not None  # integration_rules_restore refused it otherwise
    when = date_format(timezone.localtime(record.history_date), "DATETIME_FORMAT")
    if not changed:
        messages.info(request, f"The rules are already as they were on {when}: nothing was changed.")
        return back
    labels = ", ".join(
        str(getattr(IntegrationSettings._meta.get_field(name), "verbose_name", name)) for name in changed
    )
    model_admin.log_change(request, account, f"Restored the rules of {when}: {labels}.")
    messages.success(request, f"Restored {account}'s rules as they were on {when} ({labels}).")
    return back
