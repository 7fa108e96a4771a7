"""A CSM sets whom an account surveys: the account's page names the workspace's teams (asked of Intercom, here the
sandbox's) beside their ids, takes the rules, and the dry run shows what a sample would leave out."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from sandbox.models import IntercomRecord
from surveys.decisions.rules import Decision
from surveys.models import IntegrationSettings, SurveyRequest
from tests.browser.conftest import BROWSER, log_in, screenshot
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = BROWSER
TEAMS = [
    ("814865", "Billing and subscriptions — EMEA, second line"),
    ("814866", "VIP customers (enterprise accounts, named CSM)"),
    ("814867", "Onboarding"),
]


def test_a_csm_picks_teams_by_name_and_tries_a_sample(live_server, page, log, settings):
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    for team_id, name in TEAMS:
        IntercomRecord.objects.create(
            kind="teams", intercom_id=team_id, data={"type": "team", "id": team_id, "name": name}
        )
    account = AccountFactory(
        name="Northwind Traders International Support (EMEA)", intercom_workspace_id="wsnorth",
        integration__intercom_access_token="sandbox-token-browser"  # teams are kept 10 minutes per token,
    )  # fmt: skip
    now = timezone.now()
    for n in range(20):
        SurveyRequestFactory(
            account=account, conversation_id=str(7000 + n), closed_at=now - timedelta(hours=n + 1),
            teammate_id="4100001", sample_stratum="4100001", sample_position=n, status=SurveyRequest.Status.SENT, decision=Decision.SEND,
        )  # fmt: skip
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/change/")

    teams = page.locator("table.intercom-teams")
    expect(teams.locator("tbody tr")).to_have_count(3)
    expect(teams.locator("tbody tr").first).to_contain_text("Billing and subscriptions — EMEA, second line")
    expect(teams.locator("tbody tr").first).to_contain_text("814865")
    page.locator("#id_integration-0-exclude_teams").fill("814866")
    page.locator("#id_integration-0-min_teammate_replies").fill("1")
    page.locator("#id_integration-0-max_days_since_reply").fill("7")
    page.locator("#id_integration-0-sample_percent").fill("50")
    page.locator("#id_integration-0-exclude_teams").scroll_into_view_if_needed()
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,"
        " teams: document.querySelector('table.intercom-teams').getBoundingClientRect().right})"
    )
    assert widths["page"] <= widths["viewport"] + 1 and widths["teams"] <= 1366, widths
    screenshot(page, "admin-whom-to-survey.png")
    page.locator("input[name=_continue]").click()
    expect(page.locator(".messagelist", has_text="was changed successfully")).to_be_visible()
    integration = IntegrationSettings.objects.get(account=account)
    assert (integration.exclude_teams, integration.min_teammate_replies) == ("814866", 1)
    assert (integration.max_days_since_reply, integration.sample_percent) == (7, 50)

    page.get_by_role("link", name="Dry run…").click()
    expect(page.locator("#id_sample_percent")).to_have_value("50")
    expect(page.locator(".field", has=page.locator("#id_sample_percent"))).to_contain_text("current: 50%")
    page.get_by_role("button", name="Dry run").click()
    # Recorded before the sample was set (all 20 sent), replayed with it: half of the teammate's are left out.
    row = page.locator("table.dry-run-counts tr", has_text="Not in the sample")
    expect(row.locator("td").nth(3)).to_have_text("10")
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\+10$"))


def test_a_csm_keeps_quiet_hours_in_each_customers_night(live_server, page, log):
    account = AccountFactory(
        name="Northwind Traders International Support (EMEA)", intercom_workspace_id="wsnorthq",
        integration__intercom_access_token="sandbox-token-browser",
    )  # fmt: skip
    SurveyRequestFactory(
        account=account, conversation_id="7100", closed_at=timezone.now() - timedelta(hours=5),
        status=SurveyRequest.Status.SENT, decision=Decision.SEND,
    )  # fmt: skip
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/change/")
    page.locator("#id_integration-0-time_zone").fill("America/New_York")
    page.locator("#id_integration-0-quiet_hours").fill("21:00-08:00")
    zone = page.locator("#id_integration-0-quiet_hours_zone")
    zone.select_option("customer")
    zone.scroll_into_view_if_needed()
    box = zone.bounding_box()
    assert box and box["x"] + box["width"] <= 1366, box
    screenshot(page, "admin-quiet-hours-zone.png")
    page.locator("input[name=_continue]").click()
    expect(page.locator(".messagelist", has_text="was changed successfully")).to_be_visible()
    integration = IntegrationSettings.objects.get(account=account)
    assert (integration.quiet_hours, integration.quiet_hours_zone) == ("21:00-08:00", "customer")

    page.get_by_role("link", name="Dry run…").click()
    expect(page.locator("#id_quiet_hours_zone")).to_have_value("customer")
    expect(page.locator(".field", has=page.locator("#id_quiet_hours_zone"))).to_contain_text(
        "current: 21:00-08:00 in each customer's time zone (else America/New_York)"
    )
    page.get_by_role("button", name="Dry run").click()
    # One closure recorded before the account asked Intercom where its customers are: read in the account's zone.
    note = page.locator("ul.notes li", has_text="has no time zone of its customer's")
    expect(note).to_contain_text("1 closure has no time zone of its customer's")
    note.scroll_into_view_if_needed()
    box = note.bounding_box()
    assert box and box["x"] + box["width"] <= 1366, box
