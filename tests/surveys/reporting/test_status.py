import csv
import io
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.middleware import SESSION_KEY
from portal.models import UserPreference, time_zones
from surveys.decisions.rules import Decision, DoNotSendReason, SuppressionReason
from surveys.models import Account, ApiRequest, DailyCount, Feedback, SurveyOutcome, SurveyRequest
from surveys.reporting.attention import FOR_SUPPORT, accounts_attention, support_alerts
from surveys.reporting.counts import daily_counts_rebuild
from surveys.reporting.status import axis_step
from surveys.reporting.views import COLUMNS
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import load_fixture, notification, post_webhook

pytestmark = pytest.mark.django_db
S = SurveyRequest.Status


@pytest.fixture
def support(account):
    user = User.objects.create_user("helpdesk", password="pw-helpdesk-123")
    account.support_users.add(user)
    return user


@pytest.fixture
def page(client, support):
    client.force_login(support)

    def get(**params):
        response = client.get("/status/", params)
        assert response.status_code == 200
        return response

    return get


def today_closure(name="conversation_admin_closed_v2", **envelope):
    return notification(name, created_at=int(timezone.now().timestamp()), **envelope)


def test_status_page_needs_a_login(client):
    response = client.get("/status/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/status/")


def test_support_user_without_an_account_is_told_whom_to_ask(client, db):
    client.force_login(User.objects.create_user("newcomer"))
    assert "Ask your Stella Connect CSM" in client.get("/status/").content.decode()


def test_tabs_count_from_the_daily_counts(client, account, page):
    post_webhook(client, today_closure(), process=True)  # waiting: Stella isn't called in this test
    bot = today_closure("conversation_admin_closed_bot_v2")
    post_webhook(client, bot)
    account.integration.chat_enabled = False
    account.integration.save()
    post_webhook(client, today_closure("conversation_admin_closed_v2", id="notif_x", data=_other_conversation()))
    tabs = {tab.key: count for tab, count, _ in page().context["tabs"]}
    assert tabs == {
        "requests": None, "test": 0, "invalid": 1, "sent": 0, "do_not_send": 0, "suppressed": 0, "cancelled": 0, "failed": 0, "waiting": 2,
    }  # fmt: skip


def _other_conversation():
    data = load_fixture("conversation_admin_closed_v2")["data"]
    data["item"]["id"] = "215000000000999"
    data["item"]["conversation_parts"]["conversation_parts"][0]["id"] = "999"
    return data


def test_counts_kept_as_things_change_equal_counts_from_the_log(client, account):
    post_webhook(client, today_closure())
    post_webhook(client, today_closure("conversation_admin_closed_bot_v2"))
    survey_request = SurveyRequest.objects.get(conversation_id="215000000000201")
    from surveys.delivery.survey_requests import survey_request_transition

    survey_request_transition(survey_request, to=S.SENDING)
    survey_request_transition(survey_request, to=S.SENT)
    kept = sorted(DailyCount.objects.filter(count__gt=0).values_list("account_id", "day", "kind", "count"))
    daily_counts_rebuild()
    assert kept == sorted(DailyCount.objects.values_list("account_id", "day", "kind", "count"))


def test_rows_show_reasons_in_plain_words_and_masked_emails(account, page):
    SurveyRequestFactory(
        account=account,
        status=S.SUPPRESSED,
        decision=Decision.SUPPRESSED,
        reason=SuppressionReason.SUPPRESSION_WINDOW,
        closed_at=timezone.now(),
        customer_email="ada.lovelace@customer.example",
    )
    daily_counts_rebuild()
    html = page(tab="suppressed").content.decode()
    assert "Customer surveyed within the suppression window" in html
    assert "This customer was surveyed recently" in html
    assert "a•••@customer.example" in html
    assert "ada.lovelace@customer.example" not in html


def test_invalid_tab_explains_stellas_message(account, page):
    survey_request = SurveyRequestFactory(account=account, status=S.INVALID, closed_at=timezone.now())
    ApiRequest.objects.create(
        survey_request=survey_request,
        account=account,
        mode="test",
        url="https://s/v1/requests",
        status_code=400,
        outcome="invalid",
        error_message="Employee not found",
    )
    html = page(tab="invalid").content.decode()
    assert "Employee not found" in html and "Stella has no employee with the teammate" in html


