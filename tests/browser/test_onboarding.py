"""A new account onboarded end to end from its checklist, in the sandbox: connected with Intercom, the webhook
URL copied (never typed), keys typed in the format the page shows, and a test request under Test Requests."""

import json
import time

import requests
from playwright.sync_api import expect

from sandbox.models import StellaSandboxEmployee
from surveys.models import Account, ApiRequest
from surveys.tasks import process_inbound_webhooks
from tests.browser.conftest import BROWSER, log_in, screenshot
from tests.helpers import notification, sign

pytestmark = BROWSER


def test_a_new_account_is_onboarded_from_its_checklist(live_server, page, log, settings):
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.INTERCOM_OAUTH_URL = f"{live_server.url}/sandbox/intercom/oauth"
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    # Stella knows the person a test request credits: here the CSM, offered while the account knows no teammate.
    StellaSandboxEmployee.objects.create(email="csm@stella.example")
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")

    # A new account, with the workspace id the customer gave.
    page.goto(f"{live_server.url}/admin/surveys/account/add/")
    page.fill("#id_name", "Bolt Support")
    page.fill("#id_intercom_workspace_id", "wsbolt")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Onboarding checklist", exact=True).click()
    account = Account.objects.get(intercom_workspace_id="wsbolt")
    intercom = page.locator("#step-intercom")
    expect(intercom).to_contain_text("No Intercom access token: connect with Intercom")
    expect(intercom).not_to_contain_text("rejected")

    # Connect with Intercom: the sandbox's consent page stands in for the customer's Intercom admin.
    intercom.get_by_role("button", name="Connect with Intercom").click()
    page.fill("input[name=workspace]", "wsbolt")
    page.get_by_role("button", name="Authorize access").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Connected Bolt Support to Intercom workspace wsbolt")
    expect(intercom).to_contain_text("Intercom accepts the access token: it is for workspace wsbolt")
    intercom.get_by_role("button", name="Check now").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Intercom accepted the access token")

    # The webhook URL goes to Intercom through the clipboard; Intercom then posts a closure to it.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    webhook = page.locator("#step-webhook")
    webhook.get_by_role("button", name="Copy").click()
    expect(webhook.locator("#webhook-url-status")).to_have_text("Copied.")
    url = page.evaluate("navigator.clipboard.readText()")
    assert url == f"{live_server.url}/webhooks/intercom/"
    body = json.dumps(
        notification("conversation_admin_closed", app_id="wsbolt", id="notif_bolt_1", created_at=int(time.time()))
    ).encode()
    answer = requests.post(url, data=body, headers={"Content-Type": "application/json", "X-Hub-Signature": sign(body)})
    assert answer.status_code == 200
    process_inbound_webhooks()

    # Keys, in the format the checklist and the form show while the sandbox is on.
    keys = page.locator("#step-keys")
    expect(keys).to_contain_text("starting sandbox-test-")
    keys.get_by_role("link", name="Enter the keys in the account's settings").click()
    expect(page.locator("#id_integration-0-test_api_key_helptext")).to_contain_text("starting sandbox-test-")
    page.fill("#id_integration-0-test_api_key", "sandbox-test-key-bolt")
    page.fill("#id_integration-0-production_api_key", "sandbox-live-key-bolt")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Onboarding checklist", exact=True).click()
    expect(page.locator("#step-keys")).to_contain_text("Both Stella API keys are stored")

    # One test request, through the real send path.
    test_request = page.locator("#step-test-request")
    expect(test_request.locator("input[name=employee_email]")).to_have_value("csm@stella.example")
    test_request.get_by_role("button", name="Send a test request").click()
    message = page.locator(".messagelist .success")
    expect(message).to_contain_text("went to Stella with the test key: Sent")
    expect(page.locator("#step-arrivals")).to_contain_text("conversation.admin.closed")
    screenshot(page, "admin-checklist.png")
    for secret in ("sandbox-test-key-bolt", "sandbox-live-key-bolt"):
        assert secret not in page.content()

    # And there it is, under Test Requests.
    call = ApiRequest.objects.test_calls().get(account=account)
    assert (call.mode, call.outcome) == ("test", ApiRequest.Outcome.SENT)
    message.get_by_role("link", name="Test Requests").click()
    expect(page.locator("#result_list")).to_contain_text(call.survey_request.conversation_id)
    page.goto(f"{live_server.url}/status/?tab=test")
    expect(page.locator("table.rows")).to_contain_text(call.survey_request.conversation_id)
