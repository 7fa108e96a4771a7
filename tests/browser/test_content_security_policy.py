"""Every page type the portal serves, in a real browser with its Content-Security-Policy on: each answer carries the
header, and nothing on any page breaks it (no script, style, image, font, frame or form target the policy refuses).

A violation shows twice in Chromium: as a `securitypolicyviolation` event in the page, and as a console message
"Refused to …". Both are recorded, from before the page's first script runs until the next page is opened.
"""

import uuid

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage
from playwright.sync_api import expect

from integrations.models import InboundWebhook, UnverifiedWebhookCount
from portal.models import ApiToken
from portal.schedules import schedules_ensure
from sandbox.models import IntercomRecord, SandboxReceived, StellaSandboxFeedback, StellaSandboxRequest
from sandbox.models import IntercomSandboxNote as SandboxNote
from sandbox.models import StellaSandboxEmployee as SandboxEmployee
from surveys.models import (
    ConversationEvent,
    Feedback,
    IntercomNote,
    QuarantinedFeedback,
    StellaEmployee,
    SurveyRequest,
    Teammate,
)
from surveys.reporting.status import TABS
from tests.browser.conftest import BROWSER, log_in
from tests.factories import SurveyRequestFactory

pytestmark = BROWSER

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} refused ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile}:${event.lineNumber}) ${event.sample || ""}`);
});
"""
DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
]


class Recorder:
    """Opens pages, checks each answer's header, and keeps every CSP violation and page error, by page."""

    def __init__(self, page) -> None:
        self.page = page
        self.violations: list[str] = []
        self.visited: list[str] = []
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.violations.append(f"{self.page.url}: script error {error}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        if "Refused to" in message.text or "Content Security Policy" in message.text:
            self.violations.append(f"{self.page.url}: console {message.text}")

    def _response(self, response) -> None:
        if response.request.resource_type == "document" and response.status < 300:
            policy = response.headers.get("content-security-policy", "")
            missing = [directive for directive in DIRECTIVES if directive not in policy]
            if missing:
                self.violations.append(f"{response.url}: Content-Security-Policy {policy!r} lacks {missing}")

    def collect(self) -> None:
        """The events the page recorded, before it is left."""
        self.page.wait_for_load_state("load")
        self.visited.append(self.page.url)
        for violation in self.page.evaluate("window.__cspViolations || []"):
            self.violations.append(f"{self.page.url}: {violation}")

    def open(self, url: str) -> None:
        response = self.page.goto(url)
        assert response is not None and response.headers.get("content-security-policy"), url
        self.collect()


@pytest.fixture
def world(log, settings, live_server):
    """A row for every admin screen: each model the admin lists has one, made the way the portal makes it where
    that is cheap (sign-ins for django-axes, the schedule registry)."""
    settings.INTERCOM_OAUTH_URL = f"{live_server.url}/sandbox/intercom/oauth"
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    now = timezone.now()
    account = log
    sent = SurveyRequest.objects.filter(account=account, status=SurveyRequest.Status.SENT).first()
    Feedback.objects.create(
        account=account, uuid="uuid-csp-1", sequence_id=1, ext_interaction_id=sent.conversation_id,
        survey_request=sent, mode="test", channel="chat", employee_email="tess@support.example",
        delivery_status="Delivered", request_created_at=now, request_sent_at=now, response_received_at=now,
        star_rating=4, comment="Quick and kind. " * 30,
    )  # fmt: skip
    SurveyRequestFactory(
        account=account, status=SurveyRequest.Status.AMBIGUOUS, closed_at=now, conversation_id="ambiguous-csp"
    )
    StellaEmployee.objects.create(account=account, stella_id="e1", email="tess@support.example", synced_at=now)
    IntercomNote.objects.create(account=account, survey_request=sent, event="decided", body="Surveyed.", post_after=now)
    QuarantinedFeedback.objects.create(
        account=account, sequence_id=7, uuid="uuid-csp-\\u0000", ext_interaction_id=sent.conversation_id,
        reason="Its uuid holds a NUL", raw='{"uuid": "uuid-csp-\\u0000"}', quarantined_at=now,
    )  # fmt: skip
    Teammate.objects.create(account=account, intercom_id="7", name="Tess Teammate", email="tess@support.example")
    webhook = InboundWebhook.objects.create(
        workspace_id="wsacme", topic="conversation.admin.closed", notification_id="notif_csp", body='{"type": "x"}'
    )
    ConversationEvent.objects.create(
        account=account, conversation_id=sent.conversation_id, kind="reopened", occurred_at=now, inbound_webhook=webhook
    )
    UnverifiedWebhookCount.objects.create(minute=now.replace(second=0, microsecond=0), count=61)
    ApiToken.objects.create(user=User.objects.get(username="acme-support"))
    Group.objects.create(name="Support leads")
    SandboxEmployee.objects.create(email="tess@support.example", first_name="Tess")
    IntercomRecord.objects.create(kind="admins", intercom_id="7", data={"id": "7", "type": "admin"})
    StellaSandboxRequest.objects.create(api_key="••••test", mode="test", body={}, status_code=201, response={})
    StellaSandboxFeedback.objects.create(
        sequence_id=1, company="acme", mode="test", channel="chat", request_created_at=now, request_delivery_status="Delivered"
    )  # fmt: skip
    SandboxNote.objects.create(conversation_id=sent.conversation_id, admin_id="7", body="Surveyed.")
    SandboxReceived.objects.create(kind=SandboxReceived.Kind.TAG, target=sent.conversation_id, body={"name": "low"})
    schedules_ensure()
    Task.objects.create(
        id=uuid.uuid4().hex, name="done", func="math.floor", started=now, stopped=now, success=True, result=1
    )
    Task.objects.create(
        id=uuid.uuid4().hex, name="broke", func="math.floor", started=now, stopped=now, success=False, result="Boom"
    )
    task = {"id": uuid.uuid4().hex, "name": "waiting", "func": "math.floor", "args": (1.5,), "kwargs": {}}
    OrmQ.objects.create(key=Conf.PREFIX, payload=SignedPackage.dumps(task), lock=now)
    signing_in = Client()  # django-axes' three logs: attempts and failures of a guess, and a sign-in
    signing_in.post("/admin/login/", {"username": "nobody", "password": "guess"})
    signing_in.post("/admin/login/", {"username": "csm", "password": "csm-pw-12345"})
    assert AccessAttempt.objects.filter(username="nobody").exists()
    return account


def assert_none(recorder: Recorder) -> None:
    assert recorder.visited, "no page was opened"
    assert not recorder.violations, "\n".join(recorder.violations)


def test_the_support_pages_break_no_rule_of_the_policy(live_server, page, world):
    recorder = Recorder(page)
    recorder.open(f"{live_server.url}/login/")
    log_in(page, f"{live_server.url}/login/", "acme-support", "acme-support-pw-1")
    page.wait_for_url("**/status/")
    recorder.collect()
    for tab in TABS:
        recorder.open(f"{live_server.url}/status/?tab={tab.key}")
    # A long comment opens in place: its <details> needs no script.
    recorder.open(f"{live_server.url}/status/?tab=sent")
    page.locator("details.long-quote summary").first.click()
    expect(page.locator("details.long-quote .whole").first).to_be_visible()
    recorder.collect()
    recorder.open(f"{live_server.url}/status/teammates/")
    # The API: its docs (Swagger UI, drawn by its script from the schema) and the browsable pages.
    recorder.open(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.locator(".swagger-ui .opblock-summary").first.click()
    expect(page.locator(".swagger-ui .opblock-body").first).to_be_visible()
    recorder.collect()
    survey_request = SurveyRequest.objects.filter(account=world).first()
    for path in ("/api/", "/api/survey-requests/", f"/api/survey-requests/{survey_request.pk}/", "/api/teammates/"):
        recorder.open(f"{live_server.url}{path}")
    assert_none(recorder)


def test_every_admin_screen_breaks_no_rule_of_the_policy(live_server, page, world):
    recorder = Recorder(page)
    recorder.open(f"{live_server.url}/admin/login/")
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    recorder.collect()
    shown = set()
    for model in admin.site._registry:
        opts = model._meta
        recorder.open(f"{live_server.url}{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}")
        first = model._default_manager.first()
        assert first is not None, f"no {opts.label} to open: add one to the world fixture"
        recorder.open(
            f"{live_server.url}{reverse(f'admin:{opts.app_label}_{opts.model_name}_change', args=[first.pk])}"
        )
        shown.add(opts.label)
    assert len(shown) == len(admin.site._registry)
    account = world
    for path in (
        reverse("admin:surveys_account_add"),
        reverse("admin:surveys_account_checklist", args=[account.pk]),
        reverse("admin:surveys_account_go_live", args=[account.pk]),
        reverse("admin:surveys_account_stella_sync", args=[account.pk, "feedback"]),
        reverse("admin:password_change"),
        reverse("admin:auth_user_password_change", args=[User.objects.get(username="csm").pk]),
    ):
        recorder.open(f"{live_server.url}{path}")
    # The dry run, with its results.
    recorder.open(f"{live_server.url}{reverse('admin:surveys_account_dry_run', args=[account.pk])}")
    page.locator("input[name=suppression_window]").fill("14")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".dry-run-summary")).to_be_visible()
    recorder.collect()
    # The confirmation before resending a request that may have reached the customer.
    recorder.open(f"{live_server.url}{reverse('admin:surveys_surveyrequest_changelist')}?q=ambiguous-csp")
    page.locator("input[name=_selected_action]").first.check()
    page.select_option("select[name=action]", "resend")
    page.get_by_role("button", name="Go").click()
    expect(page.get_by_role("button", name="Yes, resend them")).to_be_visible()
    recorder.collect()
    assert_none(recorder)


def test_connecting_with_intercom_and_the_sandbox_break_no_rule_of_the_policy(live_server, page, world):
    """The OAuth round trip through the sandbox's consent page: a form posted to the portal that redirects on
    (form-action), the confirmation to switch workspace, and the page a failed connection shows."""
    recorder = Recorder(page)
    log_in(page, f"{live_server.url}/admin/login/", "csm", "csm-pw-12345")
    page.wait_for_url("**/admin/")
    recorder.open(f"{live_server.url}{reverse('admin:surveys_account_checklist', args=[world.pk])}")
    page.locator("#step-intercom").get_by_role("button", name="Connect with Intercom").click()
    page.wait_for_url("**/sandbox/intercom/oauth**")
    recorder.collect()
    page.fill("input[name=workspace]", "wsother")
    page.get_by_role("button", name="Authorize access").click()
    expect(page.get_by_role("heading", name="Connect Acme Support to another Intercom workspace?")).to_be_visible()
    recorder.collect()
    page.get_by_role("button", name="No, keep workspace wsacme").click()
    page.wait_for_load_state("load")
    recorder.collect()
    recorder.open(f"{live_server.url}/intercom/oauth/callback/?code=x&state=not-ours")
    expect(page.get_by_role("heading", name="Connecting with Intercom failed")).to_be_visible()
    # The sandbox's Intercom inbox, drawing the inbox app's canvas.
    recorder.open(f"{live_server.url}/sandbox/intercom/inbox")
    # The lockout page, after one wrong password too many.
    page.context.clear_cookies()
    for n in range(5):
        log_in(page, f"{live_server.url}/login/", "acme-support", f"guess-{n}")
    expect(page.get_by_role("heading", name="Logging in is paused")).to_be_visible()
    recorder.collect()
    assert_none(recorder)
