"""The account's onboarding checklist: every step from a new account to live, each done or to do, with
what to do next; and the page's actions (connect with Intercom, check the token, send a test request)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from portal.history import Source, configuration_changed_by
from surveys.accounts.checklist import account_checklist
from surveys.accounts.oauth import account_authorize_url
from surveys.accounts.onboarding import account_intercom_check
from surveys.accounts.test_request import TestRequestRefused, account_test_request_send
from surveys.models import Account, ApiRequest, SurveyRequest
from surveys.reporting.presenters import present


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The account admin's extra pages for this part, named admin:surveys_account_*."""

    def checklist(request: HttpRequest, account_id: int) -> HttpResponse:
        return checklist_view(model_admin, request, account_id)

    return [
        path(
            "<int:account_id>/checklist/",
            model_admin.admin_site.admin_view(checklist),
            name="surveys_account_checklist",
        )
    ]


def checklist_view(model_admin: admin.ModelAdmin, request: HttpRequest, account_id: int) -> HttpResponse:
    """GET: the checklist. POST: one of its actions, then back to it."""
    account = get_object_or_404(Account.objects.select_related("integration", "health"), pk=account_id)
    if not model_admin.has_view_permission(request, account):
        raise PermissionDenied
    if request.method == "POST":
        if not model_admin.has_change_permission(request, account):
            raise PermissionDenied
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            messages.error(request, "Unknown action: nothing was done.")
            return _back(account)
        with configuration_changed_by(Source.CHECKLIST, user=request.user):
            return action(request, account)
    checklist = account_checklist(
        account,
        webhook_url=webhook_url(request),
        sandbox=settings.SANDBOX,
        fallback_employee_email=getattr(request.user, "email", ""),
        sandbox_secret=getattr(settings, "SANDBOX_STELLA_API_SECRET", ""),
        inbox_app_urls=tuple(
            request.build_absolute_uri(reverse(name))
            for name in ("intercom_canvas_initialize", "intercom_canvas_submit")
        ),
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Onboarding checklist: {account}",
        "account": account,
        "opts": model_admin.model._meta,
        "original": account,
        "checklist": checklist,
        "last_closure": present(checklist.last_closure, csm=True) if checklist.last_closure else None,
        "last_test_call": present(checklist.last_test_call, csm=True) if checklist.last_test_call else None,
        "can_change": model_admin.has_change_permission(request, account),
        # The sandbox's Intercom closes a conversation on request, so every step can be done locally.
        "sandbox_closure_url": reverse("sandbox_simulate_closure", args=[account.pk]) if settings.SANDBOX else "",
    }
    return TemplateResponse(request, "admin/surveys/account/checklist.html", context)


def webhook_url(request: HttpRequest) -> str:
    """The URL to paste into Intercom, on the address the CSM reached this page at: the portal's public one
    (behind a proxy, as its X-Forwarded headers and ALLOWED_HOSTS say)."""
    return request.build_absolute_uri(reverse("intercom_webhook"))


def _back(account: Account) -> HttpResponse:
    return redirect("admin:surveys_account_checklist", account.pk)


def _connect_intercom(request: HttpRequest, account: Account) -> HttpResponse:
    return redirect(account_authorize_url(request, account, back="checklist"))


def _check_intercom(request: HttpRequest, account: Account) -> HttpResponse:
    check = account_intercom_check(account, now=timezone.now())
    level = messages.SUCCESS if check.ok else messages.WARNING if check.me else messages.ERROR
    messages.add_message(request, level, check.message)
    return _back(account)


def _send_test_request(request: HttpRequest, account: Account) -> HttpResponse:
    try:
        survey_request = account_test_request_send(
            account,
            by=request.user.get_username(),
            employee_email=request.POST.get("employee_email", ""),
            now=timezone.now(),
        )
    except TestRequestRefused as exc:
        messages.error(request, str(exc))
        return _back(account)
    call = survey_request.api_requests.order_by("-created_at").first()
    level = messages.SUCCESS if call is not None and call.outcome == ApiRequest.Outcome.SENT else messages.WARNING
    messages.add_message(request, level, _test_request_words(survey_request, call))
    return _back(account)


def _test_request_words(survey_request: SurveyRequest, call: ApiRequest | None) -> str:
    """What came of the test request, with links to it and to Test Requests."""
    request_link = format_html(
        '<a href="{}">test request {}</a>',
        reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk]),
        survey_request.conversation_id,
    )
    shown = present(call, csm=True) if call is not None else present(survey_request, csm=True)
    outcome = f"{shown.outcome}: {shown.reason}" if shown.reason else shown.outcome
    # What a refusal means, and what to do; an accepted test request needs no words (its survey goes to Stella's
    # test address, not to "the customer" the general explanation speaks of).
    explanation = shown.explanation if shown.reason else ""
    if call is None or call.rejected_locally:
        return format_html("The {} was not sent: {}. {} Stella was not called.", request_link, outcome, explanation)
    tab = reverse("admin:surveys_testapirequest_changelist") + f"?account__id__exact={survey_request.account_id}"
    return format_html(
        'The {} went to Stella with the test key: {}. {} See it under <a href="{}">Test Requests</a>.',
        request_link,
        outcome,
        explanation,
        tab,
    )


ACTIONS: dict[str, Callable[[HttpRequest, Account], HttpResponse]] = {
    "connect_intercom": _connect_intercom,
    "check_intercom": _check_intercom,
    "send_test_request": _send_test_request,
}
