from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.models import InboundWebhook
from surveys.models import ApiRequest, IntegrationSettings, SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import load_fixture, notification, post_webhook

pytestmark = pytest.mark.django_db
S = SurveyRequest.Status
O = ApiRequest.Outcome  # noqa: E741


def call(survey_request, *, mode="test", outcome=O.SENT, message="", url="https://stella/v1/requests"):
    return ApiRequest.objects.create(
        survey_request=survey_request,
        account=survey_request.account,
        mode=mode,
        url=url,
        outcome=outcome,
        error_message=message,
    )


@pytest.fixture
def log(account):
    ok = SurveyRequestFactory(account=account, status=S.SENT, conversation_id="ok-1")
    bad = SurveyRequestFactory(account=account, status=S.INVALID, conversation_id="bad-1")
    live = SurveyRequestFactory(account=account, status=S.SENT, conversation_id="live-1", mode="live")
    return {
        "test_sent": call(ok),
        "test_invalid": call(bad, outcome=O.INVALID, message="Employee not found"),
        "live_sent": call(live, mode="live"),
        "local_invalid": call(bad, mode="live", outcome=O.INVALID, message="Invalid customer", url=""),
    }


def listed(admin_client, tab, **params):
    response = admin_client.get(reverse(f"admin:surveys_{tab}_changelist"), params)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def test_admin_tabs_mirror_stellas_api_status_page(admin_client, log):
    assert listed(admin_client, "apirequest") == {row.pk for row in log.values()}
    assert listed(admin_client, "testapirequest") == {log["test_sent"].pk, log["test_invalid"].pk}
    assert listed(admin_client, "invalidapirequest") == {log["test_invalid"].pk, log["local_invalid"].pk}
    assert listed(admin_client, "apirequest", error="Invalid customer", mode__exact="live") == {log["local_invalid"].pk}


def test_admin_tab_shows_the_conversation_and_reason(admin_client, log):
    html = admin_client.get(reverse("admin:surveys_invalidapirequest_changelist")).content.decode()
    assert "bad-1" in html and "Employee not found" in html and "Stella has no employee" in html


def test_admin_tabs_never_count_the_log(admin_client, log):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse("admin:surveys_apirequest_changelist"))
    log_queries = [q["sql"] for q in queries.captured_queries if "surveys_apirequest" in q["sql"]]
    assert log_queries and not any("COUNT(" in sql.upper() for sql in log_queries)
    assert len(queries.captured_queries) <= 10


def test_survey_request_and_its_calls_link_both_ways(admin_client, log):
    survey_request = log["test_invalid"].survey_request
    page = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])).content.decode()
    assert reverse("admin:surveys_apirequest_change", args=[log["test_invalid"].pk]) in page
    call_page = admin_client.get(
        reverse("admin:surveys_apirequest_change", args=[log["test_invalid"].pk])
    ).content.decode()
    assert reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk]) in call_page


def resend(admin_client, model, pks, **extra):
    return admin_client.post(
        reverse(f"admin:surveys_{model}_changelist"), {"action": "resend", ACTION_CHECKBOX_NAME: pks, **extra}
    )


def test_csm_resends_an_invalid_request(admin_client, log, django_capture_on_commit_callbacks):
    survey_request = log["test_invalid"].survey_request
    with django_capture_on_commit_callbacks(execute=True):
        response = resend(admin_client, "invalidapirequest", [log["test_invalid"].pk])
    assert response.status_code == 302
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.attempts, survey_request.status_detail) == (
        S.SCHEDULED,
        0,
        "Resent by admin",
    )


def test_resending_an_ambiguous_request_asks_first(admin_client, account):
    survey_request = SurveyRequestFactory(account=account, status=S.AMBIGUOUS, status_detail="No answer within 10 s")
    response = resend(admin_client, "surveyrequest", [survey_request.pk])
    assert response.status_code == 200
    assert "may already have reached the customer" in response.content.decode()
    survey_request.refresh_from_db()
    assert survey_request.status == S.AMBIGUOUS

    resend(admin_client, "surveyrequest", [survey_request.pk], confirmed="yes")
    survey_request.refresh_from_db()
    assert survey_request.status == S.SCHEDULED


def test_resend_leaves_sent_requests_alone(admin_client, log):
    sent = log["test_sent"].survey_request
    resend(admin_client, "surveyrequest", [sent.pk])
    sent.refresh_from_db()
    assert sent.status == S.SENT


def test_replaying_an_ignored_webhook_once_its_account_exists(client, admin_client, db):
    post_webhook(client, load_fixture("conversation_admin_closed"))
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.IGNORED
    AccountFactory(intercom_workspace_id="ws1test")
    admin_client.post(
        reverse("admin:integrations_inboundwebhook_changelist"),
        {"action": "replay", ACTION_CHECKBOX_NAME: [webhook.pk]},
    )
    webhook.refresh_from_db()
    assert webhook.status == InboundWebhook.Status.PROCESSED
    assert SurveyRequest.objects.count() == 1
    # Replaying a processed closure again records nothing new.
    admin_client.post(
        reverse("admin:integrations_inboundwebhook_changelist"),
        {"action": "replay", ACTION_CHECKBOX_NAME: [webhook.pk]},
    )
    assert SurveyRequest.objects.count() == 1


