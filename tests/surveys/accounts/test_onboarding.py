"""The onboarding checklist: what it says in each state, Check now against the sandbox's Intercom over HTTP,
and a test request through the real send path to the sandbox's Stella."""

import re
from datetime import timedelta

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from integrations.intercom.client import IntercomClient, IntercomTokenMissing
from sandbox.models import StellaSandboxEmployee, StellaSandboxRequest
from surveys.accounts.account import intercom_token_accept
from surveys.accounts.checklist import SANDBOX_KEY_PREFIXES, WEBHOOK_TOPICS
from surveys.accounts.onboarding import account_intercom_check
from surveys.accounts.test_request import TestRequestRefused, account_go_live_week, account_test_request_send
from surveys.delivery.sending import survey_request_send
from surveys.models import ApiRequest, IntegrationHealth, IntegrationSettings, SurveyRequest, Teammate
from surveys.reporting.attention import account_attention
from tests.factories import AccountFactory, SurveyRequestFactory, TeammateFactory
from tests.helpers import load_fixture, post_webhook

S = SurveyRequest.Status
O = ApiRequest.Outcome  # noqa: E741
TEST_KEY = "test-key-0000-1111-2222-abcd"
LIVE_KEY = "live-key-9999-8888-7777-wxyz"
TOKEN = "intercom-token-5555-6666-tokn"
NO_TOKEN = "No Intercom access token: connect with Intercom"


def checklist_url(account):
    return reverse("admin:surveys_account_checklist", args=[account.pk])


def text_of(response) -> str:
    """The page as a person reads it: tags dropped, whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def step(page: str, title: str) -> str:
    """One step of the checklist, from its title to the next step's state."""
    start = page.index(title)
    following = [page.find(marker, start + len(title)) for marker in ("✓ Done", "To do", "⚠ Check")]
    ends = [end for end in following if end != -1]
    return page[start : min(ends)] if ends else page[start:]


def state_of(page: str, title: str) -> str:
    before = page[: page.index(title)]
    return max(("✓ Done", "To do", "⚠ Check"), key=before.rfind)


@pytest.fixture
def sandbox(live_server, settings):
    """The portal's sandbox, over real HTTP, plays Intercom and Stella."""
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    return live_server


# ---- What the checklist says ----


@pytest.mark.django_db
def test_a_new_account_reads_what_to_do_next_on_every_step(admin_client):
    account = AccountFactory(
        intercom_workspace_id="wsnew",
        integration__intercom_access_token="",
        integration__test_api_key="",
        integration__production_api_key="",
    )
    page = text_of(admin_client.get(checklist_url(account)))
    assert "0 of 8 steps done" in page  # no teammate seen yet: nothing known to Stella either
    assert "No teammate seen yet" in step(page, "Teammates known to Stella")
    assert "Enter Stella's API secret" in step(page, "Stella API secret")
    intercom = step(page, "Intercom connected")
    assert state_of(page, "Intercom connected") == "To do"
    assert NO_TOKEN in intercom and "rejected" not in intercom.lower()
    html = admin_client.get(checklist_url(account)).content.decode()
    assert 'value="Connect with Intercom"' in html and 'value="Check now"' not in html  # nothing to check yet
    webhook = step(page, "Webhook URL and topics in Intercom")
    assert "No webhook received yet from wsnew" in webhook
    assert "http://testserver/webhooks/intercom/" in webhook
    assert all(topic in webhook for topic in WEBHOOK_TOPICS)
    assert {"conversation.admin.closed", "conversation.admin.opened", "contact.deleted"} <= set(WEBHOOK_TOPICS)
    assert "Enter the test and production API keys" in step(page, "Stella API keys")
    assert "Enter the test API key in the account's settings first" in step(page, "A test request reaches Stella")
    assert "Enter the production key before going live" in step(page, "Live")


@pytest.mark.django_db
def test_an_account_without_a_token_is_never_called_rejected(admin_client):
    account = AccountFactory(integration__intercom_access_token="")
    problems = account_attention(account, now=timezone.now())
    assert [(problem.code, problem.text) for problem in problems][:1] == [("intercom_token_missing", f"{NO_TOKEN}.")]
    assert f"⚠ {NO_TOKEN}." in admin_client.get(reverse("admin:surveys_account_changelist")).content.decode()
    # Check now asks nobody and flags nothing.
    check = account_intercom_check(account, now=timezone.now())
    assert (check.ok, check.message) == (False, f"{NO_TOKEN}.")
    assert IntegrationHealth.objects.get(account=account).intercom_token_rejected_at is None


