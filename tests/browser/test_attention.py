"""Needs attention tells the truth on every screen that shows it (surveys/reporting/attention.py): with an
unresolved Employee not found, a teammate Stella won't recognise and an employee sync Stella answers 503, the front
page, the account page and its checklist list each with its fix, and none says "Nothing to fix"."""

import re

import pytest
import responses
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import InboundWebhook
from surveys.loop.employees import stella_employees_sync
from surveys.models import Account, ApiRequest, IntegrationSettings, Teammate
from tests.browser.conftest import BROWSER, log_in
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = BROWSER

COMPANY = "Northwind Traders Support Team"


@pytest.fixture
def troubled(db, settings):
    settings.STELLA_API_URL = "https://stella.test"
    account = AccountFactory(name=COMPANY, intercom_workspace_id="nw7x2k9q")
    IntegrationSettings.objects.filter(account=account).update(stella_api_secret="stella-secret-0000-1111")
    InboundWebhook.objects.create(
        workspace_id="nw7x2k9q", topic="conversation.admin.closed", notification_id="n1", body={}
    )
    Teammate.objects.create(
        account=account, intercom_id="5123456", name="Nia Newhire", email="nia@northwind.example",
        stella_match=Teammate.StellaMatch.UNMATCHED,
    )  # fmt: skip
    survey_request = SurveyRequestFactory(account=account, status="invalid", teammate_name="Nia Newhire")
    ApiRequest.objects.create(
        survey_request=survey_request, account=account, mode="test", url="https://stella.test/v1/requests",
        status_code=400, outcome="invalid", error_message="Employee not found",
    )  # fmt: skip
    with responses.RequestsMock() as stella:
        stella.get(re.compile(r"https://stella\.test/v2/employees.*"), status=503)
        fresh = Account.objects.get(pk=account.pk)
        assert stella_employees_sync(fresh, now=timezone.now()).error == "Stella answered 503"
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    return account


EXPECTED = [
    "Employee not found: 1 invalid request",
    "Teammates Stella won't recognise: Nia Newhire",
    "Stella's employee sync is failing: Stella answered 503",
    "Stella is unavailable: the sync tries again by itself",
]


def test_every_screen_lists_what_the_attention_model_lists_with_its_fix(live_server, page, troubled):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    screens = {
        "front page": page.locator("#attention"),
        "account page": page.locator(".field-attention"),
        "checklist": page.locator("#checklist-attention"),
    }
    urls = {
        "front page": "/admin/",
        "account page": f"/admin/surveys/account/{troubled.pk}/change/",
        "checklist": f"/admin/surveys/account/{troubled.pk}/checklist/",
    }
    for screen, box in screens.items():
        page.goto(live_server.url + urls[screen])
        expect(box).to_be_visible()
        for text in EXPECTED:
            expect(box, f"{screen}: {text}").to_contain_text(text)
        assert "Nothing to fix" not in page.locator("#content").inner_text(), screen
        assert "Nothing:" not in page.locator("#content").inner_text(), screen
    # The checklist's teammates step is not done while a teammate is unknown to Stella.
    expect(page.locator("#step-teammates")).not_to_have_class("step-done")

    # The sync's fix leads to where it is run again.
    page.goto(live_server.url + "/admin/")
    page.locator("#attention").get_by_role("link", name=re.compile("Stella is unavailable")).click()
    page.wait_for_url(f"**/admin/surveys/account/{troubled.pk}/stella-sync/employees/")
