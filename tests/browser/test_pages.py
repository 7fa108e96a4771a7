"""Real pages in a real browser: the admin's request logs, the lockout page (the status page has its own module)."""

from playwright.sync_api import expect

from surveys.models import ApiRequest, SurveyRequest
from tests.browser.conftest import BROWSER, log_in

pytestmark = BROWSER
S = SurveyRequest.Status


def test_csm_resends_an_invalid_request_from_the_admin(live_server, page, log):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/")
    expect(page.get_by_role("heading", name="Select invalid request to view")).to_be_visible()

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