@pytest.mark.django_db
@responses.activate  # any call to Intercom would fail the test: none is registered
def test_a_send_that_needs_intercom_without_a_token_is_invalid_in_its_own_words_and_flags_nothing(settings):
    settings.INTERCOM_API_URL = "https://api.intercom.test"
    account = AccountFactory(integration__intercom_access_token="")
    survey_request = SurveyRequestFactory(account=account, customer_email="", customer_id="contact-1")
    survey_request = survey_request_send(survey_request.pk, now=survey_request.send_after)
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, NO_TOKEN)
    assert survey_request.api_requests.get().error_message == NO_TOKEN
    assert IntegrationHealth.objects.get(account=account).intercom_token_rejected_at is None
    assert len(responses.calls) == 0
    with pytest.raises(IntercomTokenMissing, match=NO_TOKEN):
        IntercomClient("")


@pytest.mark.django_db
def test_nothing_secret_appears_in_full(admin_client):
    account = AccountFactory()
    response = admin_client.get(checklist_url(account))
    html = response.content.decode()
    for secret in (TEST_KEY, LIVE_KEY, TOKEN):
        assert secret not in html and secret[:-4] not in html
    page = text_of(response)
    assert "stored: ••••abcd" in step(page, "Stella API keys") and "stored: ••••wxyz" in page


@pytest.mark.django_db
def test_the_sandboxs_key_formats_show_where_keys_are_typed_only_while_the_sandbox_is_on(admin_client, settings):
    account = AccountFactory()
    change = reverse("admin:surveys_account_change", args=[account.pk])
    settings.SANDBOX = True
    assert "starting sandbox-test-" in admin_client.get(change).content.decode()
    assert "starting sandbox-live-" in admin_client.get(change).content.decode()
    assert "starting sandbox-test-" in text_of(admin_client.get(checklist_url(account)))
    settings.SANDBOX = False
    assert "sandbox-test-" not in admin_client.get(change).content.decode()
    assert "sandbox-test-" not in admin_client.get(checklist_url(account)).content.decode()


@pytest.mark.django_db
def test_the_sandbox_takes_the_key_formats_the_portal_shows(client):
    body = {"channel": "chat", "employee": {"email": "x@y.example"}, "customer": {"email": "c@example.com"}}
    for field, prefix in SANDBOX_KEY_PREFIXES.items():
        response = client.post(
            "/sandbox/stella/v1/requests",
            body,
            content_type="application/json",
            headers={"x-api-key": prefix + "key-1"},
        )
        assert response.status_code != 403, field
    refused = client.post(
        "/sandbox/stella/v1/requests", body, content_type="application/json", headers={"x-api-key": "key-1"}
    )
    assert refused.status_code == 403


