import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from surveys.counts import daily_counts_rebuild
from surveys.models import ApiRequest, DailyCount, SurveyRequest
from surveys.rules import Decision, SuppressionReason
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
        "test": 0, "invalid": 1, "sent": 0, "do_not_send": 0, "suppressed": 0, "cancelled": 0, "failed": 0, "waiting": 2,
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
    from surveys.services import survey_request_transition

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
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["time", "account", "conversation"]
    assert [(row[2], row[5]) for row in rows[1:]] == [("e1", "b•••@customer.example")]


def test_chart_draws_a_bar_per_day(account, page):
    SurveyRequestFactory(account=account, status=S.SENT, closed_at=timezone.now())
    daily_counts_rebuild()
    context = page().context
    assert len(context["chart"]) == 30
    today = context["chart"][-1]
    assert today.total == 1 and today.segments[0][0] == "sent"
    assert '<rect class="k-sent"' in page().content.decode()


def test_alert_banner_shows_while_the_account_alerts(account, page):
    account.health.error_alert_since = timezone.now()
    account.health.error_alert_rate = 12.4
    account.health.save()
    html = page().content.decode()
    assert f"Over 5% of {account.name}'s requests in the last hour were invalid or failed" in html
    assert "(12%, since" in html


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
