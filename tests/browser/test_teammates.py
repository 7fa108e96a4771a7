"""The satisfaction report (the Teammates view), and Stella's side of each survey request, in a real browser at
1366x768 as a support user, with long realistic names: they fit the screen (nothing scrolls sideways), the report
is reached from the status page keeping the account and dates, sorts by a click on a column, cautions where
ratings are too few, leads from a figure to the comments behind it (low ratings on demand), and its export
carries what it shows."""

import csv
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from surveys.models import Feedback, StellaSyncState, SurveyRequest, TeammateDailyCount
from surveys.reporting.counts import day_of
from tests.browser.conftest import BROWSER, log_in, screenshot

pytestmark = BROWSER
S = SurveyRequest.Status

TEAMMATES = [  # (key, name, team leader, how many ratings a day at most)
    ("tess@support.example", "Tess Teammate", "Maximiliana Okonkwo-Villanueva", 8),
    ("omar@support.example", "Omar Operator", "Maximiliana Okonkwo-Villanueva", 8),
    ("ines@support.example", "Ines Inbox", "Jean-Baptiste Lefebvre-Dupont", 8),
    ("kwame.asante-boateng@support.example", "Kwame Asante-Boateng Mensah-Ofori", "Jean-Baptiste Lefebvre-Dupont", 8),
    ("lin@support.example", "Lin Liang", "", 1),  # new this fortnight: a handful of ratings
    ("emp-7731", "", "", 8),  # known to Stella by custom id only, no name
]
COMMENTS = [
    "Quick and friendly, problem solved!",
    "Helpful, thanks.",
    "It took far too long to get an answer, and I had to explain my order number three times before anyone "
    "looked at it properly. Write to me at bea.buyer@customer.example next time.",
    "",
]


@pytest.fixture
def stella(log):
    """Stella's records of the log's sent requests, and a fortnight of its figures per teammate and channel."""
    rng = random.Random(11)
    for survey_request in log.survey_requests.filter(status=S.SENT).order_by("pk"):
        status = rng.choice(["Delivered"] * 8 + ["Not sent: suppression period", "Hard bounce"])
        answered = status == "Delivered" and rng.random() < 0.7
        Feedback.objects.create(
            account=log, uuid=f"uuid-{survey_request.pk}", sequence_id=survey_request.pk,
            ext_interaction_id=survey_request.conversation_id, survey_request=survey_request, mode="test",
            channel=survey_request.channel, employee_email="tess@support.example", delivery_status=status,
            request_created_at=survey_request.closed_at, request_sent_at=survey_request.closed_at,
            response_received_at=survey_request.closed_at + timedelta(hours=2) if answered else None,
            star_rating=rng.choice([3, 4, 4, 5, 5, 5]) if answered else None,
            comment=rng.choice(COMMENTS) if answered else "",
        )  # fmt: skip
    newest_answered = Feedback.objects.filter(account=log, star_rating__isnull=False).order_by("-request_created_at")
    Feedback.objects.filter(account=log).exclude(pk=newest_answered[0].pk).filter(comment=COMMENTS[2]).update(
        comment=COMMENTS[0]
    )
    newest_answered.filter(pk=newest_answered[0].pk).update(comment=COMMENTS[2])  # one long comment, on the first page
    # Stella hasn't reported one of the sent requests yet, long after it was sent.
    flagged = log.survey_requests.filter(status=S.SENT, feedback__star_rating__isnull=True).order_by("-closed_at")[0]
    Feedback.objects.filter(survey_request=flagged).delete()
    SurveyRequest.objects.filter(pk=flagged.pk).update(reconcile_flag=SurveyRequest.ReconcileFlag.UNREPORTED_SENT)
    StellaSyncState.objects.create(account=log, feedback_synced_at=timezone.now() - timedelta(minutes=6))
    today = day_of(timezone.now())
    for days_ago in range(60):  # this month and the one before, for the change
        for teammate, name, team, most in TEAMMATES:
            if most == 1 and days_ago > 2:
                continue
            for channel in ("chat", "email"):
                requested = rng.randrange(0, most + 1 if channel == "chat" else 4)
                if not requested:
                    continue
                delivered = requested - rng.randrange(0, 2) if requested > 1 else requested
                responded = rng.randrange(0, delivered + 1) if most > 1 else min(1, delivered)
                stars = [rng.choice([1, 2, 3, 4, 4, 5, 5, 5]) for _ in range(responded)]
                TeammateDailyCount.objects.create(
                    account=log, day=today - timedelta(days=days_ago), mode="test", teammate=teammate,
                    teammate_name=name, team=team, channel=channel, requested=requested, delivered=delivered,
                    responded=responded, rating_sum=sum(stars), rating_count=responded,
                    **{f"stars_{n}": stars.count(n) for n in range(1, 6)},
                )  # fmt: skip
    return log


