"""The status page's Teammates view, its CSV and its API: per teammate and channel over the chosen days, from
TeammateDailyCount only, the same figures everywhere, the user's accounts only."""

import csv
import io
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from portal.models import ApiToken
from surveys.models import Account, StellaSyncState, TeammateDailyCount
from surveys.reporting.status import StatusFilter, StatusFilterForm
from surveys.reporting.teammate_stats import teammate_stats
from surveys.reporting.views import TEAMMATE_COLUMNS
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

DAY_1, DAY_2, OUTSIDE = date(2026, 11, 2), date(2026, 11, 3), date(2026, 10, 20)
DATES = {"date_from": "2026-11-01", "date_to": "2026-11-30"}


def count(account, day, teammate, channel, requested, delivered, responded, rating_sum, rating_count, **extra):
    return TeammateDailyCount.objects.create(
        account=account, day=day, mode=extra.get("mode", "live"), teammate=teammate,
        teammate_name=extra.get("name", ""), channel=channel, requested=requested, delivered=delivered,
        responded=responded, rating_sum=rating_sum, rating_count=rating_count,
    )  # fmt: skip


@pytest.fixture
def counts(account):
    """Two teammates, two channels, two days in November, and a day in October the dates leave out."""
    count(account, DAY_1, "ada@support.example", "chat", 10, 9, 4, 18, 4, name="Ada Agent")
    count(account, DAY_2, "ada@support.example", "chat", 5, 5, 2, 7, 2, name="Ada Agent")
    count(account, DAY_1, "ada@support.example", "email", 2, 2, 0, 0, 0, name="Ada Agent")
    count(account, DAY_2, "bo-7", "chat", 4, 3, 3, 14, 3, name="")  # known to Stella by custom id only
    count(account, DAY_1, "bo-7", "email", 6, 4, 1, 3, 1, name="Bo Builder")
    count(account, DAY_2, "", "email", 1, 0, 0, 0, 0)  # Stella named nobody
    count(account, OUTSIDE, "ada@support.example", "chat", 100, 100, 100, 500, 100, name="Ada Agent")
    return account


# What the figures above make, most requests first: (who, channel, requests, delivered, responded, rate, rating).
EXPECTED = [
    ("Ada Agent", "Chat", 15, 14, 6, "43%", "4.2"),  # 6/14; 25/6 = 4.17
    ("Bo Builder", "Email", 6, 4, 1, "25%", "3.0"),
    ("Bo Builder", "Chat", 4, 3, 3, "100%", "4.7"),  # the name from day 1's email row: one name per teammate
    ("Ada Agent", "Email", 2, 2, 0, "0%", "—"),
    ("No teammate given", "Email", 1, 0, 0, "—", "—"),
]


@pytest.fixture
def support(account):
    user = User.objects.create_user("helpdesk", password="pw-helpdesk-123")
    account.support_users.add(user)
    return user


@pytest.fixture
def signed_in(client, support):
    client.force_login(support)
    return client


@pytest.fixture
def api(support):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=support).key}")
    return client


def shown(rows):
    return [
        (row.label, row.channel_label, row.requested, row.delivered, row.responded, row.response_rate_label,
         row.average_rating_label)
        for row in rows
    ]  # fmt: skip


def test_the_view_sums_each_teammate_and_channel_over_the_chosen_days_most_requests_first(signed_in, counts):
    response = signed_in.get("/status/teammates/", DATES)
    assert response.status_code == 200
    stats = response.context["stats"]
    assert shown(stats.rows) == EXPECTED
    totals = stats.totals
    assert (totals.requested, totals.delivered, totals.responded) == (28, 23, 10)
    assert (totals.response_rate_label, totals.average_rating_label) == ("43%", "4.2")  # 10/23; 42/10
    html = response.content.decode()
    assert "Ada Agent" in html and "bo-7" in html and "No teammate given" in html
    assert '<td class="num">100</td>' not in html  # October's counts left out


def test_a_day_outside_the_dates_counts_when_the_dates_take_it_in(signed_in, counts):
    stats = signed_in.get("/status/teammates/", {"date_from": "2026-10-20", "date_to": "2026-10-20"}).context["stats"]
    assert shown(stats.rows) == [("Ada Agent", "Chat", 100, 100, 100, "100%", "5.0")]


def test_the_figures_are_read_in_one_query_over_the_daily_counts(counts):
    form = StatusFilterForm(DATES, accounts=Account.objects.all())
    assert form.is_valid()
    status_filter = StatusFilter.from_form(form, accounts=Account.objects.all())
    with CaptureQueriesContext(connection) as queries:
        teammate_stats(status_filter)
    assert len(queries.captured_queries) == 1
    assert "surveys_teammatedailycount" in queries.captured_queries[0]["sql"]


