"""The dry run: an account's stored closures replayed under proposed rules, beside what happened."""

import random
import re
from collections import Counter
from datetime import timedelta

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.dry_run import CANCELLED, ClosureResult, dry_run, proposed_settings
from surveys.decisions.rules import CancelReason, Decision, DoNotSendReason, InvalidReason, SuppressionReason
from surveys.delivery.sending import survey_request_send
from surveys.delivery.survey_requests import survey_request_stop_in_intercom
from surveys.models import ApiRequest, ConversationEvent, DailyCount, IntegrationSettings, SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import load_fixture, notification, post_webhook

pytestmark = pytest.mark.django_db

# The admin page and the command replay the days up to now.
NOW = timezone.now().replace(microsecond=0)
S = SurveyRequest.Status
SEND = ClosureResult(Decision.SEND, "")
WINDOW = ClosureResult(Decision.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW)
ALREADY = ClosureResult(Decision.SUPPRESSED, SuppressionReason.ALREADY_SURVEYED)
REOPENED = ClosureResult(CANCELLED, CancelReason.REOPENED)


def sent(account, *, days_ago: float, **fields) -> SurveyRequest:
    return SurveyRequestFactory(account=account, sent=True, closed_at=NOW - timedelta(days=days_ago), **fields)


def run(account, *, days: int = 30, changed_limit: int = 200, **changes):
    account.refresh_from_db()
    proposed = proposed_settings(account.integration, **changes)
    return dry_run(account, proposed, days=days, now=NOW, changed_limit=changed_limit)


def counts(result) -> tuple[dict[ClosureResult, int], dict[ClosureResult, int]]:
    current = {row.result: row.current for row in result.rows if row.current}
    proposed = {row.result: row.proposed for row in result.rows if row.proposed}
    return current, proposed


def changes(result) -> dict[str, tuple[ClosureResult, ClosureResult]]:
    return {closure.conversation_id: (closure.current, closure.proposed) for closure in result.changed}


def test_a_suppression_window_suppresses_the_same_customers_later_closes(account):
    for days_ago, conversation in ((20, "a1"), (18, "a2"), (5, "a3")):
        sent(account, days_ago=days_ago, conversation_id=conversation, customer_email="ada@customer.example")
    sent(account, days_ago=19, conversation_id="b1", customer_email="bea@customer.example")

    result = run(account, suppression_window=timedelta(days=7))

    assert changes(result) == {"a2": (SEND, WINDOW)}  # a3 is 15 days after a1, the last survey
    assert counts(result) == ({SEND: 4}, {SEND: 3, WINDOW: 1})
    assert result.changed_count == 1 and result.baseline_mismatches == 0


def test_a_customer_suppressed_by_the_window_stays_followed_by_the_survey_not_the_suppressed_close(account):
    for days_ago, conversation in ((9, "a1"), (4, "a2"), (1, "a3")):
        sent(account, days_ago=days_ago, conversation_id=conversation, customer_email="ada@customer.example")
    result = run(account, suppression_window=timedelta(days=7))
    # a2 is suppressed by a1; a3 is 8 days after a1, and a2 was never a survey: a3 goes out.
    assert changes(result) == {"a2": (SEND, WINDOW)}


def test_a_survey_just_before_the_days_still_suppresses(account):
    sent(account, days_ago=31, conversation_id="old", customer_email="ada@customer.example")
    sent(account, days_ago=28, conversation_id="new", customer_email="ada@customer.example")
    result = run(account, suppression_window=timedelta(days=7))
    assert result.closures == 1
    assert changes(result) == {"new": (SEND, WINDOW)}


def test_a_delay_cancels_the_closes_reopened_within_it(account):
    quick = sent(account, days_ago=3, conversation_id="quick")
    slow = sent(account, days_ago=2, conversation_id="slow")
    ConversationEvent.objects.create(
        account=account, conversation_id="quick", kind="reopened", occurred_at=quick.closed_at + timedelta(minutes=3)
    )
    ConversationEvent.objects.create(
        account=account,
        conversation_id="slow",
        kind="customer_replied",
        occurred_at=slow.closed_at + timedelta(hours=1),
    )

    result = run(account, channel_delay=timedelta(minutes=10))

    assert changes(result) == {"quick": (SEND, REOPENED)}
    assert counts(result) == ({SEND: 2}, {SEND: 1, REOPENED: 1})


