"""Shared by the browser tests: headless Chromium from Debian (/usr/bin/chromium), driven by
Playwright's Python package (never downloads a browser), a signed-in helper, the screenshot
hook of `make screenshots` (SAVE_SCREENSHOTS=1), and a fortnight of a realistic log."""

import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import sync_playwright

from surveys.decisions.rules import Decision, DoNotSendReason, InvalidReason, SuppressionReason
from surveys.models import ApiRequest, SurveyRequest
from surveys.reporting.counts import daily_counts_rebuild
from tests.factories import AccountFactory, SurveyRequestFactory

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Every browser test module sets `pytestmark = BROWSER`.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.slow,
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
    """A fresh page at the size a CSM's laptop shows: 1366x768."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    if os.environ.get("SAVE_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name))  # what a 1366x768 screen shows


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
