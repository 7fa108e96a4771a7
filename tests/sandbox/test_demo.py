"""`make demo` against a live portal over real HTTP on 127.0.0.1: every scenario, and what the status
page then shows a support user of Demo Company."""

import logging
import re
import shutil
import subprocess
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from sandbox.demo import (
    NEWCOMER,
    QUIET_WORKSPACE,
    SAMPLE_WORKSPACE,
    TEAMMATES,
    WORKSPACE,
    demo_accounts_ensure,
    demo_quiet_hours_now,
    sandbox_contacts_create,
)
from sandbox.management.commands.send_demo_webhooks import Command
from sandbox.models import StellaSandboxEmployee, StellaSandboxRequest
from sandbox.samples import closed_conversation
from surveys.accounts.account import account_upsert
from surveys.decisions.rules import SuppressionReason
from surveys.delivery.sending import survey_request_send
from surveys.delivery.survey_requests import survey_requests_resend
from surveys.models import Account, ApiRequest, Feedback, IntegrationSettings, SurveyRequest, TeammateDailyCount
from surveys.tasks import process_inbound_webhooks
from tests.helpers import run_queued_tasks
from tests.servers import refused_port

ROOT = Path(__file__).resolve().parents[2]
TESS, OMAR = TEAMMATES[:2]


@pytest.fixture
def portal(live_server, settings):
    """The live server plays the portal `make run` starts, its sandbox Stella and Intercom included."""
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    call_command("portal_setup_demo", stdout=StringIO())
    return live_server


def demo(url, **options):
    out = StringIO()
    call_command("send_demo_webhooks", url=url, wait=0, stdout=out, **options)
    return out.getvalue()


def conversation_of(output, title):
    return re.search(rf"^- {re.escape(title)} \(conversation (\d+)\)$", output, flags=re.M).group(1)


def outcomes(output):
    """{scenario title: (status, decision, reason, status detail)} of the run whose report is `output`."""
    titles = dict(re.findall(r"^- (.+) \(conversation (\d+)\)$", output, flags=re.M))
    requests = SurveyRequest.objects.filter(conversation_id__in=titles.values())
    by_id = {r.conversation_id: (r.status, r.decision, r.reason, r.status_detail) for r in requests}
    return {title: by_id.get(conversation_id) for title, conversation_id in titles.items()}


CREDIT = (
    "Closed chat of the Billing team, assigned to nobody in particular (Demo Company, rules credits the last teammate "
    "to reply)"
)
EXPECTED = {
    "Closed chat": ("sent", "send", "", ""),
    "Closed chat; customer and teammate known only by id": ("sent", "send", "", ""),
    "Closed chat, older webhook shape (no channel)": ("sent", "send", "", ""),
    "Closed by the Fin bot": ("sent", "do_not_send", "bot_assignee", ""),
    "First message tagged do_not_send_stella": ("sent", "do_not_send", "suppressed_tag", ""),
    f"Closed by {NEWCOMER[1]}, a teammate Stella has no employee for": ("invalid", "send", "", "Employee not found"),
    "Closed email, a channel Demo Company has turned off": (
        "invalid",
        "invalid",
        "channel_disabled",
        "Channel not enabled for company",
    ),
    "Ada's second chat, within Demo Company's 7-day suppression window": (
        "suppressed",
        "suppressed",
        "suppression_window",
        "",
    ),
    "Closed, then reopened within the 1-minute channel delay": (
        "cancelled",
        "send",
        "reopened",  # shown as "Reopened during the channel delay"
        "",
    ),
    "Closed email, with a 1-minute channel delay": ("scheduled", "send", "", ""),
    # Left out by the rules of whom to survey (Demo Company, rules), and one held by quiet hours (Demo Company, quiet
    # hours): the sender here runs at once, the quiet hours still hold it.
    "Closed chat of the Onboarding team, a team Demo Company, rules leaves out": (
        "suppressed",
        "suppressed",
        "team_left_out",
        "",
    ),
    "Closed chat with no teammate reply (Demo Company, rules wants at least one)": (
        "suppressed",
        "suppressed",
        "too_few_replies",
        "",
    ),
    "Closed 10 days after a teammate last replied (Demo Company, rules: at most 7)": (
        "suppressed",
        "suppressed",
        "reply_too_old",
        "",
    ),
    CREDIT: ("sent", "send", "", ""),
    # Demo Company, quiet hours keeps them in each customer's time zone: Bea's contact says Japan, outside them.
    "Closed chat of Bea Buyer's, in Japan, at the same time (Demo Company, quiet hours keeps them in each customer's "
    "time zone)": ("sent", "send", "", ""),
    # Demo Company, sample (50%): of two closed chats of Omar's in a row, one is in the sample.
    "Closed chat of Omar Operator's, picked for Demo Company, sample's 50% sample": ("sent", "send", "", ""),
    "Closed chat of Omar Operator's, not picked for Demo Company, sample's 50% sample": (
        "suppressed",
        "suppressed",
        "not_sampled",
        "",
    ),
}
QUIET = "Closed chat during Demo Company, quiet hours' quiet hours"


