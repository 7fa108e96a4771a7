"""The rules of whom to survey, end to end: signed webhooks in over HTTP to a live portal, whose sandbox plays Stella and
Intercom (GET /teams, GET /conversations/{id} with its parts and statistics). A closure a rule leaves out ends
suppressed with that rule as its reason, and Stella hears nothing of it."""

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from sandbox.demo import CUSTOMERS, TEAMMATES, TEAMS, sandbox_conversation_create, sandbox_people_create
from sandbox.models import IntercomRecord, StellaSandboxRequest
from sandbox.samples import closed_conversation
from surveys.accounts.account import integration_settings_update
from surveys.accounts.teams import account_teams
from surveys.delivery.sending import survey_request_send
from surveys.models import IntegrationSettings, SurveyRequest
from tests.factories import AccountFactory
from tests.helpers import notification, post_webhook, run_queued_tasks

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WS = "ws-rules"
ADA, BEA, CAI, DEE = CUSTOMERS
TESS, OMAR, INES = TEAMMATES
(BILLING, _), (VIP, _), _ = TEAMS
S = SurveyRequest.Status
DAY = 24 * 3600


@pytest.fixture
def account(live_server, settings):
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    sandbox_people_create()
    return AccountFactory(
        intercom_workspace_id=WS,
        integration__test_api_key="sandbox-test-key-0001",
        integration__intercom_access_token="sandbox-token-0003",
    )


def configure(account, **fields):
    integration_settings_update(IntegrationSettings.objects.get(account=account), **fields)


def deliver(*payloads):
    """POST signed webhooks to the portal, then run what the cluster would run."""
    assert all(post_webhook(Client(), payload, process=False).status_code == 200 for payload in payloads)
    run_queued_tasks()


def closed(conversation_id, *, customer=ADA, teammate=TESS, **kwargs):
    return closed_conversation(
        app_id=WS, conversation_id=conversation_id, at=int(time.time()), customer=customer, teammate=teammate, **kwargs
    )


def outcomes():
    """Each closure's status and reason, by conversation, and the conversations Stella was asked about."""
    rows = SurveyRequest.objects.values_list("conversation_id", "status", "reason")
    asked = {request.body["ext_interaction_id"] for request in StellaSandboxRequest.objects.all()}
    return {conversation: (status, reason) for conversation, status, reason in rows}, asked


def test_teams_included_and_excluded(account):
    configure(account, include_teams=f"{BILLING}, {VIP}", exclude_teams=VIP)
    deliver(closed("t1", team_id=BILLING), closed("t2", team_id=VIP, customer=BEA), closed("t3", customer=CAI))
    found, asked = outcomes()
    assert found == {
        "t1": (S.SENT, ""),
        "t2": (S.SUPPRESSED, "team_left_out"),  # included, but excluded too
        "t3": (S.SUPPRESSED, "team_left_out"),  # no team: not one of the included
    }
    assert asked == {"t1"}
    assert SurveyRequest.objects.get(conversation_id="t2").verdicts["team_not_surveyed"] == "team_left_out"


def test_the_admin_names_the_teams_from_intercom(account):
    found = account_teams(account.integration)
    assert found.problem == "" and [(team.id, team.name) for team in found.teams] == [
        ("5100001", "Billing"),
        ("5100003", "Onboarding"),
        ("5100002", "VIP customers"),
    ]


def test_minimum_teammate_replies_counts_the_conversation_parts_intercom_returns(account):
    configure(account, min_teammate_replies=2)
    now = int(time.time())
    sandbox_conversation_create(
        "m1", channel="chat", customer=ADA, teammate=TESS, started_at=now - 900, replies=((TESS, now - 600),)
    )
    sandbox_conversation_create(
        "m2", channel="chat", customer=BEA, teammate=TESS, started_at=now - 900,
        replies=((OMAR, now - 700), (TESS, now - 600)),
    )  # fmt: skip
    deliver(closed("m1"), closed("m2", customer=BEA))
    found, asked = outcomes()
    assert found == {"m1": (S.SUPPRESSED, "too_few_replies"), "m2": (S.SENT, "")}
    assert asked == {"m2"}
    assert SurveyRequest.objects.get(conversation_id="m1").teammate_replies == 1


def test_a_close_long_after_the_last_reply_is_left_out(account):
    configure(account, max_days_since_reply=7)
    now = int(time.time())
    deliver(
        closed("d1", last_admin_reply_at=now - 8 * DAY),
        closed("d2", customer=BEA, last_admin_reply_at=now - 6 * DAY),
        closed("d3", customer=CAI),  # no teammate replied: the minimum of replies is the rule for that
    )
    found, asked = outcomes()
    assert found == {"d1": (S.SUPPRESSED, "reply_too_old"), "d2": (S.SENT, ""), "d3": (S.SENT, "")}
    assert asked == {"d2", "d3"}