def test_pages_are_keyset_paged_without_overlap(account, page):
    now = timezone.now()
    for minute in range(120):
        SurveyRequestFactory(account=account, status=S.SENT, closed_at=now - timedelta(minutes=minute))
    first = page(tab="sent").context
    assert len(first["rows"]) == 50 and first["older_url"]
    second = page(**dict(p.split("=") for p in first["older_url"][1:].split("&"))).context
    third = page(**dict(p.split("=") for p in second["older_url"][1:].split("&"))).context
    conversations = [row.conversation_id for ctx in (first, second, third) for row in ctx["rows"]]
    assert len(conversations) == len(set(conversations)) == 120
    assert third["older_url"] == ""


def test_filters_narrow_the_rows(account, page):
    now = timezone.now()
    SurveyRequestFactory(account=account, status=S.SENT, channel="email", conversation_id="e1", closed_at=now)
    SurveyRequestFactory(account=account, status=S.SENT, channel="chat", conversation_id="c1", closed_at=now)
    SurveyRequestFactory(
        account=account, status=S.SENT, channel="chat", conversation_id="old", closed_at=now - timedelta(days=40)
    )
    ids = lambda response: [row.conversation_id for row in response.context["rows"]]  # noqa: E731
    assert sorted(ids(page(tab="sent"))) == ["c1", "e1"]
    assert ids(page(tab="sent", channel="email")) == ["e1"]
    assert ids(page(tab="sent", q="c1")) == ["c1"]
    old_day = (now - timedelta(days=40)).date().isoformat()
    assert ids(page(tab="sent", date_from=old_day, date_to=old_day)) == ["old"]


def test_the_chart_says_when_the_filter_narrows_only_the_list(account, page):
    """The counts and the chart come from the daily counts, by account and day: a channel, reason or conversation
    filter narrows the rows, and the chart says it doesn't narrow them."""
    scope = "the filter narrows the list below only"
    assert scope not in page(tab="sent").content.decode()
    for narrowed in ({"channel": "email"}, {"reason": "suppression_window"}, {"q": "215000000000001"}):
        assert scope in page(tab="sent", **narrowed).content.decode(), narrowed


