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
from surveys.models import Account, StellaSyncState, Teammate, TeammateDailyCount
from surveys.reporting.status import StatusFilter, StatusFilterForm
from surveys.reporting.teammate_stats import teammate_stats
from surveys.reporting.views import TEAMMATE_COLUMNS
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

DAY_1, DAY_2, OUTSIDE = date(2026, 11, 2), date(2026, 11, 3), date(2026, 10, 20)
DATES = {"date_from": "2026-11-01", "date_to": "2026-11-30"}


def count(account, day, teammate, channel, requested, delivered, responded, rating_sum, rating_count, **extra):
    """A day's count; its stars, unless given, as many 5★ and 1★ as make the sum (or all of one star)."""
    stars = extra.get("stars") or _stars(rating_sum, rating_count)
    return TeammateDailyCount.objects.create(
        account=account, day=day, mode=extra.get("mode", "live"), teammate=teammate,
        teammate_name=extra.get("name", ""), team=extra.get("team", ""), channel=channel, requested=requested,
        delivered=delivered, responded=responded, rating_sum=rating_sum, rating_count=rating_count,
        **{f"stars_{star}": n for star, n in enumerate(stars, start=1)},
    )  # fmt: skip


def _stars(rating_sum, rating_count):
    """Stars that add up to the sum: fives and ones, and one star in between for the rest."""
    stars = [0] * 5
    if not rating_count:
        return stars
    fives = max(0, (rating_sum - rating_count) // 4)
    rest = rating_sum - 5 * fives - (rating_count - fives - 1)  # the one in between
    if fives == rating_count:
        rest = None
    stars[4] += fives
    if rest is not None:
        stars[0] += rating_count - fives - 1
        stars[rest - 1] += 1
    assert sum(stars) == rating_count and sum(n * s for s, n in enumerate(stars, start=1)) == rating_sum
    return stars


@pytest.fixture
def counts(account):
    """Two teammates, two channels, two days in November, and a day in October the dates leave out."""
    count(account, DAY_1, "ada@support.example", "chat", 10, 9, 4, 18, 4, name="Ada Agent", team="Lee Lead")
    count(account, DAY_2, "ada@support.example", "chat", 5, 5, 2, 7, 2, name="Ada Agent", team="Lee Lead")
    count(account, DAY_1, "ada@support.example", "email", 2, 2, 0, 0, 0, name="Ada Agent", team="Lee Lead")
    count(account, DAY_2, "bo-7", "chat", 4, 3, 3, 14, 3, name="")  # known to Stella by custom id only
    count(account, DAY_1, "bo-7", "email", 6, 4, 1, 3, 1, name="Bo Builder")
    count(account, DAY_2, "", "email", 1, 0, 0, 0, 0)  # Stella named nobody
    count(account, OUTSIDE, "ada@support.example", "chat", 100, 100, 100, 500, 100, name="Ada Agent")
    return account


# What the figures above make, most ratings first: (who, team, sent, responses, rate, satisfaction, average, change).
EXPECTED = [
    ("Ada Agent", "Lee Lead", 16, 6, "38%", "67%", "4.2", "−33 pts"),  # 4 of 6 rated 4–5★; October: 100 of 100
    ("Bo Builder", "", 7, 4, "57%", "75%", "4.2", "—"),  # the name from the email row: one name per teammate
    ("No teammate given", "", 0, 0, "—", "—", "—", "—"),
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
        (row.label, row.team, row.delivered, row.rating_count, row.response_rate_label, row.satisfaction_label,
         row.average_rating_label, row.change_label)
        for row in rows
    ]  # fmt: skip


def test_the_report_sums_each_teammate_over_the_chosen_days_most_ratings_first(signed_in, counts):
    response = signed_in.get("/status/teammates/", DATES)
    assert response.status_code == 200
    stats = response.context["stats"]
    assert shown(stats.rows) == EXPECTED
    ada, bo, nobody = stats.rows
    assert ada.stars == (0, 1, 1, 0, 4) and bo.stars == (0, 0, 1, 1, 2)
    assert (ada.requested, nobody.requested) == (17, 1)
    totals = stats.totals
    assert (totals.requested, totals.delivered, totals.responded, totals.rating_count) == (28, 23, 10, 10)
    assert (totals.satisfaction_label, totals.average_rating_label, totals.stars) == ("70%", "4.2", (0, 1, 2, 1, 6))
    assert (stats.previous_from, stats.previous_to) == (date(2026, 10, 2), date(2026, 10, 31))
    assert totals.previous.rating_count == 100 and totals.change_label == "−30 pts"
    html = response.content.decode()
    assert "Ada Agent" in html and "bo-7" in html and "No teammate given" in html and "Lee Lead" in html


def test_fewer_than_ten_ratings_carry_a_caution_and_ten_do_not(signed_in, account, counts):
    rows = signed_in.get("/status/teammates/", DATES).context["stats"].rows
    assert [row.caution for row in rows] == [
        "Only 6 ratings: too few to trust", "Only 4 ratings: too few to trust", ""  # none: nothing to trust
    ]  # fmt: skip
    count(account, DAY_2, "ada@support.example", "chat", 4, 4, 4, 20, 4, name="Ada Agent", mode="test")  # 10 ratings
    rows = signed_in.get("/status/teammates/", DATES).context["stats"].rows
    assert rows[0].rating_count == 10 and rows[0].caution == ""
    assert rows[0].change_few is False and rows[0].change_label == "−20 pts"  # 8 of 10 against 100 of 100
    html = signed_in.get("/status/teammates/", DATES).content.decode()
    assert html.count('title="Only 4 ratings: too few to trust"') == 1
    assert 'title="Only 10 ratings' not in html


def test_the_report_groups_by_team_or_channel(signed_in, counts):
    by_team = signed_in.get("/status/teammates/", {**DATES, "group": "team"}).context["stats"]
    assert [(row.label, row.requested, row.rating_count, row.satisfaction_label) for row in by_team.rows] == [
        ("Lee Lead", 17, 6, "67%"), ("No team given", 11, 4, "75%"),
    ]  # fmt: skip
    by_channel = signed_in.get("/status/teammates/", {**DATES, "group": "channel"}).context["stats"]
    assert [(row.label, row.requested, row.rating_count) for row in by_channel.rows] == [
        ("Chat", 19, 9), ("Email", 9, 1),
    ]  # fmt: skip
    assert by_channel.totals.requested == by_team.totals.requested == 28
    export = b"".join(signed_in.get("/status/teammates.csv", {**DATES, "group": "channel"}).streaming_content)
    assert [line[3] for line in csv.reader(io.StringIO(export.decode("utf-8-sig")))][1:3] == ["Chat", "Email"]


def test_bots_are_left_out_unless_asked_for(signed_in, account, counts):
    count(account, DAY_1, "fin-bot", "chat", 40, 40, 40, 200, 40, name="Fin")
    Teammate.objects.create(account=account, intercom_id="9", name="Fin", is_bot=True, stella_custom_id="fin-bot")
    Teammate.objects.create(account=account, intercom_id="8", name="Ada", email="ADA@support.example")  # no bot
    without = signed_in.get("/status/teammates/", DATES).context["stats"]
    assert "Fin" not in [row.label for row in without.rows] and without.totals.requested == 28
    with_bots = signed_in.get("/status/teammates/", {**DATES, "bots": "1"}).context["stats"]
    assert with_bots.rows[0].label == "Fin" and with_bots.totals.requested == 68


def test_a_click_on_a_column_sorts_by_it_and_again_the_other_way(signed_in, counts):
    page = signed_in.get("/status/teammates/", {**DATES, "sort": "satisfaction"})
    assert [row.label for row in page.context["stats"].rows] == ["Ada Agent", "Bo Builder", "No teammate given"]
    header = next(h for h in page.context["headers"] if h["name"] == "satisfaction")
    assert header["aria_sort"] == "ascending" and "sort=-satisfaction" in header["url"]
    page = signed_in.get("/status/teammates/", {**DATES, "sort": "-satisfaction"})
    assert [row.label for row in page.context["stats"].rows] == ["Bo Builder", "Ada Agent", "No teammate given"]
    names = signed_in.get("/status/teammates/", {**DATES, "sort": "-name"}).context["stats"].rows
    assert [row.label for row in names] == ["No teammate given", "Bo Builder", "Ada Agent"]
    assert signed_in.get("/status/teammates/", {**DATES, "sort": "nonsense"}).context["stats"].sort == "-responses"


def test_each_week_has_its_satisfaction(signed_in, counts):
    stats = signed_in.get("/status/teammates/", {"date_from": "2026-11-02", "date_to": "2026-11-15"}).context["stats"]
    assert stats.weeks == [date(2026, 11, 2), date(2026, 11, 9)]
    ada = stats.rows[0]
    assert [(week.ratings, week.satisfied) for week in ada.weeks] == [(6, 4), (0, 0)]
    assert ada.weeks[0].label == "Week of 2 Nov: 67% satisfied, of 6 ratings"
    assert ada.weeks[1].label == "Week of 9 Nov: no ratings"


def test_the_figures_are_read_in_two_queries_over_the_daily_counts(counts):
    form = StatusFilterForm(DATES, accounts=Account.objects.all())
    assert form.is_valid()
    status_filter = StatusFilter.from_form(form, accounts=Account.objects.all())
    for group in ("teammate", "team", "channel"):
        with CaptureQueriesContext(connection) as queries:
            teammate_stats(status_filter, group=group)
        assert len(queries.captured_queries) == 2
        assert all("surveys_teammatedailycount" in query["sql"] for query in queries.captured_queries)


def test_the_api_and_the_csv_carry_the_reports_figures(signed_in, api, counts):
    view = signed_in.get("/status/teammates/", DATES).context["stats"]
    body = api.get("/api/teammates/", DATES).json()
    assert (body["date_from"], body["date_to"], body["previous_from"], body["group"]) == (
        "2026-11-01", "2026-11-30", "2026-10-02", "teammate"
    )  # fmt: skip
    csv_body = b"".join(signed_in.get("/status/teammates.csv", DATES).streaming_content)
    assert csv_body.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig"))))
    assert lines[0][: len(TEAMMATE_COLUMNS)] == TEAMMATE_COLUMNS
    assert lines[0][len(TEAMMATE_COLUMNS) :] == [f"satisfaction_week_of_2026-{day}" for day in
                                                  ("10-26", "11-02", "11-09", "11-16", "11-23", "11-30")]  # fmt: skip
    *rows, total = lines[1:]
    assert [api_row["teammate_name"] for api_row in body["results"]] == ["Ada Agent", "Bo Builder", ""]
    for row, api_row, csv_row in zip(view.rows, body["results"], rows, strict=True):
        assert (api_row["teammate"], api_row["team"], api_row["ratings"], api_row["satisfaction"]) == (
            row.teammate, row.team, row.rating_count, row.satisfaction
        )  # fmt: skip
        assert csv_row[:4] == [row.teammate, row.teammate_name, row.team, row.channel]
        assert csv_row[7] == str(row.rating_count) and csv_row[11] == (
            "" if row.satisfaction is None else str(row.satisfaction)
        )
    assert body["results"][0] == {
        "teammate": "ada@support.example", "teammate_name": "Ada Agent", "team": "Lee Lead", "channel": "",
        "requests": 17, "delivered": 16, "responded": 6, "ratings": 6, "response_rate": 0.375, "average_rating": 4.2,
        "satisfied": 4, "satisfaction": 0.6667, "stars": [0, 1, 1, 0, 4], "few_ratings": True,
        "previous": {"ratings": 100, "satisfaction": 1.0}, "change": -0.3333,
        "weeks": [
            {"week": "2026-10-26", "ratings": 0, "satisfied": 0, "satisfaction": None},
            {"week": "2026-11-02", "ratings": 6, "satisfied": 4, "satisfaction": 0.6667},
            *({"week": f"2026-{day}", "ratings": 0, "satisfied": 0, "satisfaction": None}
              for day in ("11-09", "11-16", "11-23", "11-30")),
        ],
    }  # fmt: skip
    assert body["totals"]["ratings"] == 10 and body["totals"]["satisfaction"] == 0.7
    assert total[:12] == ["", "Total", "", "", "28", "23", "10", "10", "0.4348", "4.2", "7", "0.7"]
    assert api.get("/api/teammates/", {**DATES, "group": "nonsense"}).status_code == 400
    teams = api.get("/api/teammates/", {**DATES, "group": "team"}).json()["results"]
    assert [(row["team"], row["teammate"]) for row in teams] == [("Lee Lead", ""), ("", "")]


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
    assert every.totals.requested == 29 and every.rows[0].requested == 18  # Ada in both accounts
    one = client.get("/status/teammates/", {**DATES, "account": other.pk}).context["stats"]
    assert shown(one.rows) == [("Ada Agent", "", 1, 1, "100%", "100%", "5.0", "—")]


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
    assert {p["name"] for p in operation["parameters"]} == {"account", "date_from", "date_to", "group", "bots", "sort"}
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {
        "date_from",
        "date_to",
        "previous_from",
        "previous_to",
        "group",
        "results",
        "totals",
    }
    row = schema["components"]["schemas"][body["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(row["properties"]) == {
        "teammate", "teammate_name", "team", "channel", "requests", "delivered", "responded", "ratings",
        "response_rate", "average_rating", "satisfied", "satisfaction", "stars", "few_ratings", "previous", "change",
        "weeks",
    }  # fmt: skip


def test_the_report_says_which_accounts_figures_are_a_sample(signed_in, account, counts):
    assert "Sampled:" not in signed_in.get("/status/teammates/", DATES).content.decode()
    account.integration.sample_percent = 25
    account.integration.save()
    html = signed_in.get("/status/teammates/", DATES).content.decode()
    assert f"Sampled: {account.name} surveys 25% of its closures" in html
