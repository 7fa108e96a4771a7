"""A new account onboarded end to end from its checklist, in the sandbox: connected with Intercom, the webhook
URL copied (never typed), keys typed in the format the page shows, and a test request under Test Requests."""

import re

from playwright.sync_api import expect

from surveys.models import Account, ApiRequest
from surveys.tasks import process_inbound_webhooks
from tests.browser.conftest import BROWSER, log_in, screenshot

pytestmark = BROWSER


def test_a_new_account_is_onboarded_from_its_checklist(live_server, page, log, settings):
    """Every value typed is the new account's name or one the page shows: no workspace id, key, secret or email
    brought from elsewhere, since the sandbox plays the customer's Intercom and Stella."""
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.INTERCOM_OAUTH_URL = f"{live_server.url}/sandbox/intercom/oauth"
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")

    # A new account: its name only (in the sandbox, the form offers a workspace id of its own).
    page.goto(f"{live_server.url}/admin/surveys/account/add/")
    page.fill("#id_name", "Northwind Traders Support Team")
    workspace = page.locator("#id_intercom_workspace_id").input_value()
    assert workspace.startswith("sandbox-")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Onboarding checklist", exact=True).click()
    account = Account.objects.get(name="Northwind Traders Support Team")
    intercom = page.locator("#step-intercom")
    expect(intercom).not_to_contain_text("rejected")

    # Connect with Intercom: the sandbox's consent page offers a workspace of the account's own.
    intercom.get_by_role("button", name="Connect with Intercom").click()
    expect(page.locator("input[name=workspace]")).to_have_value(workspace)
    page.get_by_role("button", name="Authorize access").click()
    expect(page.locator(".messagelist .success")).to_contain_text(f"to Intercom workspace {workspace}")
    intercom.get_by_role("button", name="Check now").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Intercom accepted the access token")

    # The webhook URL goes to Intercom through the clipboard; the sandbox's Intercom then closes a conversation.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    webhook = page.locator("#step-webhook")
    webhook.get_by_role("button", name="Copy").click()
    expect(webhook.locator("#webhook-url-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server.url}/webhooks/intercom/"
    arrivals = page.locator("#step-arrivals")
    arrivals.get_by_role("button", name="Simulate a closed conversation").click()
    expect(page.locator(".messagelist .success")).to_contain_text("The sandbox's Intercom closed conversation")
    process_inbound_webhooks()  # as the task cluster does, queued on commit
    page.reload()
    expect(arrivals).to_contain_text("✓ Done")
    expect(page.locator("#step-webhook")).to_contain_text("✓ Done")

    # Keys and the API secret, as the checklist shows them while the sandbox is on.
    keys = page.locator("#step-keys")
    test_key = re.search(r"e\.g\. (sandbox-test-\S+?)\)", keys.inner_text()).group(1)
    live_key = re.search(r"e\.g\. (sandbox-live-\S+?)\)", keys.inner_text()).group(1)
    secret = page.locator("#sandbox-secret").inner_text()
    expect(page.locator("#step-secret")).to_contain_text("To do")
    keys.get_by_role("link", name="Enter the keys in the account's settings").click()
    page.fill("#id_integration-0-test_api_key", test_key)
    page.fill("#id_integration-0-production_api_key", live_key)
    page.fill("#id_integration-0-stella_api_secret", secret)
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Onboarding checklist", exact=True).click()
    expect(page.locator("#step-keys")).to_contain_text("Both Stella API keys are stored")
    expect(page.locator("#step-secret")).to_contain_text("✓ Done")

    # One test request, crediting one of Stella's employees (read from Stella on the spot), through the send path.
    test_request = page.locator("#step-test-request")
    choices = test_request.locator("select[name=employee_email] option")
    expect(choices.first).to_be_attached()
    emails = [value for value in choices.evaluate_all("options => options.map(o => o.value)")]
    assert "tess@support.example" in emails and "nia@support.example" not in emails  # Stella's, not Intercom's
    chosen = emails[-1]
    test_request.locator("select[name=employee_email]").select_option(chosen)
    test_request.get_by_role("button", name="Send a test request").click()
    message = page.locator(".messagelist .success")
    expect(message).to_contain_text("went to Stella with the test key: Sent")
    expect(test_request.locator("select[name=employee_email]")).to_have_value(chosen)  # the last choice, kept
    expect(page.locator("#step-teammates")).to_contain_text("✓ Done")  # Tess, who closed the conversation
    screenshot(page, "admin-checklist.png")
    done = [text.upper() for text in page.locator("ol.checklist > li .state").all_inner_texts()]
    assert done.count("✓ DONE") == len(done) - 1, done  # all but Live

    # And there it is, under Test Requests.
    call = ApiRequest.objects.test_calls().get(account=account)
    assert (call.mode, call.outcome) == ("test", ApiRequest.Outcome.SENT)
    message.get_by_role("link", name="Test Requests").click()
    expect(page.locator("#result_list")).to_contain_text(call.survey_request.conversation_id)