def test_webhooks_that_failed_verification_never_replay(client, admin_client, account):
    post_webhook(client, b"not json")
    webhook = InboundWebhook.objects.get()
    response = admin_client.post(
        reverse("admin:integrations_inboundwebhook_changelist"),
        {"action": "replay", ACTION_CHECKBOX_NAME: [webhook.pk]},
        follow=True,
    )
    assert "left alone" in response.content.decode()
    webhook.refresh_from_db()
    assert webhook.status == InboundWebhook.Status.INVALID


def test_going_live_shows_how_testing_went_then_switches(admin_client, account, log):
    url = reverse("admin:surveys_account_go_live", args=[account.pk])
    page = admin_client.get(url)
    assert (page.context["week"]["succeeded"], page.context["week"]["invalid"]) == (1, 1)
    assert IntegrationSettings.objects.get(account=account).mode == "test"
    admin_client.post(url)
    assert IntegrationSettings.objects.get(account=account).mode == "live"


def test_going_live_needs_a_production_key(admin_client, account):
    account.integration.production_api_key = ""
    account.integration.save()
    url = reverse("admin:surveys_account_go_live", args=[account.pk])
    assert "no production API key yet" in admin_client.get(url).content.decode()
    admin_client.post(url)
    assert IntegrationSettings.objects.get(account=account).mode == "test"


def test_old_test_calls_dont_count_towards_going_live(admin_client, account, log):
    ApiRequest.objects.filter(pk=log["test_sent"].pk).update(created_at=timezone.now() - timedelta(days=8))
    page = admin_client.get(reverse("admin:surveys_account_go_live", args=[account.pk]))
    assert page.context["week"]["succeeded"] == 0
    assert "leap of faith" in page.content.decode()


def test_replaying_a_failed_webhook_once_the_bug_is_fixed_processes_it(client, admin_client, account, monkeypatch):
    from surveys.intake import process as intake

    def broken(*args):
        raise KeyError("assignee")

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", broken)
    post_webhook(client, notification("conversation_admin_closed_v2"))
    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.FAILED
    monkeypatch.undo()  # the fix is deployed
    admin_client.post(
        reverse("admin:integrations_inboundwebhook_changelist"),
        {"action": "replay", ACTION_CHECKBOX_NAME: [webhook.pk]},
    )
    webhook.refresh_from_db()
    assert (webhook.status, webhook.error, webhook.traceback) == (InboundWebhook.Status.PROCESSED, "", "")
    assert SurveyRequest.objects.get().conversation_id == "215000000000201"


def test_a_failed_webhook_keeps_its_traceback_shown_escaped_on_its_page(client, admin_client, account, monkeypatch):
    from surveys.intake import process as intake

    def assignee_of(conversation_id):
        raise ValueError(f"<script>alert('{conversation_id}')</script> has no <b>assignee</b>")

    def broken(account, notification, webhook, closures):
        return assignee_of(notification.conversation_id)

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", broken)
    post_webhook(client, notification("conversation_admin_closed_v2"))

    webhook = InboundWebhook.objects.get()
    assert webhook.status == InboundWebhook.Status.FAILED
    assert webhook.error == "ValueError: <script>alert('215000000000201')</script> has no <b>assignee</b>"
    assert webhook.traceback.startswith("Traceback (most recent call last):")
    assert "in broken" in webhook.traceback and "in assignee_of" in webhook.traceback
    assert webhook.traceback.rstrip().endswith(webhook.error)
    page = admin_client.get(reverse("admin:integrations_inboundwebhook_change", args=[webhook.pk])).content.decode()
    assert '<pre class="traceback">Traceback (most recent call last):' in page
    assert "&lt;script&gt;alert(&#x27;215000000000201&#x27;)&lt;/script&gt; has no &lt;b&gt;assignee&lt;/b&gt;" in page
    assert "<script>alert" not in page and "<b>assignee" not in page


def test_staff_who_may_only_look_cannot_resend_or_replay(client, log, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_surveyrequest", "view_apirequest", "view_invalidapirequest", "view_inboundwebhook"]
        )
    )
    client.force_login(viewer)
    invalid = log["test_invalid"]
    page = client.get(reverse("admin:surveys_invalidapirequest_changelist"))
    assert page.status_code == 200 and "resend" not in page.content.decode()
    resend(client, "invalidapirequest", [invalid.pk])
    invalid.survey_request.refresh_from_db()
    assert invalid.survey_request.status == S.INVALID