def test_a_delay_lets_a_conversation_closed_again_be_surveyed_once_for_its_last_close(account):
    """Closed, reopened a minute later, closed again: without a delay the first close is surveyed and the
    second is "already surveyed"; with one, the reopen cancels the first and the second goes out."""
    first = sent(account, days_ago=3, conversation_id="c1")
    SurveyRequestFactory(
        account=account,
        conversation_id="c1",
        closed_at=first.closed_at + timedelta(minutes=5),
        status=S.SUPPRESSED,
        decision=Decision.SUPPRESSED,
        reason=SuppressionReason.ALREADY_SURVEYED,
    )
    ConversationEvent.objects.create(
        account=account, conversation_id="c1", kind="reopened", occurred_at=first.closed_at + timedelta(minutes=1)
    )
    result = run(account, channel_delay=timedelta(minutes=10))
    assert [(c.current, c.proposed) for c in result.changed] == [(SEND, REOPENED), (ALREADY, SEND)]
    assert result.baseline_mismatches == 0


def test_turning_a_channel_off_makes_its_closes_invalid(account):
    sent(account, days_ago=3, conversation_id="chat1", channel=Channel.CHAT)
    sent(account, days_ago=2, conversation_id="email1", channel=Channel.EMAIL)
    SurveyRequestFactory(
        account=account,
        conversation_id="unknown1",
        channel="",
        closed_at=NOW - timedelta(days=1),
        status=S.INVALID,
        status_detail="Conversation not found in Intercom",  # the look-up failed: channel never known
    )
    result = run(account, chat_enabled=False)
    disabled = ClosureResult(Decision.INVALID, InvalidReason.CHANNEL_DISABLED)
    assert changes(result) == {"chat1": (SEND, disabled)}
    assert result.channel_unknown == 1  # said so, not guessed
    assert result.rows[-1].result.reason_label == "Channel not enabled for company"


def test_a_do_not_send_tag_makes_tagged_closes_do_not_send(account):
    sent(account, days_ago=3, conversation_id="t1", tags=["VIP"])
    sent(account, days_ago=3, conversation_id="t2", tags=["billing"])
    result = run(account, do_not_send_tags="fraud, vip")
    assert changes(result) == {"t1": (SEND, ClosureResult(Decision.DO_NOT_SEND, DoNotSendReason.SUPPRESSED_TAG))}


def test_an_email_never_looked_up_is_not_taken_for_a_missing_one(account):
    """The webhook named the customer only by contact id and the request was cancelled before the send
    looked the email up: the rules gave it the benefit of the doubt, and so does the replay. One whose
    look-up found no email stays invalid."""
    verdicts = {"customer_email_missing": None, "assignee_is_bot": None}  # as the live path stores them
    SurveyRequestFactory(
        account=account, conversation_id="unlooked", customer_email="", closed_at=NOW - timedelta(days=2),
        status=S.CANCELLED, reason=CancelReason.REOPENED, verdicts=verdicts,
    )  # fmt: skip
    SurveyRequestFactory(
        account=account, conversation_id="nobody", customer_email="", closed_at=NOW - timedelta(days=1),
        status=S.INVALID, decision=Decision.INVALID, reason=InvalidReason.INVALID_CUSTOMER,
        verdicts={**verdicts, "customer_email_missing": InvalidReason.INVALID_CUSTOMER.value},
    )  # fmt: skip
    result = run(account)
    assert changes(result) == {"unlooked": (REOPENED, SEND)}  # no delay now: nothing to cancel it
    assert result.baseline_mismatches == 1


