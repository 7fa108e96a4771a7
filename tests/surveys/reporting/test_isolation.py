"""A support user of account A, against account B's objects, on every URL there is: no row, count,
filter choice or export of B may leak, and no admin page opens."""

import pytest
from django.contrib.auth.models import User
from django.urls import get_resolver, reverse
from django.utils import timezone

from integrations.models import InboundWebhook
from portal.models import ApiToken
from surveys.models import ApiRequest, ConversationEvent, Feedback, SurveyRequest, Teammate, TeammateDailyCount
from surveys.reporting.counts import daily_counts_rebuild
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import admin_urls

pytestmark = pytest.mark.django_db

B_MARKERS = [
    "Beta Secret Corp",
    "b-secret-conversation",
    "b-secret-customer",
    "b-secret-teammate",
    "Beta secret failure 42",
    "Beta secret comment",
    "b-secret-employee",
]
STATUS_TABS = ["requests", "test", "invalid", "sent", "do_not_send", "suppressed", "cancelled", "failed", "waiting"]


@pytest.fixture
def world(db):
    a = AccountFactory(name="Alpha Corp", intercom_workspace_id="wsalpha")
    b = AccountFactory(name="Beta Secret Corp", intercom_workspace_id="wsbeta")
    now = timezone.now()
    for account, prefix in ((a, "a"), (b, "b-secret")):
        for status in (
            SurveyRequest.Status.SENT,
            SurveyRequest.Status.INVALID,
            SurveyRequest.Status.SUPPRESSED,
            SurveyRequest.Status.SCHEDULED,
        ):
            survey_request = SurveyRequestFactory(
                account=account, status=status, closed_at=now, conversation_id=f"{prefix}-conversation-{status}",
                customer_email=f"{prefix}-customer@x.example", teammate_name=f"{prefix}-teammate",
            )  # fmt: skip
            ApiRequest.objects.create(
                survey_request=survey_request, account=account, mode="test", url="https://s/v1/requests",
                outcome="invalid" if status == SurveyRequest.Status.INVALID else "sent",
                error_message="Beta secret failure 42" if prefix != "a" else "Invalid customer",
            )  # fmt: skip
            if status == SurveyRequest.Status.SENT:
                Feedback.objects.create(
                    account=account, uuid=f"{prefix}-uuid", sequence_id=1, survey_request=survey_request,
                    ext_interaction_id=survey_request.conversation_id, mode="test", channel="chat",
                    employee_email=f"{prefix}-employee@support.example", employee_name=f"{prefix}-employee",
                    delivery_status="Delivered", request_created_at=now, request_sent_at=now,
                    response_received_at=now, star_rating=5,
                    comment="Beta secret comment" if prefix != "a" else "Alpha was helpful",
                )  # fmt: skip
        TeammateDailyCount.objects.create(
            account=account, day=timezone.localdate(now), mode="test", teammate=f"{prefix}-employee@support.example",
            teammate_name=f"{prefix}-employee", channel="chat", requested=3, delivered=2, responded=1, rating_sum=5,
            rating_count=1,
        )  # fmt: skip
        Teammate.objects.create(account=account, intercom_id=f"{prefix}-7", name=f"{prefix}-teammate")
        webhook = InboundWebhook.objects.create(body="{}", workspace_id=account.intercom_workspace_id)
        ConversationEvent.objects.create(
            account=account,
            conversation_id=f"{prefix}-conversation-x",
            kind="reopened",
            occurred_at=now,
            inbound_webhook=webhook,
        )
    daily_counts_rebuild()
    user = User.objects.create_user("alpha-support", password="pw-alpha-123")
    a.support_users.add(user)
    return {"a": a, "b": b, "user": user}


def assert_no_leak(response) -> None:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    for marker in B_MARKERS:
        assert marker.encode() not in body, f"{marker!r} leaked on {response.request['PATH_INFO']}"


def test_status_pages_and_exports_show_nothing_of_another_account(client, world):
    client.force_login(world["user"])
    b = world["b"]
    for tab in STATUS_TABS:
        for params in ({"tab": tab}, {"tab": tab, "account": b.pk}):
            page = client.get("/status/", params)
            assert page.status_code == 200
            assert_no_leak(page)
            export = client.get("/status/export.csv", params)
            assert export.status_code in (200, 400)
            assert_no_leak(export)
        # Asking for B's conversation by id finds nothing (the page only echoes the question).
        probe = {"tab": tab, "q": f"b-secret-conversation-{tab}"}
        assert client.get("/status/", probe).context["rows"] == []
        assert_no_leak(client.get("/status/export.csv", probe))
    page = client.get("/status/", {"tab": "sent"})
    assert [str(option) for option in page.context["form"].fields["account"].queryset] == ["Alpha Corp"]
    assert dict((tab.key, n) for tab, n, _ in page.context["tabs"])["sent"] == 1  # A's own, not A's and B's
    assert "Alpha was helpful" in page.content.decode()  # the Stella column is there, with A's own comment


