"""The answers behind the satisfaction report's figures (its drill-down), and the teammate counts rebuilt from
Stella's stored records agreeing with the counts the feedback pull keeps."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from surveys.loop.teammate_counts import TeammateCounts, teammate_counts_rebuild
from surveys.models import Feedback, Teammate, TeammateDailyCount
from tests.factories import AccountFactory, FeedbackFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now()


@pytest.fixture
def answers(account):
    def answer(stars, comment, who="ada@support.example", team="Lee Lead", conversation="c", **extra):
        return FeedbackFactory(
            account=account, employee_email=who, employee_name="Ada Agent" if who.startswith("ada") else "",
            team=team, star_rating=stars, comment=comment, ext_interaction_id=conversation,
            request_created_at=NOW - timedelta(hours=1), response_received_at=NOW - timedelta(minutes=10 - stars),
            **extra,
        )  # fmt: skip

    answer(5, "Lovely, write to ada.customer@example.com", conversation="101")
    answer(2, "Slow answer", conversation="102")
    answer(1, "Never solved", conversation="103")
    answer(4, "", who="bo@support.example", team="", conversation="104")
    answer(1, "Bot was useless", who="fin@bots.example", team="", conversation="105")
    FeedbackFactory(
        account=account,
        employee_email="ada@support.example",
        response_received_at=None,
        request_created_at=NOW - timedelta(hours=1),
    )  # unanswered; fmt: skip
    Teammate.objects.create(account=account, intercom_id="9", name="Fin", email="fin@bots.example", is_bot=True)
    return account


@pytest.fixture
def signed_in(client, account):
    user = User.objects.create_user("lead", password="pw-lead-12345")
    account.support_users.add(user)
    client.force_login(user)
    return client


def comments(response):
    return [answer.comment for answer in response.context["answers"]]


def test_a_teammates_answers_newest_first_linked_to_intercom_low_ratings_on_demand(signed_in, answers):
    every = signed_in.get("/status/teammates/responses/", {"key": "ada@support.example"})
    assert every.status_code == 200 and every.context["who"] == "ada@support.example"
    assert comments(every) == ["Lovely, write to a•••@example.com", "Slow answer", "Never solved"]
    html = every.content.decode()
    assert 'href="https://app.intercom.com/a/apps/' in html and "/conversations/101" in html
    low = signed_in.get("/status/teammates/responses/", {"key": "ada@support.example", "rating": "low"})
    assert comments(low) == ["Slow answer", "Never solved"]
    assert 'aria-current="page">Low ratings (1–3★)</a>' in low.content.decode()
    one = signed_in.get("/status/teammates/responses/", {"key": "ada@support.example", "rating": "5"})
    assert comments(one) == ["Lovely, write to a•••@example.com"]


def test_everyones_answers_leave_bots_out_unless_asked_and_a_team_narrows_them(signed_in, answers):
    everyone = signed_in.get("/status/teammates/responses/")
    assert "Bot was useless" not in comments(everyone) and len(comments(everyone)) == 4
    assert "Bot was useless" in comments(signed_in.get("/status/teammates/responses/", {"bots": "1"}))
    team = signed_in.get("/status/teammates/responses/", {"group": "team", "key": "Lee Lead", "rating": "low"})
    assert comments(team) == ["Slow answer", "Never solved"] and team.context["who"] == "Lee Lead"


def test_another_accounts_answers_are_never_shown(signed_in, answers):
    other = AccountFactory(name="Other Corp")
    FeedbackFactory(account=other, employee_email="ada@support.example", star_rating=1, comment="Secret",
                    request_created_at=NOW - timedelta(hours=1), response_received_at=NOW)  # fmt: skip
    assert "Secret" not in comments(signed_in.get("/status/teammates/responses/", {"key": "ada@support.example"}))
    refused = signed_in.get("/status/teammates/responses/", {"account": other.pk})
    assert "Secret" not in refused.content.decode()


def test_the_report_links_each_figure_to_its_answers(signed_in, answers):
    from surveys.reporting.teammate_stats import RATINGS  # noqa: PLC0415

    teammate_counts_rebuild()
    page = signed_in.get("/status/teammates/")
    row, urls, spread = page.context["rows"][0]
    assert row.label == "Ada Agent" and set(urls) == {"all", *(rating for rating in RATINGS if rating)}
    assert "key=ada%40support.example" in urls["low"] and "rating=low" in urls["low"]
    assert [bar.rating for bar, _ in spread] == ["5", "2", "1"]
    assert comments(signed_in.get(urls["low"])) == ["Slow answer", "Never solved"]


def test_the_rebuild_counts_what_the_feedback_pull_counted(answers):
    """The counts written record by record as the pull stores them equal the counts rebuilt from the records,
    stars and team included."""
    records = list(Feedback.objects.all())
    deltas = TeammateCounts()
    for record in records:
        deltas.add(record, sign=1)
    deltas.write(account_id=answers.pk)
    columns = ("day", "mode", "teammate", "team", "teammate_name", "channel", "requested", "delivered", "responded",
               "rating_sum", "rating_count", "stars_1", "stars_2", "stars_3", "stars_4", "stars_5")  # fmt: skip
    kept = sorted(TeammateDailyCount.objects.values_list(*columns))
    assert teammate_counts_rebuild() == len(kept) == 3
    assert sorted(TeammateDailyCount.objects.values_list(*columns)) == kept
    ada = TeammateDailyCount.objects.get(teammate="ada@support.example")
    assert (ada.team, ada.stars_1, ada.stars_2, ada.stars_5, ada.requested, ada.responded) == (
        "Lee Lead",
        1,
        1,
        1,
        4,
        3,
    )