def test_the_current_column_is_what_was_stored(account):
    rows = [
        {"sent": True},
        {
            "sent": True,
            "decision": Decision.DO_NOT_SEND,
            "reason": DoNotSendReason.BOT_ASSIGNEE,
            "assignee_kind": "bot",
        },
        {"status": S.SUPPRESSED, "decision": Decision.SUPPRESSED, "reason": SuppressionReason.SUPPRESSION_WINDOW},
        {"status": S.INVALID, "decision": Decision.INVALID, "reason": InvalidReason.EMPLOYEE_NOT_FOUND},
        {"status": S.INVALID, "decision": Decision.SEND, "status_detail": "Employee not found"},  # Stella said so
        {"status": S.CANCELLED, "reason": CancelReason.REOPENED},
        {"status": S.CANCELLED, "reason": CancelReason.SUPERSEDED},
        {"status": S.FAILED},
        {"status": S.SCHEDULED},
    ]
    for n, fields in enumerate(rows * 3):
        SurveyRequestFactory(account=account, closed_at=NOW - timedelta(days=n % 20, hours=n), **fields)
    SurveyRequestFactory(account=account, sent=True, closed_at=NOW - timedelta(days=40))  # before the days
    SurveyRequestFactory(account=AccountFactory(), sent=True, closed_at=NOW - timedelta(days=1))  # another account

    result = run(account)

    stored = Counter(
        ClosureResult(CANCELLED, reason) if status == S.CANCELLED else ClosureResult(decision, reason)
        for status, decision, reason in SurveyRequest.objects.filter(
            account=account, closed_at__gte=NOW - timedelta(days=30)
        ).values_list("status", "decision", "reason")
    )
    assert {row.result: row.current for row in result.rows} == stored
    assert result.closures == 27
    assert [row.result.label for row in result.rows][:2] == ["Sent", "Sent, flagged do not send"]


@responses.activate
def test_replayed_with_the_settings_that_made_them_nothing_changes(client, account, settings):
    """Closures the live path recorded from webhooks (delay, reopen, close again, window) and sent, dry run
    with the same settings: the replay agrees with every stored outcome."""
    settings.STELLA_API_URL, settings.INTERCOM_API_URL = "https://stella.test", "https://intercom.test"
    responses.post("https://stella.test/v1/requests", json={}, status=200)
    conversation = load_fixture("conversation_admin_closed_v2")["data"]["item"]
    responses.get(re.compile(r"https://intercom\.test/conversations/.*"), json=conversation)
    responses.get(
        re.compile(r"https://intercom\.test/admins/.*"), json={"name": "Tess", "email": "tess@support.example"}
    )
    account.integration.channel_delay = timedelta(minutes=10)
    account.integration.suppression_window = timedelta(days=7)
    account.integration.save()
    closed_at = NOW - timedelta(days=1)
    webhook("conversation_admin_closed", client, at=closed_at, part="p1")
    webhook("conversation_admin_opened", client, at=closed_at + timedelta(minutes=3))
    webhook("conversation_admin_closed", client, at=closed_at + timedelta(minutes=6), part="p2")
    webhook(
        "conversation_admin_closed", client, at=closed_at + timedelta(hours=1), part="p3", conversation="30100000002"
    )
    outcomes = sorted(SurveyRequest.objects.values_list("closure_id", "status", "reason"))
    # p3 waits: p2, still waiting too, may yet be cancelled; the send decides, p2 going first.
    assert outcomes == [("p1", S.CANCELLED, "reopened"), ("p2", S.SCHEDULED, ""), ("p3", S.SCHEDULED, "")]
    send_due(closed_at + timedelta(hours=2))
    outcomes = sorted(SurveyRequest.objects.values_list("closure_id", "status", "reason"))
    assert outcomes == [("p1", S.CANCELLED, "reopened"), ("p2", S.SENT, ""), ("p3", S.SUPPRESSED, "suppression_window")]

    result = run(account)
    assert (result.closures, result.changed_count, result.baseline_mismatches) == (3, 0, 0)

    result = run(account, channel_delay=timedelta(0), suppression_window=timedelta(0))
    assert [(c.current, c.proposed) for c in result.changed] == [(REOPENED, SEND), (SEND, ALREADY), (WINDOW, SEND)]


def webhook(name, client, *, at, part=None, conversation=None):
    payload = notification(name, id=f"notif-{name}-{at.timestamp()}", created_at=int(at.timestamp()))
    item = payload["data"]["item"]
    if part:
        item["conversation_parts"]["conversation_parts"][0]["id"] = part
    if conversation:
        item["id"] = conversation
    assert post_webhook(client, payload).status_code == 200


def snapshot() -> dict[str, object]:
    return {
        "survey requests": list(SurveyRequest.objects.order_by("pk").values_list("pk", "status", "updated_at")),
        "settings": list(IntegrationSettings.objects.values_list("pk", "updated_at")),
        "events": ConversationEvent.objects.count(),
        "calls": ApiRequest.objects.count(),
        "counts": list(DailyCount.objects.order_by("pk").values_list("pk", "count")),
    }


