"""The API Request Status page in a real browser at 1366x768: reading it, exporting it, its time zone, its chart's
axis, a mistake in its filter, and the API's docs page with nothing loaded from outside."""

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import expect

from surveys.decisions.rules import Decision
from surveys.models import SurveyRequest
from tests.browser.conftest import BROWSER, log_in, screenshot

pytestmark = BROWSER
S = SurveyRequest.Status


def sign_in(page, live_server, url: str = "/status/") -> None:
    log_in(page, f"{live_server.url}{url}", "acme-support", "acme-support-pw-1")
    page.wait_for_url(f"**{url}")


def tab(page, label: str):
    """A tab by its label, whatever its count: "Sent" is not "Sent, flagged do not send"."""
    return page.get_by_role("tab", name=re.compile(rf"^{re.escape(label)}( \d+)?$"))


def test_support_user_reads_the_status_page_and_exports_it(live_server, page, log):
    sign_in(page, live_server)
    expect(page.get_by_role("heading", name="API Request Status")).to_be_visible()
    expect(tab(page, "Requests")).to_have_attribute("aria-selected", "true")  # as on Stella's API Status page
    expect(page.locator("table.rows thead th").first).to_have_text("Time")  # every call, newest first
    expect(page.locator("table.rows tbody tr td.when").first).to_be_visible()

    tab(page, "Test Requests").click()
    page.wait_for_url("**tab=test**")
    expect(page.locator("table.rows tbody tr").first).to_contain_text("Test")

    tab(page, "Invalid Requests").click()
    page.wait_for_url("**tab=invalid**")
    first_row = page.locator("table.rows tbody tr").first
    expect(first_row).to_contain_text("Employee not found")
    expect(first_row).to_contain_text("Stella has no employee with the teammate's email")

    tab(page, "Sent").click()
    page.wait_for_url("**tab=sent**")
    expect(page.locator("table.rows")).to_contain_text("•••@customer.example")
    assert "ada@customer.example" not in page.content()  # masked
    assert "Ada Lovelace" not in page.content()
    screenshot(page, "status-page.png")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("time,account,conversation")
    assert lines[0].endswith(",reason,explanation,delivery_status,star_rating,comment,reconcile")
    sent = SurveyRequest.objects.filter(status=S.SENT).exclude(decision=Decision.DO_NOT_SEND).count()
    assert len(lines) == 1 + sent
    assert all("•••@customer.example" in line for line in lines[1:])
    assert not any("Lovelace" in line for line in lines)


def test_times_say_their_zone_and_the_user_can_change_it(live_server, page, log):
    sign_in(page, live_server, "/status/?tab=sent")
    first_time = page.locator("table.rows tbody tr td.when").first
    expect(first_time).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    expect(page.get_by_label("Times in")).to_have_value("UTC")
    iso = first_time.locator("time").get_attribute("datetime")

    page.get_by_label("Times in").select_option("Asia/Kolkata")
    page.get_by_role("button", name="Set").click()
    page.wait_for_url("**/status/?tab=sent")  # back where the user was
    expect(page.get_by_label("Times in")).to_have_value("Asia/Kolkata")
    expect(first_time).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d IST$"))
    assert page.locator("table.rows tbody tr td.when time").first.get_attribute("datetime") != iso  # +05:30 now
    expect(page.locator(".note")).to_contain_text("Times are in Asia/Kolkata")

    page.reload()  # kept for the next page too
    expect(page.get_by_label("Times in")).to_have_value("Asia/Kolkata")


def test_the_chart_has_a_y_axis_with_numbers(live_server, page, log):
    sign_in(page, live_server)
    labels = page.locator(".chart .y-axis span")
    values = [int(text) for text in labels.all_inner_texts()]
    assert values[0] == 0 and len(values) >= 2 and values == sorted(values)
    busiest = int(re.search(r"busiest day: (\d+)", page.locator(".axis-labels").inner_text()).group(1))
    assert values[-1] >= busiest
    # Each number sits beside its grid line, readable at this size: no smaller than 11px, none overlapping.
    boxes = [labels.nth(n).bounding_box() for n in range(labels.count())]
    lines = page.locator(".chart svg line.grid")
    assert lines.count() == len(values)
    for box, n in zip(boxes, range(lines.count()), strict=True):
        line = lines.nth(n).bounding_box()
        assert abs((box["y"] + box["height"] / 2) - line["y"]) <= 2
    assert all(above["y"] + above["height"] <= below["y"] for above, below in zip(boxes[1:], boxes, strict=False))
    assert float(labels.first.evaluate("label => getComputedStyle(label).fontSize").removesuffix("px")) >= 11


def test_a_mistake_in_the_filter_keeps_the_page_what_was_typed_and_says_why(live_server, page, log):
    sign_in(page, live_server, "/status/?tab=sent")
    columns = page.locator("table.rows thead th").all_inner_texts()
    page.fill("input[name=date_from]", "2026-05-10")
    page.fill("input[name=date_to]", "2026-05-01")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**date_from=2026-05-10**")

    expect(page.locator("#id_date_to_error")).to_have_text("“From” is after “To”.")
    expect(page.locator("input[name=date_from]")).to_have_value("2026-05-10")
    expect(page.locator("input[name=date_to]")).to_have_value("2026-05-01")
    expect(page.locator("input[name=date_to]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".notice")).to_contain_text("the page shows the last 30 days")
    # The page stays as it was: the tabs (the same one chosen), the chart, and the table with the same columns.
    expect(tab(page, "Sent")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab")).to_have_count(9)
    expect(page.locator(".chart svg")).to_be_visible()
    assert page.locator("table.rows thead th").all_inner_texts() == columns
    assert page.locator("table.rows tbody tr td.when").count() > 0
    # The error sits next to the field it is about.
    field, error = page.locator("input[name=date_to]").bounding_box(), page.locator("#id_date_to_error").bounding_box()
    assert abs(error["x"] - field["x"]) < 120 and 0 <= error["y"] - (field["y"] + field["height"]) < 30


def test_a_date_out_of_range_keeps_what_was_typed_with_the_reason(live_server, page, log):
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/status/?date_to=9999-12-31")
    expect(page.locator(".filters .error")).to_contain_text("Choose a date between 2011-01-01 and 2099-12-31.")
    expect(page.locator("input[name=date_to]")).to_have_value("9999-12-31")
    expect(tab(page, "Requests")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("link", name="Export CSV")).to_be_visible()


def test_the_api_docs_page_renders_with_nothing_from_outside(live_server, page, log):
    sent_out = []

    def only_this_machine(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            sent_out.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_machine)
    sign_in(page, live_server)
    page.get_by_role("link", name="API docs").click()
    page.wait_for_url("**/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("API Request Status")
    expect(page.locator(".opblock-summary-path", has_text="/api/survey-requests/").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/api-requests/").first).to_be_visible()
    assert sent_out == []


def test_a_support_user_reads_who_to_ask_and_that_the_filter_narrows_only_the_list(live_server, page, log):
    sign_in(page, live_server, "/status/?tab=invalid&channel=email")
    caption = page.locator(".chart figcaption")
    expect(caption).to_contain_text("the filter narrows the list below only")
    first_row = page.locator("table.rows tbody tr").first
    expect(first_row).to_contain_text("Employee not found")
    expect(first_row).to_contain_text("Ask your CSM to set the teammate up in Stella.")
    expect(first_row).not_to_contain_text("under Teammates")  # the fix is the CSM's
    box = caption.bounding_box()
    assert box and box["x"] + box["width"] <= 1366  # the note wraps inside the chart's card
    page.screenshot(path="/tmp/r19-status-invalid-email.png")