def test_csv_export_is_what_the_filter_shows_with_emails_masked(client, account, support):
    now = timezone.now()
    SurveyRequestFactory(
        account=account,
        status=S.SENT,
        channel="email",
        conversation_id="e1",
        closed_at=now,
        customer_email="bea@customer.example",
    )
    SurveyRequestFactory(account=account, status=S.SENT, channel="chat", conversation_id="c1", closed_at=now)
    client.force_login(support)
    response = client.get("/status/export.csv", {"tab": "sent", "channel": "email"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [(row["conversation"], row["customer_email"]) for row in rows] == [("e1", "b•••@customer.example")]


def test_chart_draws_a_bar_per_day(account, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now())
    daily_counts_rebuild()
    context = page().context
    assert len(context["chart"].bars) == 30
    today = context["chart"].bars[-1]
    assert today.total == 1 and today.segments[0][0] == "sent"
    assert '<rect class="k-sent"' in page().content.decode()


def test_alert_banner_shows_while_the_account_alerts(account, page):
    account.health.error_alert_since = timezone.now()
    account.health.error_alert_rate = 12.4
    account.health.save()
    html = unescape(page().content.decode())
    assert f"Over 5% of {account.name}'s requests in the last hour were invalid or failed" in html
    assert "(12%, since" in html


def test_the_banner_reads_the_attention_models_problems_off_the_account_rows_alone(account, django_assert_num_queries):
    """What the banner shows (sending paused, the error-rate alert) is the attention model's, and comes from the
    account rows: one query on every status view, not a scan of the log's invalid requests."""
    account.health.error_alert_since = timezone.now()
    account.health.error_alert_rate = 12.4
    account.health.sending_paused_at, account.health.sending_paused_reason = timezone.now(), "API key rejected"
    account.health.save()
    survey_request = SurveyRequestFactory(account=account, status=S.INVALID, closed_at=timezone.now())
    ApiRequest.objects.create(
        survey_request=survey_request,
        account=account,
        mode="test",
        outcome="invalid",
        error_message="Employee not found",
    )
    accounts = Account.objects.filter(pk=account.pk)
    everything = [
        (each, problem)
        for each, problems in accounts_attention(accounts, now=timezone.now()).items()
        for problem in problems
        if problem.code in FOR_SUPPORT
    ]
    with django_assert_num_queries(1):
        alerts = support_alerts(accounts, now=timezone.now())
    assert [problem.code for _, problem in alerts] == ["paused", "error_alert"]
    assert [(each, problem.text) for each, problem in alerts] == [(each, problem.text) for each, problem in everything]


def test_csm_sees_every_account(client, admin_user, account):
    other = AccountFactory()
    SurveyRequestFactory(account=other, status=S.SENT, closed_at=timezone.now(), conversation_id="other-1")
    client.force_login(admin_user)
    rows = client.get("/status/", {"tab": "sent"}).context["rows"]
    assert [row.conversation_id for row in rows] == ["other-1"]


@pytest.mark.parametrize("before", ["1e20_1", "nan_1", "12_x", "garbage"])
def test_a_cursor_we_didnt_make_starts_from_the_newest(account, page, before):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now(), conversation_id="newest")
    assert [row.conversation_id for row in page(tab="sent", before=before).context["rows"]] == ["newest"]


def test_csv_starts_with_a_bom_and_gives_the_reason_in_plain_words_beside_the_short_one(client, account, support):
    SurveyRequestFactory(
        account=account,
        status=S.SUPPRESSED,
        decision=Decision.SUPPRESSED,
        reason=SuppressionReason.SUPPRESSION_WINDOW,
        closed_at=timezone.now(),
    )
    client.force_login(support)
    body = b"".join(client.get("/status/export.csv", {"tab": "suppressed"}).streaming_content)
    assert body.startswith("\ufeff".encode())  # Excel reads it as UTF-8: the masks' dots and the dashes survive
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == COLUMNS
    reason = rows[0].index("reason")
    assert rows[0][reason : reason + 2] == ["reason", "explanation"]
    assert rows[1][reason : reason + 2] == [
        "Customer surveyed within the suppression window",
        "This customer was surveyed recently, within the account's suppression window.",
    ]


def test_csv_times_are_iso_8601_with_the_users_offset(client, account, support):
    closed = datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=closed)
    UserPreference.objects.create(user=support, time_zone="Europe/Amsterdam")
    client.force_login(support)
    body = b"".join(
        client.get(
            "/status/export.csv", {"tab": "sent", "date_from": "2026-07-01", "date_to": "2026-07-01"}
        ).streaming_content
    )
    row = next(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert row["time"] == "2026-07-01T10:30:00+02:00"
    assert datetime.fromisoformat(row["time"]) == closed


# ---- Tabs ----


def test_tabs_are_named_in_the_outcomes_words_and_stellas(page):
    labels = [tab.label for tab, _, _ in page().context["tabs"]]
    assert labels[:3] == ["Requests", "Test Requests", "Invalid Requests"]  # as on Stella's API Status page
    assert labels[3:] == [outcome.label for outcome in (
        SurveyOutcome.SENT, SurveyOutcome.DO_NOT_SEND, SurveyOutcome.SUPPRESSED, SurveyOutcome.CANCELLED,
        SurveyOutcome.FAILED, SurveyOutcome.WAITING,
    )]  # fmt: skip


def test_a_tabs_label_is_the_outcome_its_rows_show(account, page):
    SurveyRequestFactory(
        account=account, status=S.SENT, decision=Decision.DO_NOT_SEND, reason=DoNotSendReason.BOT_ASSIGNEE,
        closed_at=timezone.now(),
    )  # fmt: skip
    context = page(tab="do_not_send").context
    assert [row.outcome for row in context["rows"]] == [context["tab"].label]


# ---- The chart's y-axis ----


@pytest.mark.parametrize(
    ("busiest", "step"), [(0, 1), (3, 1), (4, 1), (7, 2), (10, 5), (38, 10), (123, 50), (999, 500), (4000, 1000)]
)
def test_the_y_axis_steps_by_round_numbers(busiest, step):
    assert axis_step(busiest) == step


def test_the_y_axis_is_marked_from_zero_past_the_busiest_day(account, page):
    for _ in range(7):
        SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now())
    daily_counts_rebuild()
    response = page()
    chart = response.context["chart"]
    assert [tick.value for tick in chart.ticks] == [0, 2, 4, 6, 8]
    assert chart.bars[-1].segments[0][3] == 140.0  # 7 of 8: the bar stops below the top line
    html = response.content.decode()
    # Labelled bottom up, evenly spaced as the marks are (where each label sits: tests/browser/test_status_page.py).
    assert (
        '<div class="y-axis" aria-hidden="true">\n      <span>0</span><span>2</span><span>4</span><span>6</span><span>8</span>'
        in html
    )


