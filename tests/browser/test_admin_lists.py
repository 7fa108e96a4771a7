"""The admin as a CSM uses it on a 1366x768 laptop: every list fits its area with what happened and
why in view, the tabs lead between the request lists, and the front page starts with what needs attention."""

import os

import pytest
from playwright.sync_api import expect

from integrations import messages
from integrations.models import InboundWebhook
from tests.browser.conftest import BROWSER, log_in, screenshot

pytestmark = BROWSER

# Each list, and the column that says what happened or why: it must be on screen without scrolling sideways.
LISTS = [
    ("surveys/surveyrequest", "outcome"),
    ("surveys/surveyrequest", "why"),
    ("surveys/apirequest", "call_outcome"),
    ("surveys/apirequest", "error"),
    ("surveys/testapirequest", "call_outcome"),
    ("surveys/invalidapirequest", "error"),
    ("surveys/account", "problems"),
    ("integrations/inboundwebhook", "status"),
]


@pytest.fixture
def csm_page(live_server, page, log):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    return page


@pytest.mark.parametrize(("model", "column"), LISTS)
def test_every_list_fits_a_laptop_screen_with_its_key_column_in_view(live_server, csm_page, model, column):
    for topic in ("conversation.admin.closed", "conversation.admin.replied", "conversation_part.tag.created"):
        InboundWebhook.objects.create(workspace_id="wsacme", topic=topic, notification_id=f"notif_{topic}", body={})
    csm_page.goto(f"{live_server.url}/admin/{model}/")
    table = csm_page.locator("#result_list")
    expect(table).to_be_visible()
    if os.environ.get("LIST_SHOTS"):
        csm_page.screenshot(path=f"/tmp/list-{model.replace('/', '-')}.png")
    widths = csm_page.evaluate(
        """() => {
            const table = document.querySelector('#result_list');
            const area = document.querySelector('#changelist .results') || table.parentElement;
            return {table: table.getBoundingClientRect().width, area: area.clientWidth,
                    viewport: document.documentElement.clientWidth,
                    page: document.documentElement.scrollWidth};
        }"""
    )
    assert widths["table"] <= widths["area"] + 1, widths
    assert widths["page"] <= widths["viewport"] + 1, widths  # nothing scrolls sideways
    header = csm_page.locator(f"#result_list thead th.column-{column}")
    expect(header).to_be_in_viewport()
    box = header.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366


def test_the_tabs_lead_from_requests_to_invalid_requests_keeping_the_account(live_server, csm_page, log):
    csm_page.goto(f"{live_server.url}/admin/surveys/apirequest/?account__id__exact={log.pk}")
    tabs = csm_page.get_by_role("tablist")
    expect(tabs.get_by_role("tab", name="Requests", exact=True)).to_have_attribute("aria-selected", "true")
    screenshot(csm_page, "admin-tabs.png")
    tabs.get_by_role("tab", name="Invalid Requests").click()
    csm_page.wait_for_url(f"**/invalidapirequest/?account__id__exact={log.pk}")
    expect(csm_page.get_by_role("heading", name="Still to fix, by reason")).to_be_visible()
    group = csm_page.locator(".reason-groups tbody tr").first
    expect(group).to_contain_text("Employee not found")
    expect(group).to_contain_text(messages.STELLA_EMPLOYEE_NOT_FOUND.fix)
    screenshot(csm_page, "admin-invalid-requests.png")
    group.get_by_role("link", name="Fix it").click()
    csm_page.wait_for_url(f"**/admin/surveys/teammate/?account__id__exact={log.pk}")


def test_the_front_page_starts_with_what_needs_attention(live_server, csm_page, log):
    attention = csm_page.locator("#attention")
    expect(attention).to_be_in_viewport()
    expect(attention).to_contain_text("Acme Support")
    expect(attention).to_contain_text("No webhook received yet")
    expect(csm_page.locator("#today")).to_contain_text("Sent")
    screenshot(csm_page, "admin-index.png")


def test_a_survey_request_reads_in_plain_words(live_server, csm_page, log):
    flagged = log.survey_requests.filter(decision="do_not_send").first()
    flagged.verdicts = {"assignee_is_bot": "bot_assignee", "first_message_tagged": None}
    flagged.save(update_fields=["verdicts"])
    csm_page.goto(f"{live_server.url}/admin/surveys/surveyrequest/{flagged.pk}/change/")
    content = csm_page.locator("#content-main")
    expect(content.locator(".field-outcome .readonly")).to_have_text("Sent, flagged do not send")
    expect(content).to_contain_text("Assigned to a bot?")
    expect(content).to_contain_text("First message tagged do not send?")
    expect(content.locator(".field-explanation .readonly")).to_contain_text("A bot handled it")
    expect(content.locator(".field-closed_at .help")).to_have_count(0)  # filled: no help text under it
    widths = csm_page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] + 1
    screenshot(csm_page, "admin-survey-request.png")