def test_a_dry_run_writes_nothing(account, admin_client):
    for n in range(5):
        sent(account, days_ago=n + 1, customer_email="ada@customer.example", channel=Channel.CHAT)
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        run(account, chat_enabled=False, suppression_window=timedelta(days=7), channel_delay=timedelta(hours=1))
        page = admin_client.get(
            reverse("admin:surveys_account_dry_run", args=[account.pk]),
            {"email_enabled": "on", "channel_delay": "1h", "suppression_window": "7d", "days": "30"},
        )
        call_command("dry_run", account.intercom_workspace_id, "--channels", "email", "--suppression-window", "7d")
    assert page.status_code == 200 and page.context["result"].changed_count == 5
    assert snapshot() == before
    writes = [
        q["sql"] for q in queries.captured_queries if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")
    ]
    # The admin's session and last-login bookkeeping aside, nothing is written.
    assert [sql for sql in writes if "surveys_" in sql or "django_q" in sql] == []


@pytest.mark.parametrize("closures", [10, 300])
def test_the_queries_do_not_grow_with_the_closures(account, closures, django_assert_max_num_queries):
    for n in range(closures):
        sent(
            account,
            days_ago=n % 29 + 0.5,
            conversation_id=f"c{n % (closures // 2)}",
            customer_email=f"c{n % 7}@x.example",
        )
        if n % 3 == 0:
            ConversationEvent.objects.create(
                account=account, conversation_id=f"c{n}", kind="reopened", occurred_at=NOW - timedelta(days=n % 29)
            )
    account = type(account).objects.select_related("integration").get(pk=account.pk)
    with django_assert_max_num_queries(4):
        result = dry_run(account, proposed_settings(account.integration, suppression_window=timedelta(days=7)), now=NOW)
    assert result.closures == closures


def test_only_the_rules_can_be_proposed(account):
    with pytest.raises(ValueError, match="not mode"):
        proposed_settings(account.integration, mode="live")


def test_admin_page_prefills_the_current_settings_and_shows_the_change(account, admin_client):
    account.integration.channel_delay = timedelta(minutes=10)
    account.integration.save()
    sent(account, days_ago=3, conversation_id="a1", customer_email="ada@customer.example")
    sent(account, days_ago=2, conversation_id="a2", customer_email="ada@customer.example")
    url = reverse("admin:surveys_account_dry_run", args=[account.pk])

    page = admin_client.get(url)
    assert page.status_code == 200 and page.context["result"] is None
    assert 'value="10m"' in page.content.decode()
    assert 'name="days" value="30"' in page.content.decode()

    page = admin_client.get(
        url,
        {"email_enabled": "on", "chat_enabled": "on", "channel_delay": "10m", "suppression_window": "7d", "days": "30"},
    )
    html = page.content.decode()
    assert "1 would come out differently" in html
    assert "Customer surveyed within the suppression window" in html
    second = SurveyRequest.objects.get(conversation_id="a2")
    assert reverse("admin:surveys_surveyrequest_change", args=[second.pk]) in html

    page = admin_client.get(url, {"channel_delay": "soon", "suppression_window": "7d", "days": "0"})
    assert page.context["result"] is None and set(page.context["form"].errors) == {"channel_delay", "days"}


def test_admin_page_takes_the_change_permission_on_the_account(account, client):
    viewer = User.objects.create_user("viewer", password="viewer-pw-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    assert client.get(reverse("admin:surveys_account_dry_run", args=[account.pk])).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="change_account"))
    assert client.get(reverse("admin:surveys_account_dry_run", args=[account.pk])).status_code == 200


def test_account_page_links_to_its_dry_run(account, admin_client):
    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk]))
    assert reverse("admin:surveys_account_dry_run", args=[account.pk]) in page.content.decode()