def test_an_empty_range_still_has_an_axis(page):
    assert [tick.value for tick in page().context["chart"].ticks] == [0, 1]


# ---- A mistake in the filter keeps the page ----


def test_a_date_out_of_range_keeps_the_tabs_the_chart_and_what_was_typed(account, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now(), conversation_id="recent")
    daily_counts_rebuild()
    response = page(tab="sent", date_to="9999-12-31", channel="chat")
    context, html = response.context, response.content.decode()
    assert [tab.key for tab, _, _ in context["tabs"]][:4] == ["requests", "test", "invalid", "sent"]
    assert context["tab"].key == "sent" and [row.conversation_id for row in context["rows"]] == ["recent"]
    assert len(context["chart"].bars) == 30
    assert 'value="9999-12-31"' in html
    assert '<span class="error" id="id_date_to_error">Choose a date between 2011-01-01 and 2099-12-31.</span>' in html
    assert 'aria-invalid="true" aria-describedby="id_date_to_error"' in html
    assert "Until it's fixed, the page shows the last 30 days" in html
    assert "<th>Closed</th>" in html
    # The tabs, the older page and the export lead to what is shown, the channel kept and the wrong date left out.
    assert all("channel=chat" in url and "9999" not in url for _, _, url in context["tabs"])
    assert "9999" not in context["export_url"]


def test_from_after_to_is_said_beside_the_dates_and_both_stay_as_typed(page):
    html = page(date_from="2026-05-10", date_to="2026-05-01").content.decode()
    assert 'value="2026-05-10"' in html and 'value="2026-05-01"' in html
    assert '<span class="error" id="id_date_to_error">“From” is after “To”.</span>' in html
    assert 'class="tabs"' in html and 'class="rows"' in html


def test_a_channel_we_dont_know_shows_any_channel_and_says_so(account, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now(), conversation_id="any")
    response = page(tab="sent", channel="fax")
    html = response.content.decode()
    assert [row.conversation_id for row in response.context["rows"]] == ["any"]
    assert 'id="id_channel_error"' in html and "No channel “fax”: choose one from the list." in html
    assert 'aria-invalid="true"' in html
    assert "the page shows any channel" in html


def test_every_mistake_is_told_at_once(page):
    response = page(tab="sent", date_from="2026-05-10", date_to="2026-05-01", channel="fax")
    html = response.content.decode()
    assert 'id="id_channel_error"' in html and "“From” is after “To”." in html
    assert response.context["instead"] == "the last 30 days and any channel"


def test_an_account_not_yours_shows_all_yours(account, page):
    other = AccountFactory()
    response = page(account=other.pk)
    assert response.context["instead"] == "all your accounts"
    assert response.context["status_filter"].account_ids == [account.pk]


def test_the_table_heads_its_time_column_for_what_it_lists(page):
    assert "<th>Time</th>" in page(tab="invalid").content.decode()
    assert "<th>Closed</th>" in page(tab="sent").content.decode()


# ---- Times in the user's zone ----


def test_times_are_shown_in_utc_with_their_zone_until_the_user_chooses(account, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=datetime(2026, 1, 15, 9, 14, tzinfo=UTC))
    html = page(tab="sent", date_from="2026-01-15", date_to="2026-01-15").content.decode()
    assert "2026-01-15 09:14 UTC" in html