def test_the_api_and_the_csv_carry_the_views_figures(signed_in, api, counts):
    view = signed_in.get("/status/teammates/", DATES).context["stats"]
    body = api.get("/api/teammates/", DATES).json()
    assert (body["date_from"], body["date_to"]) == ("2026-11-01", "2026-11-30")
    csv_body = b"".join(signed_in.get("/status/teammates.csv", DATES).streaming_content)
    assert csv_body.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig"))))
    assert lines[0] == TEAMMATE_COLUMNS
    *rows, total = lines[1:]

    for row, api_row, csv_row in zip(view.rows, body["results"], rows, strict=True):
        figures = [row.requested, row.delivered, row.responded, row.rating_count, row.response_rate, row.average_rating]
        assert [api_row[k] for k in ("teammate", "teammate_name", "channel")] == [
            row.teammate, row.teammate_name, row.channel
        ]  # fmt: skip
        assert [api_row[k] for k in TEAMMATE_COLUMNS[3:]] == figures
        assert csv_row == [
            row.teammate,
            row.teammate_name,
            row.channel,
            *["" if f is None else str(f) for f in figures],
        ]
    assert body["results"][0] == {
        "teammate": "ada@support.example", "teammate_name": "Ada Agent", "channel": "chat", "requests": 15,
        "delivered": 14, "responded": 6, "ratings": 6, "response_rate": 0.4286, "average_rating": 4.2,
    }  # fmt: skip
    assert body["results"][3]["average_rating"] is None and body["results"][4]["response_rate"] is None
    assert body["totals"] == {
        "requests": 28, "delivered": 23, "responded": 10, "ratings": 10, "response_rate": 0.4348, "average_rating": 4.2,
    }  # fmt: skip
    assert total == ["", "Total", "", "28", "23", "10", "10", "0.4348", "4.2"]


def test_the_csv_is_named_for_its_dates(signed_in, counts):
    response = signed_in.get("/status/teammates.csv", DATES)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="teammates-2026-11-01-2026-11-30.csv"'


def test_a_support_user_sees_only_their_accounts_teammates(signed_in, api, counts):
    other = AccountFactory(name="Other Corp")
    count(other, DAY_1, "spy@other.example", "chat", 50, 50, 50, 250, 50, name="Other Spy")
    for params in (DATES, {**DATES, "account": other.pk}):
        page = signed_in.get("/status/teammates/", params)
        assert "Other Spy" not in page.content.decode()
        assert page.context["stats"].totals.requested == 28
        export = signed_in.get("/status/teammates.csv", params)  # another account's: 400
        assert b"Other Spy" not in (b"".join(export.streaming_content) if export.streaming else export.content)
    assert b"Other Spy" not in api.get("/api/teammates/", DATES).content
    refused = api.get("/api/teammates/", {**DATES, "account": other.pk})
    assert refused.status_code == 400 and refused.json() == {"account": ["Not one of your accounts."]}


def test_a_csm_sees_every_account_or_the_one_chosen(client, admin_user, counts):
    other = AccountFactory(name="Other Corp")
    count(other, DAY_1, "ada@support.example", "chat", 1, 1, 1, 5, 1, name="Ada Agent")
    client.force_login(admin_user)
    every = client.get("/status/teammates/", DATES).context["stats"]
    assert every.totals.requested == 29 and every.rows[0].requested == 16  # Ada's chat in both accounts
    one = client.get("/status/teammates/", {**DATES, "account": other.pk}).context["stats"]
    assert shown(one.rows) == [("Ada Agent", "Chat", 1, 1, 1, "100%", "5.0")]


def test_the_view_and_its_csv_need_a_login_and_the_api_a_token(client, counts):
    for url in ("/status/teammates/", "/status/teammates.csv"):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, f"/login/?next={url}")
    assert APIClient().get("/api/teammates/").status_code == 401


def test_a_mistake_in_the_filter_keeps_the_view_and_says_so(signed_in, api, counts):
    response = signed_in.get("/status/teammates/", {"date_from": "2026-11-30", "date_to": "2026-11-01"})
    assert response.status_code == 200
    assert response.context["instead"] == "the last 30 days"
    html = response.content.decode()
    assert "“From” is after “To”." in html and 'value="2026-11-30"' in html
    assert api.get("/api/teammates/", {"date_from": "2026-13-01"}).status_code == 400
    assert signed_in.get("/status/teammates.csv", {"date_to": "9999-01-01"}).status_code == 400


def test_the_status_pages_other_filters_dont_narrow_the_view(signed_in, api, counts):
    """Its figures are per teammate and channel: a tab, channel, reason or conversation id left in the link is
    ignored, never an error."""
    params = {**DATES, "tab": "sent", "channel": "nonsense", "q": "123"}
    assert signed_in.get("/status/teammates/", params).context["stats"].totals.requested == 28
    assert api.get("/api/teammates/", params).json()["totals"]["requests"] == 28


def test_the_status_page_links_to_the_view_with_its_account_and_dates(signed_in, account):
    page = signed_in.get("/status/", {**DATES, "account": account.pk, "tab": "sent", "channel": "chat"})
    assert page.context["teammates_url"] == (
        f"/status/teammates/?account={account.pk}&date_from=2026-11-01&date_to=2026-11-30"
    )
    assert 'href="/status/teammates/?account=' in page.content.decode()
    view = signed_in.get(page.context["teammates_url"])
    assert view.context["status_url"] == f"/status/?account={account.pk}&date_from=2026-11-01&date_to=2026-11-30"


def test_the_view_says_when_stellas_records_were_last_read(signed_in, account, counts):
    assert "haven't been read for this account yet" in signed_in.get("/status/teammates/", DATES).content.decode()
    StellaSyncState.objects.create(
        account=account, feedback_synced_at=timezone.make_aware(timezone.datetime(2026, 11, 29, 10, 14))
    )
    assert "last read 2026-11-29 10:14 UTC" in signed_in.get("/status/teammates/", DATES).content.decode()


def test_the_openapi_schema_describes_the_teammates_endpoint(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/teammates/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"account", "date_from", "date_to"}
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"date_from", "date_to", "results", "totals"}
    row = schema["components"]["schemas"][body["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(row["properties"]) == set(TEAMMATE_COLUMNS)
