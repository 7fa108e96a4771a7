"""The Teammates view, and Stella's side of each survey request, in a real browser at 1366x768 as a support user:
they fit the screen (nothing scrolls sideways), the view is reached from the status page keeping the account and
dates, and its export carries what it shows."""

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

TEAMMATES = [
    ("tess@support.example", "Tess Teammate"),
    ("omar@support.example", "Omar Operator"),
    ("ines@support.example", "Ines Inbox"),
    ("kwame.asante-boateng@support.example", "Kwame Asante-Boateng"),
    ("lin@support.example", "Lin Liang"),
    ("emp-7731", ""),  # known to Stella by custom id only, no name
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
    for days_ago in range(14):
        for teammate, name in TEAMMATES:
            for channel in ("chat", "email"):
                requested = rng.randrange(0, 9 if channel == "chat" else 4)
                if not requested:
                    continue
                delivered = requested - rng.randrange(0, 2) if requested > 1 else requested
                responded = rng.randrange(0, delivered + 1)
                TeammateDailyCount.objects.create(
                    account=log, day=today - timedelta(days=days_ago), mode="test", teammate=teammate,
                    teammate_name=name, channel=channel, requested=requested, delivered=delivered,
                    responded=responded, rating_sum=sum(rng.choice([2, 3, 4, 5, 5]) for _ in range(responded)),
                    rating_count=responded,
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


def test_a_support_user_opens_the_teammates_view_from_the_status_page_and_it_fits(live_server, page, stella):
    sign_in(page, live_server, f"/status/?account={stella.pk}&tab=sent")
    page.get_by_role("link", name="Teammates →").click()
    page.wait_for_url(f"**/status/teammates/?account={stella.pk}")
    expect(page.get_by_role("heading", name="Teammates")).to_be_visible()
    table = page.locator("table.figures")
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["Teammate", "Channel", "Requests", "Delivered", "Responded", "Response rate", "Average rating"]
    requests = [int(text) for text in table.locator("tbody tr td:nth-child(3)").all_inner_texts()]
    assert requests == sorted(requests, reverse=True) and len(requests) == 12  # 6 teammates x 2 channels
    expect(table.locator("tbody")).to_contain_text("Kwame Asante-Boateng")
    expect(table.locator("tbody")).to_contain_text("emp-7731")  # no name: the custom id Stella knows them by
    expect(page.locator(".lede")).to_contain_text("From Stella's feedback records, last read")
    total = table.locator("tfoot tr")
    expect(total.locator("th")).to_have_text("Total")
    assert int(total.locator("td").nth(1).inner_text()) == sum(requests)
    fits_the_screen(page, "table.figures")
    expect(table.locator("thead th").last).to_be_in_viewport()
    screenshot(page, "status-teammates.png")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = list(csv.reader(Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()))
    assert lines[0][:4] == ["teammate", "teammate_name", "channel", "requests"]
    assert [int(line[3]) for line in lines[1:-1]] == requests
    assert lines[-1][1] == "Total" and int(lines[-1][3]) == sum(requests)

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