def test_a_user_reads_times_in_the_zone_they_choose_on_every_page(client, account, support, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=datetime(2026, 1, 15, 9, 14, tzinfo=UTC))
    response = client.post(
        "/status/time-zone/", {"time_zone": "Europe/Amsterdam", "next": "/status/?tab=sent&date_from=2026-01-15"}
    )
    assert (response.status_code, response["Location"]) == (302, "/status/?tab=sent&date_from=2026-01-15")
    assert UserPreference.objects.get(user=support).time_zone == "Europe/Amsterdam"
    html = page(tab="sent", date_from="2026-01-15", date_to="2026-01-15").content.decode()
    assert "2026-01-15 10:14 CET" in html
    assert "<option selected>Europe/Amsterdam</option>" in html
    # Days stay the portal's, as the counts are kept: the chart and the filter say so.
    assert "days in UTC" in html


def test_a_new_session_finds_the_users_zone(client, account, support):
    UserPreference.objects.create(user=support, time_zone="America/New_York")
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=datetime(2026, 1, 15, 9, 14, tzinfo=UTC))
    client.force_login(support)
    html = client.get("/status/", {"tab": "sent", "date_from": "2026-01-15", "date_to": "2026-01-15"}).content
    assert "2026-01-15 04:14 EST" in html.decode()


def test_the_zone_is_read_once_a_session(client, support):
    UserPreference.objects.create(user=support, time_zone="Asia/Tokyo")
    client.force_login(support)
    client.get("/status/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/status/")
    assert response.context["time_zone"] == "Asia/Tokyo"
    assert not any(UserPreference._meta.db_table in query["sql"] for query in queries.captured_queries)


def test_a_zone_that_isnt_one_changes_nothing(client, support):
    client.force_login(support)
    assert client.post("/status/time-zone/", {"time_zone": "Mars/Olympus_Mons"}).status_code == 302
    assert not UserPreference.objects.exists()


def test_going_back_leads_only_to_this_portal(client, support):
    client.force_login(support)
    response = client.post("/status/time-zone/", {"time_zone": "UTC", "next": "https://elsewhere.example/"})
    assert response["Location"] == "/status/"


def test_the_admin_shows_times_in_the_users_zone(client, account, admin_user):
    survey_request = SurveyRequestFactory(
        account=account, status=S.SENT, closed_at=datetime(2026, 1, 15, 9, 14, tzinfo=UTC)
    )
    UserPreference.objects.create(user=admin_user, time_zone="Asia/Kolkata")
    client.force_login(admin_user)
    response = client.get(f"/admin/surveys/surveyrequest/{survey_request.pk}/change/")
    html = response.content.decode()
    # 09:14 UTC is 14:44 in India (created_at and updated_at, now, show too: match the whole time, not "9:14")
    assert "2026-01-15 14:44 IST" in html and "2026-01-15 09:14" not in html
    assert response.wsgi_request.session[SESSION_KEY] == "Asia/Kolkata"
    assert timezone.get_current_timezone_name() == "UTC"  # for that request only


def test_the_zone_picker_lists_the_common_zones_first_then_every_zone():
    common, others = time_zones()
    assert common[0] == "UTC" and "Europe/Amsterdam" in common
    assert "Pacific/Chatham" in others and not set(common) & set(others)
    assert others == sorted(others)


# ---- Masked the same everywhere ----


def test_no_customers_name_or_email_appears_on_the_page_in_the_csv_or_the_api(client, account, support):
    SurveyRequestFactory(
        account=account, status=S.INVALID, closed_at=timezone.now(), customer_name="Ada Lovelace",
        customer_email="ada.lovelace@customer.example",
    )  # fmt: skip
    survey_request = SurveyRequest.objects.get()
    ApiRequest.objects.create(
        survey_request=survey_request, account=account, mode="test", url="https://s/v1/requests", status_code=400,
        outcome="invalid", error_message="Employee not found",
    )  # fmt: skip
    SurveyRequest.objects.filter(pk=survey_request.pk).update(status=S.SENT)
    client.force_login(support)
    outputs = {}
    for tab in ("invalid", "sent"):
        outputs[f"page {tab}"] = client.get("/status/", {"tab": tab}).content.decode()
        outputs[f"csv {tab}"] = b"".join(client.get("/status/export.csv", {"tab": tab}).streaming_content).decode()
    for url in ("/api/survey-requests/", "/api/api-requests/", f"/api/survey-requests/{survey_request.pk}/"):
        outputs[url] = client.get(url, HTTP_ACCEPT="application/json").content.decode()
    for where, output in outputs.items():
        assert "a•••@customer.example" in output, where
        for secret in ("Lovelace", "ada.lovelace", "Ada L"):
            assert secret not in output, (where, secret)