def sign_in(page, live_server, url: str = "/status/") -> None:
    log_in(page, f"{live_server.url}{url}", "acme-support", "acme-support-pw-1")
    page.wait_for_url(f"**{url}")


def fits_the_screen(page, table: str) -> None:
    """Nothing scrolls sideways, and the table fits the page's column."""
    widths = page.evaluate(
        """(selector) => {
            const table = document.querySelector(selector);
            return {table: table.getBoundingClientRect().right, area: document.querySelector('main').getBoundingClientRect().right,
                    viewport: document.documentElement.clientWidth, page: document.documentElement.scrollWidth};
        }""",
        table,
    )
    assert widths["page"] <= widths["viewport"] + 1, widths
    assert widths["table"] <= widths["area"] + 1, widths


def inside_the_screen(page, selector: str) -> None:
    """Every cell of the table lies whole inside the visible width, and none spills into its neighbour."""
    outside = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector + ' th, ' + selector + ' td')]
            .filter(cell => { const box = cell.getBoundingClientRect();
                              return box.left < 0 || box.right > document.documentElement.clientWidth + 1
                                     || cell.scrollWidth > cell.clientWidth + 1; })
            .map(cell => cell.innerText)""",
        selector,
    )
    assert outside == []


def test_a_support_lead_reads_the_satisfaction_report_sorts_it_and_reads_the_low_ratings(live_server, page, stella):
    sign_in(page, live_server, f"/status/?account={stella.pk}&tab=sent")
    page.get_by_role("link", name="Satisfaction →").click()
    page.wait_for_url(f"**/status/teammates/?account={stella.pk}")
    expect(page.get_by_role("heading", name="Satisfaction")).to_be_visible()
    table = page.locator("table.report")
    headers = [text.replace(" ▼", "") for text in table.locator("thead th").all_inner_texts()]
    assert headers == ["Teammate", "Team", "Sent", "Responses", "Response rate", "Satisfaction", "Average", "Ratings",
                       "By week", "Change"]  # fmt: skip
    expect(table.locator("tbody")).to_contain_text("Kwame Asante-Boateng Mensah-Ofori")
    expect(table.locator("tbody")).to_contain_text("emp-7731")  # no name: the custom id Stella knows them by
    expect(page.locator(".lede")).to_contain_text("From Stella's feedback records, last read")
    fits_the_screen(page, "table.report")
    inside_the_screen(page, "table.report")
    screenshot(page, "status-teammates.png")

    # Most ratings first; a click on Satisfaction sorts highest first, another lowest first.
    responses = [int(text) for text in table.locator("tbody td:nth-child(4)").all_inner_texts()]
    assert responses == sorted(responses, reverse=True) and len(responses) == 6
    table.get_by_role("link", name="Satisfaction").click()
    page.wait_for_url("**sort=-satisfaction**")
    expect(table.locator("thead th[aria-sort=descending]")).to_contain_text("Satisfaction")
    shares = [int(text.split("%")[0]) for text in table.locator("tbody td.satisfaction").all_inner_texts()]
    assert shares == sorted(shares, reverse=True) and len(set(shares)) > 1
    table.get_by_role("link", name="Satisfaction").click()
    page.wait_for_url("**sort=satisfaction**")
    shares = [int(text.split("%")[0]) for text in table.locator("tbody td.satisfaction").all_inner_texts()]
    assert shares == sorted(shares)

    # Lin has a handful of ratings: her share carries the caution, the busy teammates' don't.
    lin = table.locator("tbody tr", has_text="Lin Liang")
    expect(lin.locator(".caution").first).to_have_attribute(
        "title", re.compile(r"^Only \d ratings?: too few to trust$")
    )
    expect(table.locator("tbody tr", has_text="Tess Teammate").locator("td.satisfaction .caution")).to_have_count(0)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = list(csv.reader(Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()))
    assert lines[0][:4] == ["teammate", "teammate_name", "team", "channel"]
    shown = [text.splitlines()[0] for text in table.locator("tbody th").all_inner_texts()]
    assert [line[1] or line[0] for line in lines[1:-1]] == shown  # the same rows, in the same order
    assert lines[-1][1] == "Total"

    # Tess's low ratings: from her row's "low" link to the comments behind it, each linked to Intercom.
    tess = table.locator("tbody tr", has_text="Tess Teammate")
    tess.locator("a.low").click()
    page.wait_for_url("**/status/teammates/responses/**rating=low**")
    expect(page.get_by_role("heading", name="Answers: Tess Teammate")).to_be_visible()
    expect(page.get_by_role("link", name="Low ratings (1–3★)")).to_have_attribute("aria-current", "page")
    answers = page.locator("table.answers tbody tr")
    expect(answers.first).to_be_visible()
    stars = page.locator("table.answers .stars").evaluate_all("cells => cells.map(c => c.getAttribute('aria-label'))")
    assert stars and all(label in ("1 of 5 stars", "2 of 5 stars", "3 of 5 stars") for label in stars)
    expect(answers.first.locator("a[target=_blank]")).to_have_attribute("href", re.compile(r"^https://"))
    fits_the_screen(page, "table.answers")
    screenshot(page, "status-teammate-answers.png")
    page.get_by_role("link", name="Every response").click()
    page.wait_for_url(re.compile(r"/status/teammates/responses/\?(?!.*rating=)"))
    every = page.locator("table.answers .stars").evaluate_all("cells => cells.map(c => c.getAttribute('aria-label'))")
    assert len(every) > len(stars) and "5 of 5 stars" in every

    page.get_by_role("link", name="Satisfaction").first.click()  # the breadcrumb: back to the report
    page.wait_for_url("**/status/teammates/?**")
    page.get_by_role("link", name="API Request Status").click()  # back, with the same account and dates
    page.wait_for_url(f"**/status/?account={stella.pk}")
    expect(page.get_by_role("heading", name="API Request Status")).to_be_visible()


def test_the_sent_tab_shows_stellas_side_and_still_fits(live_server, page, stella):
    sign_in(page, live_server, "/status/?tab=sent")
    expect(page.locator("table.rows thead th").last).to_have_text("Stella")
    cells = page.locator("table.rows td.stella")
    expect(cells.filter(has_text="Delivered").first).to_be_visible()
    expect(page.locator("table.rows .stars").first).to_have_attribute("aria-label", re.compile(r"^\d of 5 stars$"))
    expect(page.locator("table.rows .flag")).to_contain_text("Sent, but Stella hasn't reported it")
    assert "bea.buyer@" not in page.content()  # an email in a comment is masked, as the customer's is
    fits_the_screen(page, "table.rows")
    # A long comment shows its start, four lines at most: rows stay readable. "Show all" opens the rest in place.
    long = page.locator("table.rows details.long-quote", has_text="It took far too long")
    expect(long).to_have_count(1)
    start = long.locator(".start")
    line = float(start.evaluate("q => getComputedStyle(q).lineHeight").removesuffix("px"))
    assert start.bounding_box()["height"] <= 4 * line + 2
    expect(long.locator(".whole")).to_be_hidden()
    long.get_by_text("Show all 172 characters").click()
    expect(long.locator(".whole")).to_be_visible()
    expect(long.locator(".whole")).to_contain_text("Write to me at b•••@customer.example next time.")
    expect(start).to_be_hidden()
    fits_the_screen(page, "table.rows")