@pytest.mark.django_db
def test_the_webhook_url_is_on_the_address_the_csm_reached_the_portal_at(admin_client, settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    page = text_of(admin_client.get(checklist_url(AccountFactory()), HTTP_HOST="portal.example.com", secure=True))
    assert "https://portal.example.com/webhooks/intercom/" in page


@pytest.mark.django_db
def test_the_last_webhook_and_the_last_closure_show(admin_client, client, account):
    post_webhook(client, load_fixture("conversation_admin_closed"))
    page = text_of(admin_client.get(checklist_url(account)))
    assert state_of(page, "Webhook URL and topics in Intercom") == "✓ Done"
    arrivals = step(page, "Webhooks and closures arrive")
    assert state_of(page, "Webhooks and closures arrive") == "✓ Done"
    closure = SurveyRequest.objects.get(account=account)
    assert "conversation.admin.closed" in arrivals and f"conversation {closure.conversation_id}" in arrivals


@pytest.mark.django_db
def test_teammates_without_a_stella_custom_id_are_listed_those_stella_refused_first(admin_client, account):
    Teammate.objects.create(
        account=account, intercom_id="1", name="Mapped Mia", email="mia@x.example", stella_custom_id="m"
    )
    Teammate.objects.create(account=account, intercom_id="2", name="Email Eve", email="eve@x.example")
    Teammate.objects.create(account=account, intercom_id="3", name="Unknown Una", email="una@x.example")
    SurveyRequestFactory(account=account, teammate_id="3", status=S.INVALID, status_detail="Employee not found")
    page = text_of(admin_client.get(checklist_url(account)))
    teammates = step(page, "Teammates known to Stella")
    assert state_of(page, "Teammates known to Stella") == "To do"
    assert "Stella answered Employee not found for 1 teammate:" in teammates
    assert teammates.index("Unknown Una") < teammates.index("Email Eve") and "Mapped Mia" not in teammates
    html = admin_client.get(checklist_url(account)).content.decode()
    assert f"{reverse('admin:surveys_teammate_changelist')}?account__id__exact={account.pk}" in html


@pytest.mark.django_db
def test_go_live_summary_follows_the_test_week(admin_client, account):
    survey_request = SurveyRequestFactory(account=account, status=S.SENT)
    ApiRequest.objects.create(
        survey_request=survey_request, account=account, mode="test", url="https://x.example/v1/requests", outcome="sent"
    )
    page = text_of(admin_client.get(checklist_url(account)))
    assert "Ready to go live: 1 test request succeeded in the last 7 days" in step(page, "Live")
    assert "Go live…" in page
    IntegrationSettings.objects.filter(account=account).update(mode="live")
    page = text_of(admin_client.get(checklist_url(account)))
    assert state_of(page, "Live") == "✓ Done" and "Go live…" not in page


@pytest.mark.django_db
def test_a_csm_who_may_only_view_accounts_may_not_act(client, account):
    viewer = User.objects.create_user("viewer", password="viewer-pw-12345", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    page = client.get(checklist_url(account))
    assert page.status_code == 200 and 'value="Check now"' not in page.content.decode()
    assert client.post(checklist_url(account), {"action": "check_intercom"}).status_code == 403


# ---- Check now, against the sandbox's Intercom over HTTP ----


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_check_now_records_the_workspace_the_token_is_for(sandbox, admin_client):
    account = AccountFactory(
        intercom_workspace_id="wscheck", integration__intercom_access_token="sandbox-intercom-token-wscheck"
    )
    page = text_of(admin_client.get(checklist_url(account)))
    assert "not checked yet: Check now" in step(page, "Intercom connected")
    response = admin_client.post(checklist_url(account), {"action": "check_intercom"}, follow=True)
    page = text_of(response)
    assert "Intercom accepted the access token: it is for workspace wscheck (Workspace wscheck)" in page
    assert state_of(page, "Intercom connected") == "✓ Done"
    health = IntegrationHealth.objects.get(account=account)
    assert (health.intercom_token_workspace_id, health.intercom_token_rejected_at) == ("wscheck", None)
    assert health.intercom_token_checked_at is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_check_now_warns_when_the_token_is_for_another_workspace(sandbox, admin_client):
    account = AccountFactory(
        intercom_workspace_id="wsmine", integration__intercom_access_token="sandbox-intercom-token-wsother"
    )
    page = text_of(admin_client.post(checklist_url(account), {"action": "check_intercom"}, follow=True))
    assert "it is for workspace wsother (Workspace wsother), not this account's workspace (wsmine)" in page
    assert state_of(page, "Intercom connected") == "⚠ Check"
    assert "The Intercom access token is for workspace wsother, not this account's (wsmine)" in " ".join(
        problem.text for problem in account_attention(account, now=timezone.now())
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_check_now_flags_a_token_intercom_refuses(sandbox, admin_client):
    account = AccountFactory(integration__intercom_access_token="expired-token-1234")
    page = text_of(admin_client.post(checklist_url(account), {"action": "check_intercom"}, follow=True))
    assert "Intercom rejected the access token: connect with Intercom again." in page
    assert IntegrationHealth.objects.get(account=account).intercom_token_rejected_at is not None
    # A new token clears the flag and what was checked of the old one.
    intercom_token_accept(IntegrationHealth.objects.get(account=account))
    health = IntegrationHealth.objects.get(account=account)
    assert (health.intercom_token_rejected_at, health.intercom_token_checked_at) == (None, None)


@pytest.mark.django_db
@responses.activate
def test_check_now_when_intercom_is_down_learns_nothing_about_the_token(settings, account):
    settings.INTERCOM_API_URL = "https://api.intercom.test"
    responses.get("https://api.intercom.test/me", status=503)
    check = account_intercom_check(account, now=timezone.now())
    assert not check.ok and "Could not check the token: Intercom answered 503" in check.message
    health = IntegrationHealth.objects.get(account=account)
    assert (health.intercom_token_rejected_at, health.intercom_token_checked_at) == (None, None)


# ---- A test request, through the real send path to the sandbox's Stella ----


@pytest.fixture
def testing_account(sandbox):
    StellaSandboxEmployee.objects.create(email="tess@support.example")
    return AccountFactory(
        intercom_workspace_id="wstest",
        integration__test_api_key="sandbox-test-key-0001",
        integration__production_api_key="sandbox-live-key-0002",
        integration__intercom_access_token="sandbox-intercom-token-wstest",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_test_request_goes_to_stella_with_the_test_key_and_shows_under_test_requests(testing_account, admin_client):
    account = testing_account
    response = admin_client.post(
        checklist_url(account), {"action": "send_test_request", "employee_email": "tess@support.example"}
    )
    assert response.status_code == 302 and response["Location"] == checklist_url(account)
    [call] = ApiRequest.objects.test_calls().filter(account=account)
    assert (call.mode, call.outcome, call.status_code) == ("test", O.SENT, 200)
    assert call.url == f"{account.integration.stella_base_url}/v1/requests"
    survey_request = call.survey_request
    assert survey_request.status == S.SENT and survey_request.conversation_id.startswith("portal-test-")
    assert survey_request.customer_name == "Portal test customer"
    assert survey_request.customer_email.endswith("@example.com")
    [received] = StellaSandboxRequest.objects.all()
    assert (received.mode, received.api_key, received.status_code) == ("test", "••••0001", 200)
    assert received.body["employee"] == {"email": "tess@support.example"}
    # The message links to the request and to Test Requests; the checklist says it worked.
    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk]) in html
    assert f"{reverse('admin:surveys_testapirequest_changelist')}?account__id__exact={account.pk}" in html
    assert "went to Stella with the test key: Sent" in text_of(page)
    assert state_of(text_of(page), "A test request reaches Stella") == "✓ Done"
    # The Test Requests tab of the admin and of the status page.
    tab = admin_client.get(reverse("admin:surveys_testapirequest_changelist")).content.decode()
    assert survey_request.conversation_id in tab
    assert survey_request.conversation_id in admin_client.get("/status/", {"tab": "test"}).content.decode()
    for secret in ("sandbox-test-key-0001", "sandbox-live-key-0002", "sandbox-intercom-token-wstest"):
        assert secret not in html and secret not in tab


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_test_request_stella_refuses_still_shows_under_test_requests_with_stellas_words(
    testing_account, admin_client
):
    account = testing_account
    response = admin_client.post(
        checklist_url(account), {"action": "send_test_request", "employee_email": "nobody@support.example"}, follow=True
    )
    [call] = ApiRequest.objects.test_calls().filter(account=account)
    assert (call.mode, call.outcome, call.error_message) == ("test", O.INVALID, "Employee not found")
    page = text_of(response)
    assert "went to Stella with the test key: Invalid: Employee not found" in page
    assert state_of(page, "A test request reaches Stella") == "⚠ Check"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_test_request_credits_a_known_teammate_by_their_stella_custom_id(testing_account, admin_client):
    account = testing_account
    StellaSandboxEmployee.objects.create(custom_id="omar-42")
    Teammate.objects.create(
        account=account, intercom_id="77", name="Omar", email="omar@x.example", stella_custom_id="omar-42"
    )
    page = admin_client.get(checklist_url(account)).content.decode()
    assert 'value="omar@x.example"' in page  # offered by default
    survey_request = account_test_request_send(account, by="csm", employee_email="omar@x.example", now=timezone.now())
    assert survey_request.status == S.SENT
    assert StellaSandboxRequest.objects.get().body["employee"] == {"custom_id": "omar-42"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"mode": "live"}, "is live"),
        ({"test_api_key": ""}, "Enter the test API key"),
        ({"enabled": False}, "is disabled"),
    ],
)
def test_a_test_request_is_refused_when_it_could_not_be_a_test(account, change, refusal):
    IntegrationSettings.objects.filter(account=account).update(**change)
    account.refresh_from_db()
    with pytest.raises(TestRequestRefused, match=refusal):
        account_test_request_send(account, by="csm", employee_email="tess@support.example", now=timezone.now())
    assert not SurveyRequest.objects.exists()