# ---- Stella's side of each survey request: the same on the page, its CSV, the API and the admin ----


def stella_feedback(survey_request, **fields):
    """Stella's record of the request, as a feedback pull stores it."""
    values = {
        "account": survey_request.account, "uuid": f"uuid-{survey_request.pk}", "sequence_id": survey_request.pk,
        "ext_interaction_id": survey_request.conversation_id, "survey_request": survey_request, "mode": "test",
        "channel": "chat", "employee_email": "tess@support.example", "delivery_status": "Delivered",
        "request_created_at": survey_request.closed_at, "request_sent_at": survey_request.closed_at,
        **fields,
    }  # fmt: skip
    return Feedback.objects.create(**values)


def csv_rows(client, **params):
    body = b"".join(client.get("/status/export.csv", params).streaming_content)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.fixture
def answered(account):
    survey_request = SurveyRequestFactory(
        account=account, status=S.SENT, closed_at=timezone.now(), conversation_id="answered-1"
    )
    stella_feedback(
        survey_request, star_rating=4, response_received_at=timezone.now(),
        comment="Lovely! Write to me at ada.lovelace@customer.example if anything changes.",
    )  # fmt: skip
    return survey_request


def test_a_survey_requests_row_shows_stellas_delivery_status_stars_and_comment(client, support, page, answered):
    html = page(tab="sent").content.decode()
    cell = html.split('<td class="stella">')[1].split("</td>")[0]
    assert 'title="Stella sent the customer the survey.">Delivered</span>' in cell
    assert 'aria-label="4 of 5 stars"' in cell and "★★★★☆" in cell
    assert "Lovely! Write to me at a•••@customer.example if anything changes." in cell
    assert "ada.lovelace" not in html  # an email in the comment is masked as the customer's is
    [row] = csv_rows(client, tab="sent")
    assert (row["delivery_status"], row["star_rating"], row["comment"], row["reconcile"]) == (
        "Delivered", "4", "Lovely! Write to me at a•••@customer.example if anything changes.", ""
    )  # fmt: skip


def test_stellas_words_for_a_request_it_didnt_send_are_explained(account, page):
    survey_request = SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now())
    stella_feedback(survey_request, delivery_status="Not sent: suppression period", request_sent_at=None)
    html = page(tab="sent").content.decode()
    assert "Not sent: suppression period" in html
    assert "the customer had a survey within Stella&#x27;s own suppression period" in html


def test_a_request_stella_hasnt_reported_shows_a_dash_or_its_flag_in_plain_words(client, support, account, page):
    now = timezone.now()
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=now, conversation_id="quiet")
    SurveyRequestFactory(
        account=account, status=S.SENT, closed_at=now - timedelta(minutes=1), conversation_id="unreported",
        reconcile_flag=SurveyRequest.ReconcileFlag.UNREPORTED_SENT,
    )  # fmt: skip
    SurveyRequestFactory(
        account=account, status=S.AMBIGUOUS, closed_at=now - timedelta(minutes=2), conversation_id="ambiguous",
        reconcile_flag=SurveyRequest.ReconcileFlag.UNCONFIRMED_AMBIGUOUS,
    )  # fmt: skip
    sent = page(tab="sent").content.decode()
    assert "⚠ Sent, but Stella hasn&#x27;t reported it" in sent
    failed = page(tab="failed").content.decode()
    assert "⚠ Ambiguous, and Stella hasn&#x27;t reported it: resend?" in failed
    by_conversation = {
        row["conversation"]: row for row in csv_rows(client, tab="sent") + csv_rows(client, tab="failed")
    }
    assert by_conversation["quiet"]["delivery_status"] == by_conversation["quiet"]["reconcile"] == ""
    assert by_conversation["unreported"]["reconcile"] == "Sent, but Stella hasn't reported it"
    assert by_conversation["ambiguous"]["reconcile"] == "Ambiguous, and Stella hasn't reported it: resend?"


