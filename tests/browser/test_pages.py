"""Real pages in a real browser: headless Chromium from Debian (/usr/bin/chromium), driven by
Playwright's Python package. Never downloads a browser. `make screenshots` saves the pictures
the README shows (SAVE_SCREENSHOTS=1)."""

import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from surveys.counts import daily_counts_rebuild
from surveys.models import ApiRequest, SurveyRequest
from surveys.rules import Decision, DoNotSendReason, InvalidReason, SuppressionReason
from tests.factories import AccountFactory, SurveyRequestFactory

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="browser tests need Debian's Chromium at /usr/bin/chromium: apt-get install chromium chromium-driver",
    ),
]
# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
S = SurveyRequest.Status


@pytest.fixture(scope="module")
def browser():

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    if os.environ.get("SAVE_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name), full_page=True)


@pytest.fixture
def log(db):
    """A fortnight of an account's requests, varied enough to look like one."""
    account = AccountFactory(name="Acme Support", intercom_workspace_id="wsacme")
    names = ["Ada Lovelace", "Bea Buyer", "Cai Client", "Dee Doe", "Eli Early", "Fay Field"]
    teammates = ["Tess Teammate", "Omar Operator", "Ines Inbox"]
    outcomes = [(S.SENT, Decision.SEND, "")] * 6 + [
        (S.SENT, Decision.DO_NOT_SEND, DoNotSendReason.BOT_ASSIGNEE),
        (S.SUPPRESSED, Decision.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW),
        (S.CANCELLED, Decision.SEND, ""),
        (S.INVALID, Decision.INVALID, InvalidReason.EMPLOYEE_NOT_FOUND),
    ]
    rng = random.Random(7)
    now = timezone.now()
    for n in range(60):
        status, decision, reason = rng.choice(outcomes)
        name = rng.choice(names)
        survey_request = SurveyRequestFactory(
            account=account, status=status, decision=decision, reason=reason, conversation_id=str(215000000000 + n),
            closed_at=now - timedelta(days=rng.randrange(14), minutes=rng.randrange(600)), channel=rng.choice(["chat", "email"]),
            customer_name=name, customer_email=f"{name.split()[0].lower()}@customer.example", teammate_name=rng.choice(teammates),
            status_detail="Employee not found" if status == S.INVALID else ("Reopened during the channel delay" if status == S.CANCELLED else ""),
        )  # fmt: skip
        if status in (S.SENT, S.INVALID):
            message = "Employee not found" if status == S.INVALID else ""
            api_request = ApiRequest.objects.create(
                survey_request=survey_request, account=account, mode="test", url="https://acme.api.stellaconnect.net/v1/requests",
                status_code=400 if message else 200, outcome="invalid" if message else "sent", error_message=message, duration_ms=rng.randrange(80, 240),
            )  # fmt: skip
            ApiRequest.objects.filter(pk=api_request.pk).update(
                created_at=survey_request.closed_at + timedelta(seconds=2)
            )
    daily_counts_rebuild()
    support = User.objects.create_user("acme-support", password="acme-support-pw-1")
    account.support_users.add(support)
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    return account


def log_in(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("input[type=submit], button[type=submit]").first.click()


def test_support_user_reads_the_status_page_and_exports_it(live_server, page, log):
    log_in(page, f"{live_server.url}/status/", "acme-support", "acme-support-pw-1")
    page.wait_for_url("**/status/")
    expect(page.get_by_role("heading", name="API Request Status")).to_be_visible()
    expect(page.get_by_role("tab", name="Test Requests")).to_have_attribute("aria-selected", "true")

    page.get_by_role("tab", name="Invalid Requests").click()
    page.wait_for_url("**tab=invalid**")
    first_row = page.locator("table.rows tbody tr").first
    expect(first_row).to_contain_text("Employee not found")
    expect(first_row).to_contain_text("Stella has no employee with the teammate's email")

    page.get_by_role("tab", name="Sent").click()
    page.wait_for_url("**tab=sent**")
    expect(page.locator("table.rows")).to_contain_text("•••@customer.example")
    assert "ada@customer.example" not in page.content()  # masked
    screenshot(page, "status-page.png")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("time,account,conversation")
    sent = SurveyRequest.objects.filter(status=S.SENT).exclude(decision=Decision.DO_NOT_SEND).count()
    assert len(lines) == 1 + sent
    assert all("•••@customer.example" in line for line in lines[1:])


def test_csm_resends_an_invalid_request_from_the_admin(live_server, page, log):
    page.set_viewport_size({"width": 1600, "height": 900})
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.goto(f"{live_server.url}/admin/surveys/apirequest/")
    screenshot(page, "admin-requests.png")
    page.goto(f"{live_server.url}/admin/surveys/testapirequest/")
    screenshot(page, "admin-test-requests.png")
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/")
    expect(page.get_by_role("heading", name="Select invalid request to view")).to_be_visible()
    screenshot(page, "admin-invalid-requests.png")

    invalid = ApiRequest.objects.filter(outcome="invalid").order_by("-created_at").first()
    page.check(f"input[name=_selected_action][value='{invalid.pk}']")
    page.select_option("select[name=action]", "resend")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Resending 1 survey request(s)")
    invalid.survey_request.refresh_from_db()
    assert invalid.survey_request.status == S.SCHEDULED


def test_a_support_user_who_keeps_mistyping_sees_when_to_try_again(live_server, browser, log):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    for _ in range(6):
        log_in(page, f"{live_server.url}/login/", "acme-support", "not-the-password")
    expect(page.get_by_role("heading", name="Logging in is paused")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Try again in 15 minutes")
    log_in(page, f"{live_server.url}/login/", "acme-support", "acme-support-pw-1")
    expect(page.get_by_role("heading", name="Logging in is paused")).to_be_visible()  # even the right one
    context.close()


def test_a_date_out_of_range_keeps_what_was_typed_with_the_reason(live_server, browser, log):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    log_in(page, f"{live_server.url}/status/", "acme-support", "acme-support-pw-1")
    page.wait_for_url("**/status/")
    page.goto(f"{live_server.url}/status/?date_to=9999-12-31")
    expect(page.locator(".error")).to_contain_text("Choose a date between 2011-01-01 and 2099-12-31.")
    expect(page.locator("input[name=date_to]")).to_have_value("9999-12-31")
    context.close()