def test_the_teammates_view_and_its_export_show_nothing_of_another_account(client, world):
    client.force_login(world["user"])
    b = world["b"]
    for params in ({}, {"account": b.pk}, {"account": b.pk, "date_from": "2011-01-01"}):
        page = client.get("/status/teammates/", params)
        assert page.status_code == 200
        assert_no_leak(page)
        assert [row.teammate_name for row in page.context["stats"].rows] == ["a-employee"]
        assert page.context["stats"].totals.requested == 3  # A's own, not A's and B's
        export = client.get("/status/teammates.csv", params)
        assert export.status_code in (200, 400)
        assert_no_leak(export)
        for group in ("teammate", "team", "channel"):  # the answers behind the figures
            answers = client.get("/status/teammates/responses/", {**params, "group": group})
            assert answers.status_code == 200
            assert_no_leak(answers)
    page = client.get("/status/teammates/")
    assert [str(option) for option in page.context["form"].fields["account"].queryset] == ["Alpha Corp"]


def test_api_shows_nothing_of_another_account(client, world):
    token = ApiToken.objects.create(user=world["user"]).key
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    b = world["b"]
    for url in ("/api/survey-requests/", "/api/api-requests/", "/api/teammates/"):
        for params in (
            {},
            {"account": b.pk},
            {"q": "b-secret-conversation-sent"},
            {"q": "b-secret-conversation-invalid"},
        ):
            response = client.get(url, params, **headers)
            assert response.status_code in (200, 400)
            assert_no_leak(response)
    teammates = client.get("/api/teammates/", **headers).json()
    assert [row["teammate_name"] for row in teammates["results"]] == ["a-employee"]
    assert teammates["totals"]["requests"] == 3
    for survey_request in SurveyRequest.objects.filter(account=b):
        assert client.get(f"/api/survey-requests/{survey_request.pk}/", **headers).status_code == 404
    for api_request in ApiRequest.objects.filter(account=b):
        assert client.get(f"/api/api-requests/{api_request.pk}/", **headers).status_code == 404


def test_support_users_never_reach_an_admin_page(client, world):
    b = world["b"]
    b_objects = {
        type(b): b,
        type(b.integration): b.integration,
        type(b.health): b.health,
        SurveyRequest: SurveyRequest.objects.filter(account=b).first(),
        ApiRequest: ApiRequest.objects.filter(account=b).first(),
        Teammate: Teammate.objects.get(account=b),
        InboundWebhook: InboundWebhook.objects.get(workspace_id=b.intercom_workspace_id),
        ConversationEvent: ConversationEvent.objects.get(account=b),
    }
    urls = admin_urls(b_objects)
    assert len(urls) > 40
    assert reverse("admin:surveys_account_go_live", args=[b.pk]) in urls
    client.force_login(world["user"])
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
            assert_no_leak(response)
    callback = client.get(reverse("intercom_oauth_callback"), {"state": "x", "code": "y"})
    assert callback.status_code == 302 and callback["Location"].startswith("/admin/login/")


def test_every_url_of_the_portal_is_covered_here():
    """A new page or API must be added to these tests: the isolation suite knows every route."""
    known = {"admin/", "webhooks/intercom/", "intercom/oauth/callback/", "healthz", "status/", "status/export.csv",
             "status/teammates/", "status/teammates.csv", "status/teammates/responses/", "login/", "logout/", "api/schema/", "api/teammates/",
             "api/", "", "sandbox/",
             # For operators: readiness says only which checks pass; metrics answers 404 without its token.
             "readyz", "metrics",
             # The favicon: a redirect to a static file, the same for everyone.
             "favicon.ico",
             # Saves only the signed-in user's own time zone; the docs page needs a login and shows only the schema.
             "status/time-zone/", "api/docs/",
             # The inbox app: signed by Intercom, each workspace sees only its own account's conversations
             # (tests/surveys/inbox_app/test_views.py, test_another_workspace_never_sees_or_stops_this_ones_survey).
             "intercom/canvas/initialize/", "intercom/canvas/submit/",
             # Only redirects old admin bookmarks to their new address, which the admin tests cover.
             "^admin/integrations/(?P<rest>(account|teammate|conversationevent)/.*)$"}  # fmt: skip
    top = {str(pattern.pattern) for pattern in get_resolver().url_patterns}
    assert top <= known, top - known