def test_an_erased_requests_comment_is_gone_its_stars_stay(client, support, page, answered):
    SurveyRequest.objects.filter(pk=answered.pk).update(erased_at=timezone.now())
    html = page(tab="sent").content.decode()
    assert "Lovely!" not in html and "★★★★☆" in html
    assert csv_rows(client, tab="sent")[0]["comment"] == ""


def test_the_call_tabs_have_no_stella_column(page, answered):
    for tab in ("requests", "test", "invalid"):
        response = page(tab=tab)
        assert response.context["stella_column"] is False
        assert "<th>Stella</th>" not in response.content.decode()
    assert "<th>Stella</th>" in page(tab="sent").content.decode()


def test_stellas_side_is_read_with_the_rows_not_per_row(client, support, account, page):
    def queries_for_page():
        page(tab="sent")  # the session's first page also reads the user's time zone
        with CaptureQueriesContext(connection) as queries:
            page(tab="sent")
        return len(queries.captured_queries)

    for _ in range(2):
        stella_feedback(SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now()), star_rating=5)
    few = queries_for_page()
    for _ in range(20):
        stella_feedback(SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now()), star_rating=3)
    assert queries_for_page() == few


def test_the_admin_shows_stellas_side_on_a_requests_page_and_in_the_list(admin_client, answered):
    page = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[answered.pk])).content.decode()
    assert "Delivered" in page and "Stella sent the customer the survey." in page
    assert "★★★★☆ 4 of 5 stars" in page
    # CSMs read the customer's words whole in the admin, as they read the customer's email there.
    assert "Write to me at ada.lovelace@customer.example" in page
    assert (
        f"uuid-{answered.pk}" in page and reverse("admin:surveys_feedback_change", args=[answered.feedback.pk]) in page
    )
    listing = admin_client.get(reverse("admin:surveys_surveyrequest_changelist")).content.decode()
    assert "★★★★☆" in listing and "Delivered · 4 of 5 stars · Lovely!" in listing


def test_the_admin_says_what_to_do_about_a_flagged_request_and_filters_by_the_flag(admin_client, account):
    now = timezone.now()
    ambiguous = SurveyRequestFactory(
        account=account, status=S.AMBIGUOUS, closed_at=now, conversation_id="amb-1",
        reconcile_flag=SurveyRequest.ReconcileFlag.UNCONFIRMED_AMBIGUOUS, reconciled_at=now,
    )  # fmt: skip
    SurveyRequestFactory(
        account=account, status=S.SENT, closed_at=now, conversation_id="sent-1",
        reconcile_flag=SurveyRequest.ReconcileFlag.UNREPORTED_SENT, reconciled_at=now,
    )  # fmt: skip
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=now, conversation_id="fine-1")
    page = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[ambiguous.pk])).content.decode()
    assert "⚠ Ambiguous, and Stella hasn&#x27;t reported it: resend?" in page
    assert "?q=amb-1&amp;stella=unconfirmed_ambiguous" in page  # the list, where the Resend action is
    changelist = reverse("admin:surveys_surveyrequest_changelist")
    for flag, expected in (("unconfirmed_ambiguous", ["amb-1"]), ("unreported_sent", ["sent-1"])):
        response = admin_client.get(changelist, {"stella": flag})
        assert [row.conversation_id for row in response.context["cl"].result_list] == expected
    listed = admin_client.get(changelist, {"stella": "unconfirmed_ambiguous", "q": "amb-1"})
    assert "resend" in [name for name, _ in listed.context["action_form"].fields["action"].choices]


def test_the_admin_list_reads_stellas_side_with_the_rows(admin_client, account):
    def queries_for_list():
        admin_client.get(reverse("admin:surveys_surveyrequest_changelist"))  # the session's first page reads more
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(reverse("admin:surveys_surveyrequest_changelist"))
        return len(queries.captured_queries)

    stella_feedback(SurveyRequestFactory(account=account, status=S.SENT), star_rating=5)
    few = queries_for_list()
    for _ in range(10):
        stella_feedback(SurveyRequestFactory(account=account, status=S.SENT), star_rating=2, comment="Slow.")
    assert queries_for_list() == few
