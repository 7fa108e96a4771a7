"""A CSM changes a team's delay, tags and Intercom region on the account page, sees the change below the form (who, when, through
what, old → new), and puts the earlier rules back with one click, on a laptop screen."""

from datetime import timedelta

from django.contrib.auth.models import User
from playwright.sync_api import expect

from portal.history import configuration_changed_by
from surveys.accounts.account import integration_settings_update
from surveys.models import IntegrationSettings
from tests.browser.conftest import BROWSER, log_in, screenshot
from tests.factories import AccountFactory

pytestmark = BROWSER


def test_a_csm_reads_the_history_and_restores_earlier_rules(live_server, page, log):
    account = AccountFactory(
        name="Northwind Traders Customer Experience (EMEA and Asia-Pacific)", intercom_workspace_id="wsnorthwind"
    )
    integration = account.integration
    colleague = User.objects.create_user("margaret.hamilton-longname@northwind.example")
    with configuration_changed_by("admin", user=colleague):
        integration_settings_update(
            integration, channel_delay=timedelta(minutes=10), do_not_send_tags="fraud, dupe, vip_escalations_team"
        )
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/change/")
    page.fill("#id_integration-0-channel_delay", "2h")
    page.fill("#id_integration-0-do_not_send_tags", "billing_disputes")
    page.select_option("#id_integration-0-intercom_region", label="Europe")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.get_by_role("link", name="Configuration history").click()
    history = page.locator("#configuration-history")
    newest = history.locator("tbody tr").first
    expect(newest.locator(".who")).to_have_text("csm")
    expect(newest.locator(".through")).to_have_text("Admin: account page")
    expect(newest.locator(".changes")).to_contain_text("Channel delay: 10m → 2h")
    expect(newest.locator(".changes")).to_contain_text(
        "Do not send tags: fraud, dupe, vip_escalations_team → billing_disputes"
    )
    expect(newest.locator(".changes")).to_contain_text("Intercom region: United States → Europe")
    earlier = history.locator("tbody tr").nth(1)
    expect(earlier.locator(".who")).to_have_text("margaret.hamilton-longname@northwind.example")
    # Everything in a row fits a 1366 px screen: the restore button is in view, not off to the right.
    button = earlier.get_by_role("button", name="Restore these rules")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366
    screenshot(page, "admin-configuration-history.png")

    button.click()
    expect(page.locator(".messagelist .success")).to_contain_text("Restored")
    integration.refresh_from_db()
    assert (integration.channel_delay, integration.do_not_send_tags) == (
        timedelta(minutes=10),
        "fraud, dupe, vip_escalations_team",
    )
    restored = page.locator("#configuration-history tbody tr").first
    expect(restored.locator(".through")).to_have_text("Restore of earlier rules")
    expect(restored.locator(".changes")).to_contain_text("Channel delay: 2h → 10m")
    assert IntegrationSettings.history.filter(id=integration.pk, history_source="restore").count() == 1
    assert integration.intercom_region == "eu"  # not a rule: a restore leaves it
