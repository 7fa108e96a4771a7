from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from portal.models import ApiToken, UserPreference
from surveys.models import ApiRequest, Feedback, SurveyRequest
from surveys.reporting.presenters import present
from tests.factories import SurveyRequestFactory

pytestmark = pytest.mark.django_db
S = SurveyRequest.Status


@pytest.fixture
def api(account):
    user = User.objects.create_user("helpdesk")
    account.support_users.add(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=user).key}")
    return client


def test_api_needs_a_token(account):
    assert APIClient().get("/api/survey-requests/").status_code == 401


def test_survey_requests_are_listed_newest_first_with_masked_emails(api, account):
    now = timezone.now()
    SurveyRequestFactory(
        account=account,
        status=S.SENT,
        conversation_id="older",
        closed_at=now.replace(microsecond=0) - timezone.timedelta(hours=1),
    )
    SurveyRequestFactory(
        account=account, status=S.SENT, conversation_id="newer", closed_at=now, customer_email="cai@client.example"
    )
    body = api.get("/api/survey-requests/", {"tab": "sent"}).json()
    assert [row["conversation_id"] for row in body["results"]] == ["newer", "older"]
    assert body["results"][0]["customer_email"] == "c•••@client.example"
    assert body["results"][0]["account"] == account.name
    assert set(body) == {"next", "previous", "results"}  # paged by cursor, never counted


def test_api_requests_use_the_page_filters(api, account):
    survey_request = SurveyRequestFactory(account=account, status=S.INVALID, closed_at=timezone.now())
    for message in ("Employee not found", "Invalid customer"):
        ApiRequest.objects.create(
            survey_request=survey_request,
            account=account,
            mode="test",
            url="https://s/v1/requests",
            outcome="invalid",
            error_message=message,
        )
    body = api.get("/api/api-requests/", {"tab": "invalid", "reason": "Invalid customer"}).json()
    assert [(row["error_message"], row["explanation"][:20]) for row in body["results"]] == [
        ("Invalid customer", "The customer's email")
    ]


def test_cursor_pages_through_everything(api, account):
    for n in range(7):
        SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now() - timezone.timedelta(minutes=n))
    seen, url = [], "/api/survey-requests/?page_size=3"
    while url:
        body = api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 7


def test_a_tab_of_the_other_list_is_refused(api):
    response = api.get("/api/survey-requests/", {"tab": "invalid"})
    assert response.status_code == 400 and "tab" in response.json()


