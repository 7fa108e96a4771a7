"""The advice on an invalid request works when a CSM follows it, in the sandbox: Stella answered "Employee not found"
for Nia, and the portal's copy of Stella's employees (synced before) doesn't have her either. Adding her in Stella
and resending, or giving her the Stella custom id she has there and resending, sends her survey in one resend: the
resend reads Stella's employees again first, rather than deciding from the stale copy."""

import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from integrations import messages
from sandbox.models import StellaSandboxEmployee
from surveys.delivery.sending import survey_request_send
from surveys.loop.employees import stella_employees_sync
from surveys.models import Account, ApiRequest, IntegrationSettings, SurveyRequest, Teammate
from tests.browser.conftest import BROWSER, log_in
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = BROWSER

COMPANY = "Northwind Traders Support Team"
NIA = "nia.newhire@northwind-traders.example"


@pytest.fixture
def refused(live_server, settings):
    """Nia's survey, refused by the sandbox's Stella as Employee not found, after an employee sync without her."""
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    account = AccountFactory(name=COMPANY, intercom_workspace_id="nw7x2k9q")
    IntegrationSettings.objects.filter(account=account).update(
        test_api_key="sandbox-test-key-northwind", stella_api_secret=settings.SANDBOX_STELLA_API_SECRET
    )
    StellaSandboxEmployee.objects.create(email="tess@northwind-traders.example", first_name="Tess")
    Teammate.objects.create(account=account, intercom_id="5123456", name="Nia Newhire", email=NIA)
    account = Account.objects.get(pk=account.pk)
    assert not stella_employees_sync(account, now=timezone.now()).error
    assert Teammate.objects.get(email=NIA).stella_match == Teammate.StellaMatch.UNMATCHED
    survey_request = SurveyRequestFactory(
        account=account, teammate_id="5123456", teammate_name="Nia Newhire", teammate_email=NIA,
        customer_email="bartholomew@customer.example", queued_at=timezone.now(),
    )  # fmt: skip
    # As Stella refused it before the sync knew of Nia: Stella's own answer.
    Teammate.objects.filter(email=NIA).update(stella_match=Teammate.StellaMatch.NOT_CHECKED)
    survey_request = survey_request_send(survey_request.pk, now=timezone.now())
    assert survey_request.status == SurveyRequest.Status.INVALID
    assert survey_request.detail_code == messages.STELLA_EMPLOYEE_NOT_FOUND.code
    Teammate.objects.filter(email=NIA).update(stella_match=Teammate.StellaMatch.UNMATCHED)  # the stale copy
    User.objects.create_superuser("csm", "csm@stella.example", "csm-pw-12345")
    return survey_request


def resend_from_invalid_requests(page, live_server, account_id: int) -> None:
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/?account__id__exact={account_id}&resolved=no")
    page.locator("#result_list tbody tr").filter(has_text="Nia Newhire").locator("input.action-select").check()
    page.select_option("select[name=action]", "resend")
    page.get_by_role("button", name="Go").click()


def test_adding_the_teammate_in_stella_then_resending_sends_the_survey(live_server, page, refused):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/?account__id__exact={refused.account_id}")
    to_fix = page.locator(".reason-groups tbody tr").filter(has_text="Employee not found")
    expect(to_fix).to_contain_text("Add the teammate in Stella")
    expect(to_fix).to_contain_text("Nia Newhire")

    # "Add the teammate in Stella": here the sandbox's Stella, through its admin page.
    page.goto(f"{live_server.url}/admin/sandbox/stellasandboxemployee/add/")
    page.fill("#id_email", NIA)
    page.fill("#id_first_name", "Nia")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    # "…then resend": once.
    resend_from_invalid_requests(page, live_server, refused.account_id)
    expect(page.locator(".messagelist .success")).to_contain_text("Resending 1 survey request:")
    refused = survey_request_send(refused.pk, now=timezone.now())  # as the task cluster does, queued on commit
    assert refused.status == SurveyRequest.Status.SENT
    calls = list(ApiRequest.objects.filter(survey_request=refused).order_by("created_at"))
    assert [call.outcome for call in calls] == ["invalid", "sent"]  # no second Employee not found
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/?account__id__exact={refused.account_id}")
    expect(page.locator("#result_list")).to_contain_text("✓ resolved by a resend")
    badge = page.locator("#result_list .resolved").first.bounding_box()
    assert badge and badge["x"] + badge["width"] <= 1366  # the longer badge stays on the screen
    page.screenshot(path="/tmp/advice-resolved.png")
    expect(page.locator(".reason-groups")).not_to_contain_text("Nia Newhire")


def test_giving_the_teammate_their_stella_custom_id_then_resending_sends_the_survey(live_server, page, refused):
    StellaSandboxEmployee.objects.create(custom_id="nw-0042", first_name="Nia", email="nia@personal.example")
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.goto(f"{live_server.url}/admin/surveys/invalidapirequest/?account__id__exact={refused.account_id}")
    # "…or give them their Stella custom id under Teammates": the fix's link leads there, to Nia.
    page.locator(".reason-groups").get_by_role("link", name="Nia Newhire").click()
    page.wait_for_url(re.compile(r".*/admin/surveys/teammate/\?.*"))
    row = page.locator("#result_list tbody tr").filter(has_text="Nia Newhire")
    row.locator("input[name$=stella_custom_id]").fill("nw-0042")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    resend_from_invalid_requests(page, live_server, refused.account_id)
    expect(page.locator(".messagelist .success")).to_contain_text("Resending 1 survey request:")
    refused = survey_request_send(refused.pk, now=timezone.now())  # as the task cluster does, queued on commit
    assert refused.status == SurveyRequest.Status.SENT


def test_resending_before_the_fix_leaves_the_request_alone_and_says_what_to_do(live_server, page, refused):
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    resend_from_invalid_requests(page, live_server, refused.account_id)
    warning = page.locator(".messagelist .warning").filter(has_text="Not resent")
    expect(warning).to_contain_text("Stella still has no employee for Nia Newhire")
    expect(warning).to_contain_text("Add the teammate in Stella")
    refused.refresh_from_db()
    assert refused.status == SurveyRequest.Status.INVALID
    assert ApiRequest.objects.filter(survey_request=refused).count() == 1  # no new refusal in the log