def test_command_prints_the_table(account, capsys):
    sent(account, days_ago=3, conversation_id="a1", customer_email="ada@customer.example", channel=Channel.CHAT)
    sent(account, days_ago=2, conversation_id="a2", customer_email="ada@customer.example", channel=Channel.EMAIL)
    sent(account, days_ago=1, conversation_id="bot", assignee_kind=AssigneeKind.BOT, decision=Decision.DO_NOT_SEND,
         reason=DoNotSendReason.BOT_ASSIGNEE)  # fmt: skip

    call_command("dry_run", str(account.pk), "--suppression-window", "7d", "--channels", "chat", "--days", "10")

    out = capsys.readouterr().out
    assert "3 closures from" in out and "Nothing was sent or changed." in out
    assert re.search(r"^suppression window +0 +7d$", out, re.MULTILINE)
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("Outcome"))
    assert header.split() == ["Outcome", "Reason", "Current", "Proposed", "Change"]
    assert any(line.startswith("Sent ") and line.split()[-3:] == ["2", "1", "\u22121"] for line in lines)
    assert any("Channel not enabled for company" in line and line.endswith("+1") for line in lines)
    assert "1 closure would come out differently." in out
    assert "a2" in out and reverse("admin:surveys_surveyrequest_change", args=[SurveyRequest.objects.get(
        conversation_id="a2").pk]) in out  # fmt: skip


def test_command_finds_the_account_by_workspace_id_or_says_it_cant(account, capsys):
    call_command("dry_run", account.intercom_workspace_id)
    assert "0 closures would come out differently." in capsys.readouterr().out
    with pytest.raises(CommandError, match="No account"):
        call_command("dry_run", "nope")
    with pytest.raises(CommandError, match="Unknown channel"):
        call_command("dry_run", account.intercom_workspace_id, "--channels", "sms")


# The dry run predicts the live path: the same webhooks, delivered to two accounts with two sets of rules
# (and every survey sent when due), end where the dry run of the first under the second's rules says.
BEFORE = {
    "channel_delay": timedelta(0),
    "suppression_window": timedelta(0),
    "chat_enabled": True,
    "do_not_send_tags": "fraud, dupe, do_not_send_stella",
}
AFTER = {
    "channel_delay": timedelta(minutes=10),
    "suppression_window": timedelta(days=1),
    "chat_enabled": False,
    "do_not_send_tags": "fraud, dupe, do_not_send_stella, vip",
}


def timeline(start, *, seed: int) -> list[tuple]:
    """Closes by three customers over three days, some reopened or tagged within minutes and closed again."""
    rng = random.Random(seed)
    steps, at = [], start
    for n in range(24):
        at += timedelta(minutes=rng.choice([20, 90, 240, 600]))
        conversation, customer = f"7730{n:03d}", rng.choice(["ada", "bea", "cai"])
        channel = rng.choice(["email", "chat"])
        steps.append((at, "close", conversation, customer, channel, f"{n}a"))
        roll = rng.random()
        if roll < 0.4:
            reopened = at + timedelta(minutes=rng.choice([3, 8, 14]))
            steps.append((reopened, "reopen", conversation))
            steps.append((reopened + timedelta(minutes=5), "close", conversation, customer, channel, f"{n}b"))
        elif roll < 0.55:
            steps.append((at + timedelta(minutes=rng.choice([4, 12])), "tag", conversation))
    return sorted(steps)


def deliver(client, workspace_id: str, steps: list[tuple]) -> None:
    """Each webhook at its time, every survey due by then sent first, as the cluster would."""
    for at, kind, conversation, *close in steps:
        send_due(at)
        if kind == "close":
            customer, channel, part = close
            name = "conversation_admin_closed_email_v2" if channel == "email" else "conversation_admin_closed_v2"
            payload = notification(
                name, app_id=workspace_id, id=f"n-{workspace_id}-{part}", created_at=int(at.timestamp())
            )
            item = payload["data"]["item"]
            item["id"] = conversation
            item["source"]["author"].update(id=f"contact-{customer}", email=f"{customer}@customer.example")
            item["contacts"]["contacts"][0]["id"] = f"contact-{customer}"
            item["conversation_parts"]["conversation_parts"][0]["id"] = f"part-{part}"
        else:
            name = "conversation_admin_opened" if kind == "reopen" else "conversation_part_tag_created"
            payload = notification(
                name, app_id=workspace_id, id=f"n-{workspace_id}-{kind}-{at}", created_at=int(at.timestamp())
            )
            item = payload["data"]["item"]
            item["id"] = conversation
            if kind == "tag":
                item["tags"]["tags"] = item["tags_added"]["tags"] = [{"type": "tag", "id": "9", "name": "VIP"}]
        assert post_webhook(client, payload).status_code == 200
    send_due(steps[-1][0] + timedelta(days=1))