@pytest.mark.django_db
def test_a_test_request_is_refused_while_sending_is_paused(admin_client, account):
    IntegrationHealth.objects.filter(account=account).update(
        sending_paused_at=timezone.now(), sending_paused_reason="Stella rejected the test API key"
    )
    response = admin_client.post(
        checklist_url(account), {"action": "send_test_request", "employee_email": "tess@support.example"}, follow=True
    )
    assert "Sending is paused (Stella rejected the test API key)" in text_of(response)
    assert not SurveyRequest.objects.exists()


@pytest.mark.django_db
def test_a_test_request_the_accounts_own_rules_refuse_is_not_sent(account):
    IntegrationSettings.objects.filter(account=account).update(email_enabled=False, chat_enabled=False)
    account.refresh_from_db()
    survey_request = account_test_request_send(
        account, by="csm", employee_email="tess@support.example", now=timezone.now()
    )
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, "Channel not enabled for company")
    assert not ApiRequest.objects.test_calls().exists()  # Stella was not called


@pytest.mark.django_db
def test_test_requests_are_never_held_back_by_the_suppression_window(settings, account):
    IntegrationSettings.objects.filter(account=account).update(suppression_window=timedelta(days=7))
    account.refresh_from_db()
    now = timezone.now()
    with responses.RequestsMock() as stella:
        stella.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
        first = account_test_request_send(account, by="csm", employee_email="tess@support.example", now=now)
        second = account_test_request_send(account, by="csm", employee_email="tess@support.example", now=now)
    assert (first.status, second.status) == (S.SENT, S.SENT)
    assert first.customer_email != second.customer_email


