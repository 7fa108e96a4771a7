"""A CSM asks "what would a suppression window and a channel delay do to this team?" before turning them on:
the account's dry run, on a laptop screen, shows what happened and what would have, and changes nothing."""

import random
import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from surveys.decisions.rules import Decision, DoNotSendReason, SuppressionReason
from surveys.models import ConversationEvent, SurveyOutcome, SurveyRequest
from tests.browser.conftest import BROWSER, log_in, screenshot
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = BROWSER
S = SurveyRequest.Status


def team_that_closes_after_every_reply():
    """A fortnight of a team with no delay and no window: regulars closed on every reply, conversations
    reopened within minutes and closed again (the second close "already surveyed"), a bot, a fraud tag."""
    account = AccountFactory(name="Northwind Support", intercom_workspace_id="wsnorth")
    rng = random.Random(11)
    now = timezone.now()
    customers = ["ada", "bea", "cai", "dee", "eli", "fay", "gus", "hal"]
    for n in range(40):
        closed_at = now - timedelta(days=rng.uniform(0.1, 14))
        customer = rng.choice(customers[:3] if rng.random() < 0.5 else customers)
        fields = {"status": S.SENT, "decision": Decision.SEND, "reason": ""}
        if n % 10 == 3:
            fields = {"status": S.SENT, "decision": Decision.DO_NOT_SEND, "reason": DoNotSendReason.BOT_ASSIGNEE}
            fields |= {"assignee_kind": "bot", "teammate_name": "Fin"}
        elif n % 17 == 5:
            fields = {"status": S.SENT, "decision": Decision.DO_NOT_SEND, "reason": DoNotSendReason.SUPPRESSED_TAG}
            fields |= {"tags": ["fraud"]}
        first = SurveyRequestFactory(
            account=account, conversation_id=str(318000000 + n), closed_at=closed_at, channel=rng.choice(["chat", "email"]),
            customer_email=f"{customer}@customer.example", customer_name=customer.title(), **fields,
        )  # fmt: skip
        if n % 4 == 0 and fields["decision"] == Decision.SEND:  # reopened a few minutes later, closed again
            reopened_at = closed_at + timedelta(minutes=rng.uniform(2, 8))
            ConversationEvent.objects.create(
                account=account, conversation_id=first.conversation_id, kind="reopened", occurred_at=reopened_at
            )
            SurveyRequestFactory(
                account=account, conversation_id=first.conversation_id, closed_at=reopened_at + timedelta(minutes=20),
                channel=first.channel, customer_email=first.customer_email, customer_name=first.customer_name,
                status=S.SUPPRESSED, decision=Decision.SUPPRESSED, reason=SuppressionReason.ALREADY_SURVEYED,
            )  # fmt: skip
    return account


def test_a_csm_sees_what_a_window_and_a_delay_would_do_before_turning_them_on(live_server, page, log):
    account = team_that_closes_after_every_reply()
    before = list(SurveyRequest.objects.order_by("pk").values_list("pk", "status", "decision", "updated_at"))
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/surveys/account/{account.pk}/change/")
    page.get_by_role("link", name="Dry run…").click()

    # The form starts from the account's settings.
    expect(page.locator("#id_suppression_window")).to_have_value("0")
    expect(page.locator("#id_channel_delay")).to_have_value("0")
    expect(page.locator("#id_days")).to_have_value("30")
    expect(page.locator("#id_chat_enabled")).to_be_checked()
    page.fill("#id_suppression_window", "7d")
    page.fill("#id_channel_delay", "10m")
    page.get_by_role("button", name="Dry run").click()

    counts = page.locator("table.dry-run-counts")
    window = counts.locator("tr", has_text="Customer surveyed within the suppression window")
    expect(window.locator("td").nth(2)).to_have_text("0")
    expect(window.locator("td").nth(4)).to_have_text(re.compile(r"^\+\d+$"))
    reopened = counts.locator("tr", has_text="Reopened during the channel delay")
    expect(reopened.locator("td").nth(4)).to_have_text(re.compile(r"^\+\d+$"))
    send = counts.locator("tbody tr").first
    expect(send.locator("td").first).to_have_text(SurveyOutcome.SENT.label)  # as on every other screen
    expect(send.locator("td").nth(4)).to_have_text(re.compile("^\u2212\\d+$"))
    expect(page.locator(".dry-run-summary")).to_contain_text("would come out differently")
    expect(page.locator(".dry-run .notes")).not_to_contain_text("Replayed with the current settings")
    expect(page.locator(".field", has=page.locator("#id_suppression_window"))).to_contain_text("current: 0")

    changed = page.locator("table.dry-run-changed tbody tr")
    expect(changed.first.get_by_role("link")).to_have_attribute(
        "href", re.compile(r"/admin/surveys/surveyrequest/\d+/change/$")
    )
    widths = page.evaluate(
        """() => {
            const content = document.querySelector('#content');
            return {content: content.scrollWidth, area: content.clientWidth,
                    page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,
                    tables: [...document.querySelectorAll('#content table')].map(t => t.getBoundingClientRect().right)};
        }"""
    )
    assert widths["content"] <= widths["area"] + 1, widths  # the content area doesn't scroll sideways
    assert widths["page"] <= widths["viewport"] + 1, widths
    assert max(widths["tables"]) <= 1366, widths
    screenshot(page, "admin-dry-run.png")

    after = list(SurveyRequest.objects.order_by("pk").values_list("pk", "status", "decision", "updated_at"))
    assert after == before
    account.integration.refresh_from_db()
    assert account.integration.suppression_window == timedelta(0)  # the account's settings are untouched