def test_a_sample_takes_the_same_share_of_each_teammate_and_decides_a_redelivery_the_same(account):
    configure(account, sample_percent=50)
    payloads = [
        closed(f"s{teammate[0]}-{n}", teammate=teammate, customer=(f"contact-{n}", None, f"c{n}@customer.example"))
        for teammate in (TESS, OMAR)
        for n in range(10)
    ]
    deliver(*payloads)
    found, asked = outcomes()
    for teammate in (TESS, OMAR):
        mine = {
            conversation: fate for conversation, fate in found.items() if conversation.startswith(f"s{teammate[0]}")
        }
        assert sorted(mine.values()).count((S.SENT, "")) == 5
        assert sorted(mine.values()).count((S.SUPPRESSED, "not_sampled")) == 5
    assert len(asked) == 10
    for payload in payloads:  # Intercom delivers them again, as new notifications
        payload["id"] = f"again-{payload['id']}"
    deliver(*payloads)
    assert outcomes() == (found, asked)
    assert SurveyRequest.objects.count() == 20


def test_a_rule_turned_off_surveys_again(account):
    configure(account, exclude_teams=BILLING)
    deliver(closed("o1", team_id=BILLING))
    configure(account, exclude_teams="")
    deliver(closed("o2", team_id=BILLING, customer=BEA))
    assert outcomes() == ({"o1": (S.SUPPRESSED, "team_left_out"), "o2": (S.SENT, "")}, {"o2"})


def test_send_time_recheck_leaves_out_what_a_rule_turned_on_meanwhile_leaves_out(account):
    configure(account, channel_delay=timedelta(minutes=10))
    deliver(closed("w1", team_id=VIP))
    configure(account, exclude_teams=VIP)
    survey_request_send(SurveyRequest.objects.get().pk, now=timezone.now() + timedelta(minutes=11))
    assert outcomes() == ({"w1": (S.SUPPRESSED, "team_left_out")}, set())


def test_quiet_hours_hold_a_send_until_they_end_and_a_reply_meanwhile_still_cancels(account):
    now = timezone.now()
    start, end = now - timedelta(minutes=30), now + timedelta(hours=2)
    configure(account, time_zone="Asia/Kolkata", quiet_hours=f"{to_zone(start):%H:%M}-{to_zone(end):%H:%M}")
    deliver(closed("q1"), closed("q2", customer=BEA))
    waiting = SurveyRequest.objects.get(conversation_id="q1")
    goes = waiting.send_after
    assert (waiting.status, to_zone(goes).strftime("%H:%M")) == (S.SCHEDULED, f"{to_zone(end):%H:%M}")
    assert waiting.status_detail == (
        f"Waiting for the account's quiet hours to end: goes at {to_zone(goes):%Y-%m-%d %H:%M} Asia/Kolkata"
    )
    assert waiting.detail_code == "quiet_hours" and outcomes()[1] == set()
    replied = notification("conversation_user_replied", app_id=WS, created_at=int(time.time()) + 60)
    replied["data"]["item"]["id"] = "q2"
    deliver(replied)
    survey_request_send(waiting.pk, now=goes)
    survey_request_send(SurveyRequest.objects.get(conversation_id="q2").pk, now=goes)
    found, asked = outcomes()
    assert found == {"q1": (S.SENT, ""), "q2": (S.CANCELLED, "customer_replied")}
    assert asked == {"q1"}


def to_zone(moment):
    return moment.astimezone(ZoneInfo("Asia/Kolkata"))


def test_the_last_teammate_to_reply_is_credited_also_for_a_team_or_nobody(account):
    configure(account, attribution="last_replier")
    now = int(time.time())
    nobody = (None, None, None)
    for conversation_id, customer in (("a1", ADA), ("a2", BEA), ("a3", CAI)):
        replies = ((TESS, now - 900), (OMAR, now - 600)) if conversation_id != "a3" else ()
        sandbox_conversation_create(
            conversation_id, channel="chat", customer=customer, teammate=nobody, started_at=now - 1200, replies=replies
        )
    deliver(
        closed("a1", teammate=nobody, team_id=VIP),  # assigned to a team: Omar replied last
        closed("a2", customer=BEA),  # assigned to Tess: Omar replied last
        closed("a3", teammate=nobody, customer=CAI),  # nobody assigned, nobody replied
    )
    found, asked = outcomes()
    assert found == {"a1": (S.SENT, ""), "a2": (S.SENT, ""), "a3": (S.INVALID, "employee_not_found")}
    employees = {
        request.body["ext_interaction_id"]: request.body["employee"] for request in StellaSandboxRequest.objects.all()
    }
    assert employees == {"a1": {"email": OMAR[2]}, "a2": {"email": OMAR[2]}}
    credited = dict(SurveyRequest.objects.values_list("conversation_id", "attribution"))
    assert credited == {
        "a1": "The last teammate to reply is credited (the conversation was assigned to a team)",
        "a2": "The last teammate to reply is credited",
        "a3": "No teammate replied: the assignee at close is credited",
    }
    assert SurveyRequest.objects.get(conversation_id="a1").teammate_name == OMAR[1]  # looked up: GET /admins/{id}