def test_openapi_schema_describes_both_lists(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    schema = response.json()
    assert {"/api/survey-requests/", "/api/api-requests/"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/api/survey-requests/"]["get"]["parameters"]}
    assert {"tab", "account", "date_from", "date_to", "channel", "reason", "q", "cursor"} <= parameters


def test_api_masks_the_customer_as_the_page_does(api, account):
    SurveyRequestFactory(
        account=account, status=S.INVALID, closed_at=timezone.now(), customer_name="Ada Lovelace",
        customer_email="ada.lovelace@customer.example",
    )  # fmt: skip
    ApiRequest.objects.create(
        survey_request=SurveyRequest.objects.get(), account=account, mode="test", url="https://s/v1/requests",
        outcome="invalid", error_message="Employee not found",
    )  # fmt: skip
    for url in ("/api/survey-requests/", "/api/api-requests/"):
        row = api.get(url).json()["results"][0]
        shown = present(SurveyRequest.objects.get() if "survey" in url else ApiRequest.objects.get())
        assert (row["customer_name"], row["customer_email"]) == (shown.customer_name, shown.customer)
        assert "Lovelace" not in str(row) and "ada.lovelace" not in str(row)


def test_api_times_are_iso_8601_with_an_offset_in_the_portals_zone_whoever_asks(api, account):
    UserPreference.objects.create(user=User.objects.get(username="helpdesk"), time_zone="Europe/Amsterdam")
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=datetime(2026, 7, 1, 8, 30, tzinfo=UTC))
    query = {"date_from": "2026-07-01", "date_to": "2026-07-01"}
    assert api.get("/api/survey-requests/", query).json()["results"][0]["closed_at"] == "2026-07-01T08:30:00Z"
    session = APIClient()
    session.force_login(User.objects.get(username="helpdesk"))  # the middleware activates the user's zone
    assert session.get("/api/survey-requests/", query).json()["results"][0]["closed_at"] == "2026-07-01T08:30:00Z"


def test_the_api_docs_page_is_behind_login(client):
    response = client.get("/api/docs/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/api/docs/")
    assert client.get("/api/schema/").status_code in (401, 403)


def test_the_api_docs_page_loads_swagger_ui_from_the_portal(client, account):
    user = User.objects.create_user("reader")
    account.support_users.add(user)
    client.force_login(user)
    html = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Its start-up script is a file of its own (no inline script: Content-Security-Policy), which loads the schema.
    assert '<script src="/api/docs/?script="></script>' in html
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript") and "/api/schema/" in script.content.decode()
    for text in (html, script.content.decode()):
        assert "http://" not in text.replace("http://testserver", "") and "https://" not in text


def test_a_survey_request_carries_stellas_side_as_the_page_shows_it(api, account):
    survey_request = SurveyRequestFactory(
        account=account, status=S.SENT, closed_at=timezone.now(),
        reconcile_flag=SurveyRequest.ReconcileFlag.UNREPORTED_SENT,
    )  # fmt: skip
    quiet = SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now() - timezone.timedelta(hours=1))
    Feedback.objects.create(
        account=account, uuid="u-1", sequence_id=1, survey_request=survey_request, mode="test", channel="chat",
        ext_interaction_id=survey_request.conversation_id, delivery_status="Hard bounce",
        request_created_at=timezone.now(), request_sent_at=timezone.now(), response_received_at=timezone.now(),
        star_rating=2, comment="Reply to bea.buyer@customer.example, not me",
    )  # fmt: skip
    rows = {row["id"]: row for row in api.get("/api/survey-requests/", {"tab": "sent"}).json()["results"]}
    one = api.get(f"/api/survey-requests/{survey_request.pk}/").json()
    for row in (rows[survey_request.pk], one):
        assert {key: row[key] for key in STELLA_FIELDS} == {
            "delivery_status": "Hard bounce",
            "delivery_explanation": "Stella sent it and the address bounced for good.",
            "star_rating": 2,
            "comment": "Reply to b•••@customer.example, not me",
            "reconcile_flag": "unreported_sent",
            "reconcile_text": "Sent, but Stella hasn't reported it",
        }
    assert {key: rows[quiet.pk][key] for key in STELLA_FIELDS} == {
        "delivery_status": "", "delivery_explanation": "", "star_rating": None, "comment": "", "reconcile_flag": "",
        "reconcile_text": "",
    }  # fmt: skip
    shown = present(SurveyRequest.objects.select_related("feedback").get(pk=survey_request.pk))
    assert (shown.delivery_status, shown.star_rating, shown.comment) == ("Hard bounce", 2, one["comment"])


STELLA_FIELDS = [
    "delivery_status",
    "delivery_explanation",
    "star_rating",
    "comment",
    "reconcile_flag",
    "reconcile_text",
]


def test_the_schema_describes_stellas_side_of_a_survey_request(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    fields = schema["components"]["schemas"]["SurveyRequest"]["properties"]
    assert set(STELLA_FIELDS) <= set(fields)
    assert fields["star_rating"]["type"] == "integer" and fields["star_rating"]["nullable"] is True


def test_every_row_gives_its_account_id_for_the_filter_and_says_whether_a_resend_resolved_it(api, account):
    """The account filter takes an id: every row carries it. An invalid call whose request a resend sent is
    resolved; the still-invalid one and the call that sent are not."""
    resent = SurveyRequestFactory(account=account, status=S.SENT, conversation_id="resent", closed_at=timezone.now())
    stuck = SurveyRequestFactory(account=account, status=S.INVALID, conversation_id="stuck", closed_at=timezone.now())
    calls = {
        name: ApiRequest.objects.create(
            survey_request=request, account=account, mode="test", url="https://s/v1/requests", outcome=outcome
        )
        for name, request, outcome in [
            ("refused", resent, "invalid"),
            ("resend", resent, "sent"),
            ("stuck", stuck, "invalid"),
        ]
    }
    rows = api.get("/api/api-requests/", {"account": account.pk}).json()["results"]
    assert {row["id"]: (row["account_id"], row["resolved"]) for row in rows} == {
        calls["refused"].pk: (account.pk, True),
        calls["resend"].pk: (account.pk, False),
        calls["stuck"].pk: (account.pk, False),
    }
    rows = api.get("/api/survey-requests/", {"account": account.pk}).json()["results"]
    assert {row["conversation_id"]: (row["account_id"], row["resolved"]) for row in rows} == {
        "resent": (account.pk, True),
        "stuck": (account.pk, False),
    }
    one = api.get(f"/api/survey-requests/{resent.pk}/").json()
    assert (one["account_id"], one["resolved"]) == (account.pk, True)
    assert api.get(f"/api/api-requests/{calls['refused'].pk}/").json()["resolved"] is True


def test_the_api_root_leads_to_its_docs(api):
    """No stock "Api Root" page with no way back: /api/ is the docs (which have the portal's header)."""
    response = api.get("/api/")
    assert (response.status_code, response["Location"]) == (302, "/api/docs/")
