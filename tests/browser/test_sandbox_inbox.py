"""The sandbox's Intercom inbox: a waiting conversation's canvas, Don't survey pressed, the request ends without a
call to Stella; long names fit Intercom's 320 px panel."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from sandbox.models import StellaSandboxRequest
from surveys.decisions.rules import CancelReason
from surveys.models import ApiRequest, SurveyRequest
from surveys.tasks import send_due_survey_requests
from tests.browser.conftest import BROWSER, log_in, screenshot
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory

pytestmark = BROWSER
LONG_CUSTOMER = "Maximiliana Oyelaran-Whitcombe de la Fuente-Hohenberg"


def test_dont_survey_in_the_sandbox_inbox_ends_the_waiting_request_without_a_stella_call(live_server, page, settings):
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    account = AccountFactory(name="Northwind Traders International Customer Care", intercom_workspace_id="wsnorth")
    waiting = SurveyRequestFactory(
        account=account, conversation_id="215000000777", customer_name=LONG_CUSTOMER,
        customer_email="maximiliana.oyelaran-whitcombe@a-very-long-customer-domain.example",
        teammate_name="Bartholomew Featherstonehaugh-Cholmondeley",
        closed_at=timezone.now(), send_after=timezone.now() + timedelta(minutes=30),
    )  # fmt: skip
    sent = SurveyRequestFactory(account=account, conversation_id="215000000778", sent=True, customer_name="Bea Buyer")
    FeedbackFactory(account=account, survey_request=sent, star_rating=1, comment="Nobody **answered** my question")
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")

    page.goto(f"{live_server.url}/sandbox/intercom/inbox")
    page.get_by_role("link", name=LONG_CUSTOMER).click()
    canvas = page.locator("#canvas")
    expect(canvas).to_contain_text("Waiting until")
    expect(canvas).to_contain_text("credited to Bartholomew Featherstonehaugh-Cholmondeley")
    box = canvas.bounding_box()
    assert box is not None and box["width"] <= 320 and box["height"] < 400
    screenshot(page, "sandbox-inbox-app.png")

    canvas.get_by_role("button", name="Don't survey this conversation").click()
    expect(canvas).to_contain_text("Cancelled")
    expect(canvas).to_contain_text("Why: Stopped by a teammate in Intercom")
    expect(canvas).to_contain_text("Stopped by Tess Teammate on")
    expect(canvas.get_by_role("button")).to_have_count(0)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == (SurveyRequest.Status.CANCELLED, CancelReason.STOPPED_IN_INTERCOM)
    assert waiting.verdicts["stopped_in_intercom"]["admin_name"] == "Tess Teammate"

    SurveyRequest.objects.filter(pk=waiting.pk).update(send_after=timezone.now() - timedelta(minutes=1))
    send_due_survey_requests()  # as the cluster does: nothing is due, so nothing reaches Stella
    assert not ApiRequest.objects.filter(survey_request=waiting).exists()
    assert not StellaSandboxRequest.objects.exists()

    # A sent one shows the stars and the comment as the customer typed it.
    page.get_by_role("link", name="Bea Buyer").click()
    expect(canvas).to_contain_text("★☆☆☆☆ (1 of 5 stars)")
    expect(canvas).to_contain_text("Nobody **answered** my question")


def test_a_csm_turns_on_service_recovery_and_finds_the_inbox_apps_urls_on_the_checklist(live_server, page):
    account = AccountFactory(name="Northwind Traders International Customer Care", intercom_workspace_id="wsnorth")
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")

    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/change/")
    page.fill("#id_integration-0-low_rating_threshold", "2")
    page.fill("#id_integration-0-low_rating_tag", "low-rating")
    page.check("#id_integration-0-low_rating_note")
    page.fill("#id_integration-0-low_rating_assign", "team:5500001")
    hook = "https://hooks.slack.example/services/T0001/B0001/northwindsecret99"
    page.fill("#id_integration-0-low_rating_webhook", hook)
    page.locator("#id_integration-0-low_rating_threshold").scroll_into_view_if_needed()
    screenshot(page, "admin-service-recovery.png")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    integration = type(account.integration).objects.get(account=account)
    assert (integration.low_rating_threshold, integration.low_rating_assign) == (2, "team:5500001")
    assert integration.low_rating_webhook_url == hook
    assert "northwindsecret99" not in page.content()  # shown back masked, as a key is

    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/checklist/")
    step = page.locator("#step-inbox-app")
    expect(step).to_contain_text("Optional")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    step.get_by_role("button", name="Copy").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server.url}/intercom/canvas/initialize/"
    step.scroll_into_view_if_needed()
    screenshot(page, "admin-checklist-inbox-app.png")