def locate(contact_id, **location):
    """Where the sandbox's Intercom says the contact is (GET /contacts/{id} answers with it)."""
    record = IntercomRecord.objects.get(kind=IntercomRecord.Kind.CONTACT, intercom_id=contact_id)
    record.data = {**record.data, "location": {"type": "location", **location}}
    record.save()


def test_quiet_hours_kept_in_the_customers_time_zone_where_intercom_says_where_they_are(account):
    # Quiet now in Dublin, not in Kolkata (4h30 to 5h30 ahead): a customer in Ireland waits, one in San Francisco
    # (a state of several zones, a city that names none) is read in the account's zone and goes at once.
    now = timezone.now()
    dublin = ZoneInfo("Europe/Dublin")
    start, end = (now - timedelta(minutes=30)).astimezone(dublin), (now + timedelta(hours=2)).astimezone(dublin)
    configure(account, time_zone="Asia/Kolkata", quiet_hours=f"{start:%H:%M}-{end:%H:%M}", quiet_hours_zone="customer")
    locate(ADA[0], country="Ireland", region="Dublin", city="Dublin")
    locate(BEA[0], country="Ireland", city="Cork")
    locate(CAI[0], country="United States", region="California", city="San Francisco")
    deliver(closed("z1"), closed("z2", customer=BEA), closed("z3", customer=CAI))
    waiting = SurveyRequest.objects.get(conversation_id="z1")
    goes = waiting.send_after
    assert (waiting.status, waiting.customer_time_zone) == (S.SCHEDULED, "Europe/Dublin")
    assert f"{goes.astimezone(dublin):%H:%M}" == f"{end:%H:%M}" and waiting.delay_ends_at == goes
    assert waiting.status_detail == (
        f"Waiting for the account's quiet hours to end: goes at {goes.astimezone(dublin):%Y-%m-%d %H:%M} "
        "Europe/Dublin (the customer's time zone)"
    )
    assert outcomes() == (
        {"z1": (S.SCHEDULED, ""), "z2": (S.SCHEDULED, ""), "z3": (S.SENT, "")},
        {"z3"},
    )
    assert SurveyRequest.objects.get(conversation_id="z3").customer_time_zone == "unknown"
    # A reply while it waits for the customer's morning still cancels it; the other goes when the night ends.
    replied = notification("conversation_user_replied", app_id=WS, created_at=int(time.time()) + 60)
    replied["data"]["item"]["id"] = "z2"
    deliver(replied)
    for request in SurveyRequest.objects.filter(status=S.SCHEDULED):
        survey_request_send(request.pk, now=goes)
    found, asked = outcomes()
    assert found == {"z1": (S.SENT, ""), "z2": (S.CANCELLED, "customer_replied"), "z3": (S.SENT, "")}
    assert asked == {"z1", "z3"}


def test_quiet_hours_in_the_customers_zone_ask_intercom_once_and_fall_back_without_a_location(account):
    now = timezone.now()
    kolkata = ZoneInfo("Asia/Kolkata")
    start, end = (now - timedelta(minutes=30)).astimezone(kolkata), (now + timedelta(hours=2)).astimezone(kolkata)
    configure(account, time_zone="Asia/Kolkata", quiet_hours=f"{start:%H:%M}-{end:%H:%M}", quiet_hours_zone="customer")
    # Ada's contact says nothing of where she is; Gus's is gone from Intercom (404), his email in the webhook: both
    # are read in the account's zone, where it is night, and neither is refused over a zone.
    gone = ("contact-gone", "Gus Gone", "gus@customer.example")
    deliver(closed("n1"), closed("n2", customer=gone))
    assert {r.customer_time_zone: r.status for r in SurveyRequest.objects.all()} == {"unknown": S.SCHEDULED}
    assert SurveyRequest.objects.filter(status=S.SCHEDULED).count() == 2
    waiting = SurveyRequest.objects.get(conversation_id="n1")
    assert (waiting.status, waiting.customer_time_zone) == (S.SCHEDULED, "unknown")
    assert waiting.status_detail.endswith(
        "Asia/Kolkata (the account's: where Intercom says the customer is doesn't name one time zone)"
    )
    locate(ADA[0], country="Ireland")  # too late: the zone was found once, and the send doesn't ask again
    survey_request_send(waiting.pk, now=waiting.send_after)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.customer_time_zone) == (S.SENT, "unknown")
