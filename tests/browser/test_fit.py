"""Every list and status tab at 1366x768 with long, realistic names (a 30-character company and teammate): no table
wider than its container, nothing scrolling sideways, and each list's key columns whole in the visible area,
their header and every cell, names not cut ("Northwind Trad…" would leave a CSM guessing which account)."""

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import InboundWebhook
from surveys.decisions.rules import Decision, DoNotSendReason, InvalidReason, SuppressionReason
from surveys.models import (
    ApiRequest,
    ConversationEvent,
    IntercomNote,
    QuarantinedFeedback,
    StellaEmployee,
    SurveyRequest,
    Teammate,
)
from surveys.reporting.counts import daily_counts_rebuild
from tests.browser.conftest import BROWSER, log_in
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory

pytestmark = BROWSER
S = SurveyRequest.Status

COMPANY = "Northwind Traders Support Team"  # 30 characters
TEAMMATE = "Alexandra Montgomery-Whitfield"  # 30 characters
TEAMMATE_EMAIL = "alexandra.montgomery-whitfield@northwind-traders.example"
CUSTOMER = "Bartholomew Featherstonehaugh"
assert len(COMPANY) == len(TEAMMATE) == 30


@pytest.fixture
def long_names(db):
    now = timezone.now()
    account = AccountFactory(name=COMPANY, intercom_workspace_id="nw7x2k9q")
    outcomes = [
        (S.SENT, Decision.SEND, "", ""),
        (S.SENT, Decision.DO_NOT_SEND, DoNotSendReason.BOT_ASSIGNEE, ""),
        (S.SUPPRESSED, Decision.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW, ""),
        (S.CANCELLED, Decision.SEND, "", "Reopened during the channel delay"),
        (S.INVALID, Decision.INVALID, InvalidReason.EMPLOYEE_NOT_FOUND, "Employee not found"),
        (S.FAILED, Decision.SEND, "", "Stella answered 503 five times"),
        (S.SCHEDULED, Decision.SEND, "", ""),
    ]
    for n, (status, decision, reason, detail) in enumerate(outcomes * 3):
        survey_request = SurveyRequestFactory(
            account=account, status=status, decision=decision, reason=reason, status_detail=detail,
            conversation_id=str(215000000100 + n), closed_at=now - timedelta(hours=n + 1), channel="email" if n % 2 else "chat",
            customer_name=CUSTOMER, customer_email="bartholomew.featherstonehaugh@customer.example",
            teammate_name=TEAMMATE, teammate_email=TEAMMATE_EMAIL, mode="live" if n % 3 else "test",
        )  # fmt: skip
        if status in (S.SENT, S.INVALID, S.FAILED):
            message = {S.INVALID: "Employee not found", S.FAILED: "Service Unavailable"}.get(status, "")
            outcome = {S.INVALID: "invalid", S.FAILED: "failed"}.get(status, "sent")
            ApiRequest.objects.create(
                survey_request=survey_request, account=account, mode=survey_request.mode,
                url="https://northwind.api.stellaconnect.net/v1/requests", status_code={"invalid": 400, "failed": 503}.get(outcome, 200),
                outcome=outcome, error_message=message, duration_ms=120,
            )  # fmt: skip
        if status == S.SENT and decision == Decision.SEND:
            FeedbackFactory(
                account=account, survey_request=survey_request, employee_name=TEAMMATE, employee_email=TEAMMATE_EMAIL,
                star_rating=4, response_received_at=now, request_created_at=survey_request.closed_at,
                comment="Alexandra was wonderfully patient while we untangled the invoice mix-up across three accounts.",
            )  # fmt: skip
            IntercomNote.objects.create(
                account=account, survey_request=survey_request, event="decided", body="Survey sent to the customer.",
                status="failed", post_after=now, error="Intercom answered 429 too many times",
            )  # fmt: skip
        ConversationEvent.objects.create(
            account=account, conversation_id=survey_request.conversation_id, kind="reopened", occurred_at=now, tags=["vip-escalation"]
        )  # fmt: skip
    Teammate.objects.create(
        account=account, intercom_id="5123456", name=TEAMMATE, email=TEAMMATE_EMAIL,
        stella_match=Teammate.StellaMatch.UNMATCHED,
    )  # fmt: skip
    StellaEmployee.objects.create(
        account=account, stella_id="emp_8f2c1d", email=TEAMMATE_EMAIL, custom_id="northwind-amw-0042", name=TEAMMATE,
        synced_at=now,
    )  # fmt: skip
    QuarantinedFeedback.objects.create(
        account=account, sequence_id=99, uuid="00000000-0000-4000-8000-000000000099", ext_interaction_id="215000000999",
        reason="A NUL character in its uuid: stored, it would name another record", raw="{}", quarantined_at=now,
    )  # fmt: skip
    for topic in ("conversation.admin.closed", "conversation.admin.replied", "conversation_part.tag.created"):
        InboundWebhook.objects.create(workspace_id="nw7x2k9q", topic=topic, notification_id=f"notif_{topic}", body={})
    daily_counts_rebuild()
    support = User.objects.create_user("northwind-support", password="northwind-pw-1")
    account.support_users.add(support)
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    return account