def without_quiet(found):
    return {title: outcome for title, outcome in found.items() if title != QUIET}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_walks_through_every_scenario_and_the_status_page_shows_them(portal):
    output = demo(f"{portal.url}/webhooks/intercom/")
    assert "Posted 19 webhooks" in output
    run_queued_tasks()
    quiet = outcomes(output)[QUIET]
    assert without_quiet(outcomes(output)) == EXPECTED
    assert quiet[:3] == ("scheduled", "send", "")
    assert quiet[3].startswith("Waiting for the account's quiet hours to end: goes at ")
    assert quiet[3].endswith(" UTC (the account's: where Intercom says the customer is doesn't name one time zone)")
    # Credited to Omar, who replied last (Intercom's conversation parts), his email from GET /admins/{id}; and the
    # report says so.
    credited = SurveyRequest.objects.get(conversation_id=conversation_of(output, CREDIT))
    assert (credited.teammate_name, credited.teammate_email) == (OMAR[1], OMAR[2])
    assert StellaSandboxRequest.objects.get(body__ext_interaction_id=credited.conversation_id).body["employee"] == {
        "email": OMAR[2]
    }
    assert Command.describe(credited) == (
        f"sent, crediting {OMAR[1]}: The last teammate to reply is credited (the conversation was assigned to a team)"
    )
    # Stella refused the newcomer; the email closure never reached it.
    refused = StellaSandboxRequest.objects.get(status_code=400)
    assert (refused.body["employee"], refused.response) == ({"email": NEWCOMER[2]}, {"message": "Employee not found"})
    # The eight sent above, and service recovery's chat (rated 1★ once sent; the stopped one never reaches Stella).
    assert StellaSandboxRequest.objects.filter(status_code=200).count() == 9
    assert sorted(ApiRequest.objects.invalid().values_list("error_message", flat=True)) == [
        "Channel not enabled for company",
        "Employee not found",
    ]

    client = Client()
    client.force_login(User.objects.get(username="support"))
    invalid = client.get("/status/", {"tab": "invalid"})
    assert sorted(row.reason for row in invalid.context["rows"]) == [
        "Channel not enabled for company",
        "Employee not found",
    ]
    html = invalid.content.decode()
    for row in invalid.context["rows"]:  # each reason in Stella's words, and what it means
        assert escape(row.reason) in html and row.explanation and escape(row.explanation) in html
    suppressed = client.get("/status/", {"tab": "suppressed"}).context["rows"]
    assert [row.reason for row in suppressed] == [SuppressionReason.SUPPRESSION_WINDOW.label]
    assert [row.customer for row in suppressed] == ["a•••@customer.example"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_reports_each_scenario_and_sums_up(portal, caplog):
    with caplog.at_level(logging.INFO):
        output = demo(f"{portal.url}/webhooks/intercom/")
    # No INFO lines between the report's (its read-back logs each call to Stella); logging is back on after.
    assert [record.getMessage() for record in caplog.records if record.levelno < logging.WARNING] == []
    assert logging.root.manager.disable == logging.NOTSET
    assert output.count("    expected: ") == output.count("    now:      ") == 18
    assert "now:      not processed yet" in output  # wait=0: reported at once
    assert "As expected: 0 of 18." in output
    assert f"Status page, as support / support (Demo Company): {portal.url}/status/" in output
    assert "Invalid Requests: Employee not found, Channel not enabled for company; Suppressed: Ada's" in output
    assert "    expected: suppressed, left out (Team not surveyed), decided here" in output
    assert "    expected: suppressed, left out (Too few teammate replies), after counting the replies" in output
    assert "    expected: suppressed, left out (Closed long after the last teammate reply), decided here" in output
    assert "    expected: waiting for the account's quiet hours to end: not left out, sent when they end" in output
    assert "    expected: suppressed, left out (Not in the sample), decided here, and the same however often" in output
    assert f"    expected: sent, crediting {OMAR[1]}, who replied after {TESS[1]}, after reading the replies" in output
    assert re.search(
        r"^Demo Company, quiet hours: quiet hours \d\d:\d\d-\d\d:\d\d UTC, set for this run", output, flags=re.M
    )
    assert "Read back from Stella" in output and "- Demo Company: 0 feedback records read" in output


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_second_run_comes_to_the_same_outcomes(portal):
    """Each run has customers of its own: Demo Company's suppression window holds back only Ada's second chat."""
    first = demo(f"{portal.url}/webhooks/intercom/")
    run_queued_tasks()
    second = demo(f"{portal.url}/webhooks/intercom/")
    run_queued_tasks()
    assert without_quiet(outcomes(first)) == EXPECTED
    # The first run's read-back found Stella has no employee for Nia: her next request is invalid without a call.
    newcomer = f"Closed by {NEWCOMER[1]}, a teammate Stella has no employee for"
    assert without_quiet(outcomes(second)) == {
        **EXPECTED,
        newcomer: ("invalid", "invalid", "employee_unknown", "Employee not found"),
    }
    assert StellaSandboxRequest.objects.filter(status_code=400).count() == 1
    # Ada's second chat, three left out by the rules, one by the sample.
    assert SurveyRequest.objects.filter(status="suppressed").count() == 2 * 5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_finds_which_closure_its_sample_keeps_wherever_the_sample_stands(portal):
    """Sampling goes by the order a teammate's closures are recorded: one more closure of Omar's between two runs
    turns which of the next two is kept; the demo asks, and posts the kept one first or second."""
    url = f"{portal.url}/webhooks/intercom/"
    first = demo(url)
    run_queued_tasks()
    customer = (f"contact-extra-{time.time_ns()}", "Extra Customer", "extra@customer.example")
    sandbox_contacts_create([customer])
    Command().post(url, closed_conversation(app_id=SAMPLE_WORKSPACE, conversation_id="9900001", at=int(time.time()),
                                            customer=customer, teammate=OMAR))  # fmt: skip
    run_queued_tasks()
    second = demo(url)
    run_queued_tasks()
    sampling = {title: outcome for title, outcome in EXPECTED.items() if "sample" in title}
    first_order = {title: outcome for title, outcome in outcomes(first).items() if title in sampling}
    second_order = {title: outcome for title, outcome in outcomes(second).items() if title in sampling}
    assert first_order == second_order == sampling
    assert list(first_order) == list(reversed(second_order))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_puts_back_what_its_scenarios_rely_on(portal):
    account_upsert(workspace_id=WORKSPACE, email_enabled=True, suppression_window=timedelta(0))
    StellaSandboxEmployee.objects.create(email=NEWCOMER[2])  # as if someone had added her, to try a resend
    output = demo(f"{portal.url}/webhooks/intercom/")
    assert "Put back the demo's settings (Demo Company: email channel off, suppression window 7d)" in output
    assert f"{NEWCOMER[1]} is new to Stella again" in output
    integration = Account.objects.get(intercom_workspace_id=WORKSPACE).integration
    assert (integration.email_enabled, integration.suppression_window) == (False, timedelta(days=7))
    assert "Put back" not in demo(f"{portal.url}/webhooks/intercom/")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_newcomer_request_sends_once_stella_knows_her(portal):
    """As the README suggests: add Nia under Sandbox → Stella employees, then resend her request."""
    output = demo(f"{portal.url}/webhooks/intercom/")
    run_queued_tasks()
    nia = SurveyRequest.objects.get(
        teammate_email=NEWCOMER[2], conversation_id__in=re.findall(r"\(conversation (\d+)\)", output)
    )
    assert nia.status == "invalid"
    StellaSandboxEmployee.objects.create(email=NEWCOMER[2])
    survey_requests_resend([nia], by="admin")
    run_queued_tasks()
    nia.refresh_from_db()
    assert nia.status == "sent"


@pytest.mark.django_db
def test_demo_looks_for_the_portal_on_port_and_says_how_to_point_it_elsewhere(settings, refused_url):
    with refused_port() as port:
        settings.PORT = port
        with pytest.raises(CommandError) as refused:
            call_command("send_demo_webhooks", wait=0, stdout=StringIO())
    message = str(refused.value)
    assert f"Nothing answers at http://127.0.0.1:{settings.PORT}/webhooks/intercom/" in message
    assert f"PORT {settings.PORT}" in message and "make demo PORT=" in message and "--url" in message
    assert not SurveyRequest.objects.exists() and not Account.objects.exists()  # nothing done before the check
    with pytest.raises(CommandError, match="this looked at the --url given"):
        call_command("send_demo_webhooks", url=f"{refused_url}/webhooks/intercom/", wait=0, stdout=StringIO())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_finds_the_portal_from_port_alone(portal, settings):
    settings.PORT = portal.thread.port
    out = StringIO()
    call_command("send_demo_webhooks", wait=0, stdout=out)
    assert f"Posted 19 webhooks to http://127.0.0.1:{settings.PORT}/webhooks/intercom/" in out.getvalue()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_says_when_something_else_answers_on_the_port(portal):
    with pytest.raises(CommandError, match=r"not as the portal's webhook URL \(HTTP 404"):
        call_command("send_demo_webhooks", url=f"{portal.url}/nowhere/", wait=0, stdout=StringIO())


def test_every_demo_option_says_what_it_does():
    parser = Command().create_parser("manage.py", "send_demo_webhooks")
    options = {action.dest: action for action in parser._actions}
    assert "PORT" in options["url"].help and "/webhooks/intercom/" in options["url"].help
    assert options["wait"].help


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_passes_its_port_to_the_command():
    dry_run = subprocess.run(
        ["make", "-n", "demo", "PORT=8731"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^DEBUG=true PORT=8731 \S+/python manage.py send_demo_webhooks", dry_run, flags=re.M), dry_run


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_after_the_demo_stella_reads_back_delivery_ratings_and_the_teammate_it_wont_recognise(portal, settings):
    """What `make demo` promises within a couple of minutes: delivery statuses and ratings on the sent requests,
    figures on the Teammates view, and Nia shown as unknown to Stella."""
    # The sandbox's customers answer every survey, at once (in `make run`, 60% of them, 20 s later).
    settings.SANDBOX_FEEDBACK_DELAY_SECONDS, settings.SANDBOX_FEEDBACK_SHARE = 0, 1.0
    demo(f"{portal.url}/webhooks/intercom/")
    run_queued_tasks()
    output = demo(f"{portal.url}/webhooks/intercom/")  # its read-back reads the first run's sends
    account = Account.objects.get(intercom_workspace_id=WORKSPACE)
    assert f"Stella won't recognise: {NEWCOMER[1]}" in output
    sent = SurveyRequest.objects.filter(account=account, status="sent").select_related("feedback")
    statuses = {request.feedback.delivery_status for request in sent if hasattr(request, "feedback")}
    assert statuses == {"Delivered", "Not sent: do not send flag"}
    assert Feedback.objects.filter(account=account, star_rating__isnull=False).exists()
    assert TeammateDailyCount.objects.filter(account=account, delivered__gt=0).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_ends_with_a_conversation_stopped_in_the_inbox_app_and_one_recovered(
    portal, monkeypatch, settings, capsys
):
    """With the cluster's work done whenever the demo waits (here, the intake and the sender are run in turn), and
    make run's console email backend: the recovery email is named in the report, not printed whole into it."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    def send_due() -> int:
        for survey_request in SurveyRequest.objects.filter(status="scheduled", send_after__lte=timezone.now()):
            survey_request_send(survey_request.pk, now=timezone.now())
        return 0

    monkeypatch.setattr(Command, "wait_for", lambda self, ids, *, seconds: process_inbound_webhooks())
    monkeypatch.setattr("sandbox.demo_inbox.time.sleep", lambda seconds: process_inbound_webhooks() + send_due())
    output = demo(f"{portal.url}/webhooks/intercom/")
    stopped = re.search(r"^Inside Intercom: a waiting conversation, (\d+),", output, flags=re.M).group(1)
    request = SurveyRequest.objects.get(conversation_id=stopped)
    assert (request.status, request.reason) == ("cancelled", "stopped_in_intercom")
    assert f"then:     cancelled (Stopped by a teammate in Intercom: Stopped by {TEAMMATES[0][1]} on" in output
    assert not ApiRequest.objects.filter(survey_request=request).exists()
    rated = re.search(r"^Service recovery: conversation (\d+), sent and rated 1★$", output, flags=re.M).group(1)
    actions = SurveyRequest.objects.get(conversation_id=rated).recovery_actions
    assert sorted(actions.values_list("kind", "status")) == [
        ("assign", "done"), ("email", "done"), ("note", "done"), ("tag", "done"), ("webhook", "done"),
    ]  # fmt: skip
    assert "Tagged the conversation: done" in output and "Webhook: done" in output
    assert re.search(
        r"^    emailed:  \[Demo Company\] Low rating: 1 of 5 stars, to support-leads@demo.example$", output, flags=re.M
    ), output
    assert "Subject:" not in capsys.readouterr().out


@pytest.mark.django_db
def test_running_the_demo_again_soon_leaves_no_configuration_change_on_record():
    """Each run needs a close now to fall in Demo Company, quiet hours' quiet hours: they move only when they no
    longer would hold it, so a run soon after another changes nothing, and nothing is put on record."""
    demo_accounts_ensure()
    records = IntegrationSettings.history.filter(account__intercom_workspace_id=QUIET_WORKSPACE)
    now = timezone.now()
    first, moved = demo_quiet_hours_now(now)
    count = records.count()
    assert moved
    assert demo_quiet_hours_now(now + timedelta(minutes=5)) == (first, False)
    demo_accounts_ensure()
    assert records.count() == count
    later, moved = demo_quiet_hours_now(now + timedelta(minutes=55))  # 5 minutes left: moved to around then
    assert moved and later != first and records.count() == count + 1