@pytest.mark.django_db
def test_a_test_request_stella_accepts_settles_the_failed_ones_before_it_for_go_live():
    account = AccountFactory()
    now = timezone.now()

    def test_call(outcome: str, minutes_ago: int, conversation: str = "portal-test-1") -> None:
        survey_request = SurveyRequestFactory(
            account=account, conversation_id=f"{conversation}-{minutes_ago}", status="invalid" if outcome == "invalid" else "sent"
        )  # fmt: skip
        call = ApiRequest.objects.create(
            survey_request=survey_request, account=account, mode="test", url="https://stella.test/v1/requests",
            outcome=outcome, error_message="Employee not found" if outcome == "invalid" else "",
        )  # fmt: skip
        ApiRequest.objects.filter(pk=call.pk).update(created_at=now - timedelta(minutes=minutes_ago))

    test_call("invalid", 30)  # admin@localhost, say: Stella has no such employee
    assert account_go_live_week(account) == {"succeeded": 0, "invalid": 1, "other": 0}
    test_call("sent", 20)
    assert account_go_live_week(account) == {"succeeded": 1, "invalid": 0, "other": 0}
    test_call("invalid", 10)  # after the success: still counts
    test_call("invalid", 25, conversation="215000000042")  # a real closure refused: not a test request's to settle
    assert account_go_live_week(account) == {"succeeded": 1, "invalid": 2, "other": 0}


@pytest.mark.django_db
def test_teammates_known_to_stella_is_done_only_when_every_teammate_seen_is_matched(admin_client):
    account = AccountFactory()
    assert "No teammate seen yet" in step(
        text_of(admin_client.get(checklist_url(account))), "Teammates known to Stella"
    )
    tess = TeammateFactory(account=account, name="Tess", stella_match=Teammate.StellaMatch.EMAIL)
    omar = TeammateFactory(account=account, name="Omar", stella_match=Teammate.StellaMatch.NOT_CHECKED)
    page = text_of(admin_client.get(checklist_url(account)))
    assert state_of(page, "Teammates known to Stella") == "To do"
    assert "1 teammate of 2 not checked against Stella's employees yet" in step(page, "Teammates known to Stella")
    Teammate.objects.filter(pk=omar.pk).update(stella_match=Teammate.StellaMatch.UNMATCHED)
    assert state_of(text_of(admin_client.get(checklist_url(account))), "Teammates known to Stella") == "To do"
    Teammate.objects.filter(pk=omar.pk).update(stella_match=Teammate.StellaMatch.CUSTOM_ID)
    page = text_of(admin_client.get(checklist_url(account)))
    assert state_of(page, "Teammates known to Stella") == "✓ Done"
    assert "Stella knows all 2 teammates seen so far" in page
    assert tess.pk
