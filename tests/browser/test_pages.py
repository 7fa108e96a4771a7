"""Real pages in a real browser: the status page, the admin's request logs, the lockout page."""

from pathlib import Path

from playwright.sync_api import expect

from surveys.models import ApiRequest, SurveyRequest
from surveys.rules import Decision
from tests.browser.conftest import BROWSER, log_in, screenshot

pytestmark = BROWSER
S = SurveyRequest.Status


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