# Each list and the columns a CSM needs whole on screen (the admin's column-<name> classes); names never cut.
REQUEST_COLUMNS = ["account_name", "teammate", "mode"]
LISTS = [
    ("surveys/apirequest/", ["call_outcome", "error", *REQUEST_COLUMNS]),
    ("surveys/testapirequest/", ["call_outcome", *REQUEST_COLUMNS]),
    ("surveys/invalidapirequest/", ["error", *REQUEST_COLUMNS]),
    ("surveys/surveyrequest/", ["outcome", "why", "account_name", "teammate", "mode_shown"]),
    *(
        (f"surveys/surveyrequest/?outcome={outcome}", ["outcome", "why", "account_name", "teammate", "mode_shown"])
        for outcome in ("sent", "do_not_send", "suppressed", "cancelled", "failed", "waiting")
    ),
    ("surveys/account/", ["name", "problems", "workspace"]),
    ("surveys/teammate/", ["name", "account", "stella_match"]),
    ("surveys/feedback/", ["account", "employee", "star_rating", "short_comment"]),
    ("surveys/stellaemployee/", ["name", "email", "account"]),
    ("surveys/quarantinedfeedback/", ["account", "short_reason"]),
    ("surveys/intercomnote/", ["account", "status", "short_error"]),
    ("surveys/conversationevent/", ["account", "kind"]),
    ("integrations/inboundwebhook/", ["status", "problem", "workspace_id"]),
]
# Names a cell must show whole (not cut with an ellipsis).
NAME_COLUMNS = {
    "account_name",
    "account",
    "teammate",
    "name",
    "employee",
    "workspace",
    "mode",
    "mode_shown",
    "stella_match",
}

FIT = """(columns) => {
    const table = document.querySelector('#result_list');
    const area = document.querySelector('#changelist .results') || table.parentElement;
    const viewport = document.documentElement.clientWidth;
    const out = {table: table.getBoundingClientRect().width, area: area.clientWidth, viewport,
                 page: document.documentElement.scrollWidth, outside: [], cut: []};
    for (const [column, whole] of columns) {
        const cells = [...document.querySelectorAll(`#result_list .column-${column}, #result_list .field-${column}`)];
        if (!cells.length) out.outside.push(`${column}: no such column`);
        for (const cell of cells) {
            const box = cell.getBoundingClientRect();
            if (box.left < 0 || box.right > viewport + 1) out.outside.push(`${column}: ${box.left}-${box.right}`);
            if (!whole) continue;
            for (const el of [cell, ...cell.querySelectorAll('*')]) {
                if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow !== 'visible')
                    out.cut.push(`${column}: ${cell.textContent.trim()}`);
            }
        }
    }
    return out;
}"""


@pytest.fixture
def csm_page(live_server, page, long_names):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    return page


@pytest.mark.parametrize(("path", "columns"), LISTS, ids=[path for path, _ in LISTS])
def test_every_admin_list_fits_1366_with_its_key_columns_whole(live_server, csm_page, path, columns):
    csm_page.goto(f"{live_server.url}/admin/{path}")
    expect(csm_page.locator("#result_list")).to_be_visible()
    if os.environ.get("LIST_SHOTS"):
        csm_page.screenshot(path=f"/tmp/fit-{path.replace('/', '-').replace('?', '-')}.png")
    fit = csm_page.evaluate(FIT, [[column, column in NAME_COLUMNS] for column in columns])
    assert fit["table"] <= fit["area"] + 1, fit
    assert fit["page"] <= fit["viewport"] + 1, fit  # nothing scrolls sideways
    assert not fit["outside"], fit
    assert not fit["cut"], fit


STATUS_FIT = """() => {
    const table = document.querySelector('table.rows');
    const parent = table.parentElement;
    const card = parent.getBoundingClientRect().right - parseFloat(getComputedStyle(parent).paddingRight);
    const viewport = document.documentElement.clientWidth;
    const tabs = [...document.querySelectorAll('nav.tabs [role=tab]')].map(t => t.getBoundingClientRect().top);
    const outside = [...table.querySelectorAll('th, td')].filter(cell => {
        const box = cell.getBoundingClientRect(); return box.left < 0 || box.right > viewport + 1;
    }).map(cell => cell.textContent.trim().slice(0, 40));
    return {table: table.getBoundingClientRect().right, card,
            page: document.documentElement.scrollWidth, viewport, tab_rows: new Set(tabs).size, tabs, outside};
}"""


@pytest.mark.parametrize("tab", ["requests", "test", "invalid", "sent", "do_not_send", "suppressed", "cancelled", "failed", "waiting"])  # fmt: skip
def test_every_status_tab_fits_1366_in_its_card_with_the_tabs_on_one_row(live_server, page, long_names, tab):
    log_in(page, f"{live_server.url}/status/?tab={tab}", "northwind-support", "northwind-pw-1")
    page.wait_for_url(f"**/status/?tab={tab}")
    expect(page.locator("table.rows tbody tr").first).to_contain_text(TEAMMATE)
    if os.environ.get("LIST_SHOTS"):
        page.screenshot(path=f"/tmp/fit-status-{tab}.png")
    fit = page.evaluate(STATUS_FIT)
    assert fit["table"] <= fit["card"] + 1, fit
    assert fit["page"] <= fit["viewport"] + 1, fit
    assert fit["tab_rows"] == 1, fit
    assert not fit["outside"], fit