def send_due(at) -> None:
    due = SurveyRequest.objects.filter(status=S.SCHEDULED, send_after__lte=at).order_by("send_after", "pk")
    for pk, send_after in due.values_list("pk", "send_after"):
        survey_request_send(pk, now=send_after)


@responses.activate
@pytest.mark.parametrize(("now", "proposed", "seed"), [(BEFORE, AFTER, 5), (AFTER, BEFORE, 5), (BEFORE, AFTER, 8)])
def test_the_dry_run_predicts_what_the_live_path_does_under_the_proposed_rules(client, settings, now, proposed, seed):
    settings.STELLA_API_URL, settings.INTERCOM_API_URL = "https://stella.test", "https://intercom.test"
    responses.post("https://stella.test/v1/requests", json={}, status=200)
    responses.get(
        re.compile(r"https://intercom\.test/admins/\d+"), json={"name": "Tess", "email": "tess@support.example"}
    )
    current, other = AccountFactory(intercom_workspace_id="wsnow"), AccountFactory(intercom_workspace_id="wsother")
    for account, rules in ((current, now), (other, proposed)):
        IntegrationSettings.objects.filter(account=account).update(**rules)
    steps = timeline(NOW - timedelta(days=12), seed=seed)
    deliver(client, "wsnow", steps)
    deliver(client, "wsother", steps)

    def stored(account) -> dict[tuple[str, object], ClosureResult]:
        rows = SurveyRequest.objects.filter(account=account).values_list(
            "conversation_id", "closed_at", "status", "decision", "reason"
        )
        return {
            (conversation, closed_at): ClosureResult(CANCELLED, reason)
            if status == S.CANCELLED
            else ClosureResult(decision, reason)
            for conversation, closed_at, status, decision, reason in rows
        }

    happened, live_under_proposed = stored(current), stored(other)
    outcomes = set(happened.values()) | set(live_under_proposed.values())
    assert len(outcomes) >= 6, outcomes  # sent, already surveyed, reopened, window, channel off, tagged…
    assert run(current).changed_count == 0  # its own rules: nothing changes

    result = run(current, changed_limit=1000, **proposed)
    predicted = dict(happened)
    predicted.update({(c.conversation_id, c.closed_at): c.proposed for c in result.changed})
    assert predicted == live_under_proposed
    assert result.baseline_mismatches == 0
    assert {row.result: row.proposed for row in result.rows if row.proposed} == Counter(live_under_proposed.values())


def test_a_survey_a_teammate_stopped_in_intercom_stays_stopped_in_the_replay(account):
    """Don't survey (the inbox app) is a person's act, not a rule's: the replay takes it as it was, so the current
    settings replay every closure as it went, and a proposal that would still make it wait keeps it stopped."""
    IntegrationSettings.objects.filter(account=account).update(channel_delay=timedelta(hours=1))
    waiting = SurveyRequestFactory(
        account=account, closed_at=NOW - timedelta(days=1), send_after=NOW, conversation_id="stopped-1"
    )
    assert survey_request_stop_in_intercom(waiting, admin_id="7", admin_name="Tess Teammate", now=NOW)
    result = run(account, suppression_window=timedelta(days=2))
    stopped = ClosureResult(CANCELLED, CancelReason.STOPPED_IN_INTERCOM)
    assert (result.baseline_mismatches, counts(result)) == (0, ({stopped: 1}, {stopped: 1}))


def test_quiet_hours_in_each_customers_zone_say_how_many_customers_zones_are_unknown(account, capsys):
    """Proposing quiet hours kept in each customer's time zone: closures whose customer's zone the send never found
    are counted (read in the account's zone); not proposing them counts none."""
    sent(account, days_ago=3, conversation_id="z1", customer_time_zone="Europe/Dublin")
    sent(account, days_ago=2, conversation_id="z2", customer_time_zone="unknown")
    sent(account, days_ago=1, conversation_id="z3")  # never asked
    assert run(account, quiet_hours="21:00-08:00", quiet_hours_zone="customer").zones_unknown == 2
    assert run(account, quiet_hours="21:00-08:00").zones_unknown == 0
    assert run(account, quiet_hours_zone="customer").zones_unknown == 0  # no quiet hours to keep
    call_command("dry_run", str(account.pk), "--quiet-hours", "21:00-08:00", "--quiet-hours-zone", "customer")
    assert "2 closures have no time zone of their customer's" in capsys.readouterr().out
