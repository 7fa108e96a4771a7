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


def test_a_teammate_stella_wont_recognise_is_never_nothing_to_fix(live_server, page, log, tmp_path):
    """The attention model is every screen's: an account with a teammate Stella won't recognise is listed on the
    front page, and its page, checklist and go-live page never say "Nothing to fix"."""
    from surveys.models import IntegrationHealth, Teammate

    account = log
    Teammate.objects.create(
        account=account, intercom_id="991", name="Nia Newhire", email="nia@acme.example",
        stella_match=Teammate.StellaMatch.UNMATCHED,
    )  # fmt: skip
    # Otherwise nothing to fix: connected, and hearing from Intercom.
    IntegrationHealth.objects.filter(account=account).update(sending_paused_at=None, error_alert_since=None)
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")

    page.goto(f"{live_server.url}/admin/")
    attention = page.locator("#attention")
    expect(attention).to_contain_text("Acme Support")
    expect(attention).to_contain_text("Teammates Stella won't recognise: Nia Newhire")
    expect(attention).not_to_contain_text("Nothing to fix")
    page.screenshot(path=str(tmp_path / "front.png"))

    for url in (
        f"/admin/surveys/account/{account.pk}/change/",
        f"/admin/surveys/account/{account.pk}/checklist/",
        f"/admin/surveys/account/{account.pk}/go-live/",
        "/admin/surveys/account/",
    ):
        page.goto(f"{live_server.url}{url}")
        expect(page.locator("#content")).to_contain_text("Teammates Stella won't recognise: Nia Newhire")
        expect(page.locator("#content")).not_to_contain_text("Nothing to fix")
        page.screenshot(path=str(tmp_path / (url.strip("/").replace("/", "_") + ".png")))
