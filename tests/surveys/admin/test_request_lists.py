"""The request lists a CSM works through: tabs with counts that keep the filters, Invalid Requests
grouped by reason with the fix, resolved rows, one vocabulary, and the front page's attention list."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import messages
from integrations.models import InboundWebhook
from surveys.decisions.rules import Decision, DoNotSendReason
from surveys.models import ApiRequest, SurveyRequest
from surveys.reporting.counts import daily_counts_rebuild
from surveys.selectors import account_test_week
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = pytest.mark.django_db
S = SurveyRequest.Status
O = ApiRequest.Outcome  # noqa: E741


def call(survey_request, *, outcome=O.SENT, message="", mode="test"):
    return ApiRequest.objects.create(
        survey_request=survey_request,
        account=survey_request.account,
        mode=mode,
        url="https://stella.example/v1/requests",
        outcome=outcome,
        error_message=message,
        status_code=201 if outcome == O.SENT else 400,
    )


@pytest.fixture
def acme():
    return AccountFactory(name="Acme", intercom_workspace_id="wsacme")


@pytest.fixture
def globex():
    return AccountFactory(name="Globex", intercom_workspace_id="wsglobex")


def html_of(admin_client, name, **params):
    response = admin_client.get(reverse(f"admin:surveys_{name}_changelist"), params)
    assert response.status_code == 200
    return response, response.content.decode()


def test_tabs_count_per_kind_and_keep_the_account_filter(admin_client, acme, globex):
    for account, n in ((acme, 3), (globex, 1)):
        for _ in range(n):
            call(
                SurveyRequestFactory(account=account, status=S.INVALID), outcome=O.INVALID, message="Employee not found"
            )
    SurveyRequestFactory(account=acme, status=S.SUPPRESSED, decision=Decision.SUPPRESSED)
    daily_counts_rebuild()

    response, _ = html_of(admin_client, "invalidapirequest", account__id__exact=acme.pk, p=2)
    tabs = {tab.label: tab for tab in response.context["admin_tabs"]}
    assert [tab.label for tab in response.context["admin_tabs"]][:3] == [
        "Requests",
        "Test Requests",
        "Invalid Requests",
    ]
    assert tabs["Invalid Requests"].current and tabs["Invalid Requests"].count == 3  # Acme's only
    assert tabs["Suppressed"].count == 1
    assert f"account__id__exact={acme.pk}" in tabs["Test Requests"].url
    assert "p=" not in tabs["Test Requests"].url  # a page number belongs to one list
    assert "outcome=suppressed" in tabs["Suppressed"].url and f"account__id__exact={acme.pk}" in tabs["Suppressed"].url

    response, _ = html_of(admin_client, "invalidapirequest")
    assert {tab.label: tab.count for tab in response.context["admin_tabs"]}["Invalid Requests"] == 4


def test_an_outcome_tab_lists_exactly_that_outcome(admin_client, acme):
    sent = SurveyRequestFactory(account=acme, sent=True)
    flagged = SurveyRequestFactory(
        account=acme, sent=True, decision=Decision.DO_NOT_SEND, reason=DoNotSendReason.BOT_ASSIGNEE
    )
    response, html = html_of(admin_client, "surveyrequest", outcome="do_not_send")
    assert [row.pk for row in response.context["cl"].result_list] == [flagged.pk]
    assert "Sent, flagged do not send" in html
    response, _ = html_of(admin_client, "surveyrequest", outcome="sent")
    assert [row.pk for row in response.context["cl"].result_list] == [sent.pk]


def test_invalid_requests_are_grouped_by_reason_with_the_fix(admin_client, acme, globex):
    for _ in range(2):
        call(SurveyRequestFactory(account=acme, status=S.INVALID), outcome=O.INVALID, message="Employee not found")
    call(SurveyRequestFactory(account=globex, status=S.INVALID), outcome=O.INVALID, message="API key rejected")

    response, html = html_of(admin_client, "invalidapirequest")
    groups = {(group.message, group.account): group for group in response.context["reason_groups"].groups}
    employee = groups["Employee not found", "Acme"]
    assert employee.count == 2
    assert employee.fix == messages.STELLA_EMPLOYEE_NOT_FOUND.fix
    assert employee.fix_url == reverse("admin:surveys_teammate_changelist") + f"?account__id__exact={acme.pk}"
    [(name, count, url)] = employee.teammates  # who to map, and where: the Teammates list, narrowed to them
    assert (name, count) == ("Tess Teammate", 2) and "q=tess%40support.example" in url
    assert groups["API key rejected", "Globex"].teammates == []
    key = groups["API key rejected", "Globex"]
    assert key.fix_url.startswith(reverse("admin:surveys_account_change", args=[globex.pk]))
    assert "Still to fix, by reason" in html
    # Each group's link lists exactly its rows.
    listed, _ = html_of(
        admin_client, "invalidapirequest", error="Employee not found", account__id__exact=acme.pk, resolved="no"
    )
    assert len(listed.context["cl"].result_list) == 2


def test_a_resend_stella_accepts_resolves_the_earlier_invalid_rows(admin_client, acme):
    survey_request = SurveyRequestFactory(account=acme, status=S.INVALID)
    rejected = call(survey_request, outcome=O.INVALID, message="API key rejected")
    assert account_test_week(acme)["invalid"] == 1

    SurveyRequest.objects.filter(pk=survey_request.pk).update(status=S.SENT, sent_at=timezone.now())
    call(survey_request)

    response, html = html_of(admin_client, "invalidapirequest")
    assert response.context["reason_groups"].groups == []  # nothing left to fix
    assert "✓ resolved by a resend" in html
    detail = admin_client.get(reverse("admin:surveys_apirequest_change", args=[rejected.pk])).content.decode()
    assert "Resolved: resent and accepted by Stella" in detail
    assert account_test_week(acme)["invalid"] == 0  # go-live counts only what is still wrong
    unresolved, _ = html_of(admin_client, "invalidapirequest", resolved="no")
    assert list(unresolved.context["cl"].result_list) == []


def test_one_vocabulary_for_a_do_not_send_request(admin_client, acme):
    flagged = SurveyRequestFactory(
        account=acme, sent=True, decision=Decision.DO_NOT_SEND, reason=DoNotSendReason.BOT_ASSIGNEE,
        verdicts={"assignee_is_bot": "bot_assignee", "channel_disabled": None},
    )  # fmt: skip
    api_request = call(flagged)
    _, listing = html_of(admin_client, "surveyrequest")
    detail = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[flagged.pk])).content.decode()
    _, calls = html_of(admin_client, "apirequest")
    call_detail = admin_client.get(reverse("admin:surveys_apirequest_change", args=[api_request.pk])).content.decode()
    for html in (listing, detail, calls, call_detail):
        assert "Sent, flagged do not send" in html
        assert "Accepted" not in html
    # Rule verdicts in plain words, not function names.
    assert "Assigned to a bot?" in detail and "Yes: Assigned to a bot" in detail
    assert "assignee is bot" not in detail
    # The call's body reads as indented JSON and its outcome is explained.
    assert "Stella recorded it for reporting" in call_detail


def test_a_final_row_never_says_its_channel_is_to_be_looked_up(admin_client, acme):
    SurveyRequestFactory(account=acme, status=S.INVALID, channel="", decision=Decision.INVALID)
    waiting = SurveyRequestFactory(account=acme, status=S.SCHEDULED, channel="")
    _, html = html_of(admin_client, "surveyrequest")
    assert html.count("To be looked up") == 1 and "Not known" in html
    assert waiting.pk


def test_request_bodies_are_indented_and_filled_read_only_fields_carry_no_help(admin_client, acme):
    api_request = call(SurveyRequestFactory(account=acme, sent=True))
    ApiRequest.objects.filter(pk=api_request.pk).update(
        request_body={
            "customer": {"email": "ada@customer.example"}
        },  # one key a level: PostgreSQL's jsonb reorders keys
        url="https://stella.example/v1/requests",
    )
    html = admin_client.get(reverse("admin:surveys_apirequest_change", args=[api_request.pk])).content.decode()
    assert "{\n  &quot;customer&quot;: {\n    &quot;email&quot;" in html
    # The url field is filled: "Blank: rejected here, Stella was not called." is noise under it.
    assert "Blank: rejected here" not in html


def test_the_front_page_starts_with_what_needs_attention(admin_client, acme, globex):
    quiet = AccountFactory(name="Quiet Co", intercom_workspace_id="wsquiet")
    InboundWebhook.objects.create(workspace_id="wsacme", topic="ping", body={})
    old = InboundWebhook.objects.create(workspace_id="wsglobex", topic="ping", body={})
    InboundWebhook.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))
    globex.health.sending_paused_at = timezone.now()
    globex.health.sending_paused_reason = "API key rejected"
    globex.health.save()
    SurveyRequestFactory(account=acme, sent=True, closed_at=timezone.now())
    daily_counts_rebuild()

    html = admin_client.get(reverse("admin:index")).content.decode()
    attention = html[html.index('id="attention"') : html.index('id="today"')]
    assert "Acme" not in attention  # connected, sending, heard from today
    assert "Globex" in attention and "Sending paused" in attention and "No webhook from Intercom since" in attention
    assert "Quiet Co" in attention and "No webhook received yet" in attention
    assert attention.index("Globex") < attention.index("Quiet Co")  # most problems first
    today = html[html.index('id="today"') :]
    assert ">Sent</a></th><td>1<" in today
    assert quiet.pk


def test_the_to_fix_list_counts_the_latest_invalid_requests_only(acme, rf):
    from surveys.admin.api_requests import invalid_reason_groups

    for message in ("API key rejected", "Employee not found", "Employee not found"):  # the oldest first
        call(SurveyRequestFactory(account=acme, status=S.INVALID), outcome=O.INVALID, message=message)
    everything = invalid_reason_groups(rf.get("/"))
    assert not everything.partial
    assert {(group.message, group.count) for group in everything.groups} == {
        ("Employee not found", 2), ("API key rejected", 1)
    }  # fmt: skip
    latest = invalid_reason_groups(rf.get("/"), window=2)
    assert latest.partial  # and the page says the counts leave older ones out
    assert [(group.message, group.count) for group in latest.groups] == [("Employee not found", 2)]
