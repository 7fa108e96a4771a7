import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from django.utils import timezone

from integrations import messages
from integrations.intercom.signature import signature_for
from sandbox.demo import (
    BILLING_TEAM,
    BOT,
    DELAYED_WORKSPACE,
    MAX_DAYS_SINCE_REPLY,
    NEWCOMER,
    ONBOARDING_TEAM,
    QUIET_WORKSPACE,
    RULES_WORKSPACE,
    SAMPLE_PERCENT,
    SAMPLE_WORKSPACE,
    TEAMMATES,
    WORKSPACE,
    demo_accounts_ensure,
    demo_customers_create,
    demo_quiet_hours_now,
    demo_sample_next_kept,
    sandbox_conversation_create,
    sandbox_newcomer_forget,
    sandbox_people_create,
)
from sandbox.demo_inbox import (
    demo_low_rating_close,
    demo_recover,
    demo_recovery_settings,
    demo_stop_from_inbox,
    one_star_conversation_id,
)
from sandbox.samples import Person, closed_conversation, closed_conversation_v1, reopened_conversation
from surveys.decisions.rules import Decision
from surveys.loop.employees import stella_employees_sync, teammates_unknown_to_stella
from surveys.loop.feedback import stella_feedback_pull
from surveys.models import Account, SurveyOutcome, SurveyRequest
from surveys.reporting.presenters import survey_request_outcome

_NOT_FOUND = messages.STELLA_EMPLOYEE_NOT_FOUND.words
_NOT_ENABLED = messages.STELLA_CHANNEL_NOT_ENABLED.words

TESS, OMAR, INES = TEAMMATES
WEBHOOK_PATH = "/webhooks/intercom/"


@dataclass
class Scenario:
    title: str
    expect: str
    conversation_id: str
    webhooks: list[dict[str, Any]]
    outcome: SurveyOutcome  # where it ends up
    waits: bool = False  # waits out a channel delay first: still waiting when the report is printed
    after: str = ""  # a conversation whose closure must be recorded before this one is posted


class Command(BaseCommand):
    help = (
        "Post signed sample Intercom webhooks to the portal `make run` started, then say what became of each: "
        f"closures sent, sent flagged do not send, invalid ({_NOT_FOUND}; {_NOT_ENABLED}), "
        "suppressed, cancelled by a reopen, one waiting out a channel delay, closures left out by the rules of "
        "whom to survey (a team, too few replies, a reply long ago, a sample) or waiting for the quiet hours to end, "
        "and one credited to the last teammate to reply. "
        "The portal is looked for at http://127.0.0.1:$PORT (PORT from the environment, 8000 if unset): "
        "run `make demo PORT=…` with the PORT you gave `make run`, or pass --url."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--url",
            default=default_url(),
            help=(
                "The portal's Intercom webhook URL. Default: http://127.0.0.1:$PORT/webhooks/intercom/, where "
                "`make run` listens (PORT from the environment, 8000 if unset; "
                f"now {settings.PORT})."
            ),
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=15,
            help="Seconds to wait for the outcomes before reporting them (0: report at once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("The demo needs the sandbox (SANDBOX=true): it would otherwise survey real people.")
        # The report alone: the read-back's calls to Stella log INFO lines, which would land between the report's
        # lines (the portal's own go to its terminal). Warnings still show.
        logging.disable(logging.INFO)
        try:
            self.run(options["url"], wait=options["wait"])
        finally:
            logging.disable(logging.NOTSET)

    def run(self, url: str, *, wait: float) -> None:
        self.check_portal(url)
        sandbox_people_create()
        if sandbox_newcomer_forget():
            self.stdout.write(f"{NEWCOMER[1]} is new to Stella again: removed from the sandbox's Stella employees.")
        accounts, put_back = demo_accounts_ensure()
        for note in put_back:
            self.stdout.write(f"Put back the demo's settings ({note}): the scenarios rely on them.")
        # Conversation ids and customers of this run: unique to the millisecond, so runs never meet.
        run = str(time.time_ns() // 1_000_000)
        quiet, moved = demo_quiet_hours_now(timezone.now())
        how = "set for this run, around now" if moved else "kept from an earlier run: a close now still falls in them"
        self.stdout.write(f"Demo Company, quiet hours: quiet hours {quiet} UTC, {how}.")
        now = int(time.time())
        scenarios = [*self.scenarios(now=now, run=run), *self.rule_scenarios(now=now, run=run)]
        for scenario in scenarios:
            if scenario.after:
                self.wait_for([scenario.after], seconds=min(wait, 10))
            for webhook in scenario.webhooks:
                self.post(url, webhook)
        self.stdout.write(f"Posted {sum(len(s.webhooks) for s in scenarios)} webhooks to {url}")
        self.report(scenarios, wait=wait, base=portal_base(url))
        self.read_back(accounts, base=portal_base(url))
        self.inbox_app_and_recovery(url, run=run, wait=wait)

    def inbox_app_and_recovery(self, url: str, *, run: str, wait: float) -> None:
        """Inbox app and service recovery: a waiting conversation stopped from Intercom, a 1★ answer recovered."""
        base, now = portal_base(url), int(time.time())
        stopped = f"{run}11"  # the scenarios above use {run}0 to {run}9
        self.post(url, closed_conversation(app_id=DELAYED_WORKSPACE, conversation_id=stopped, at=now,
                                           customer=demo_customers_create(f"{run}s")[0], teammate=TESS))  # fmt: skip
        self.wait_for([stopped], seconds=min(wait, 10))
        self.stdout.write(
            f"Inside Intercom: a waiting conversation, {stopped}, and Don't survey pressed in the inbox app"
        )
        self.stdout.write(f"    then:     {demo_stop_from_inbox(base, stopped)}")
        self.stdout.write(f"    see it as Intercom would: {base}/sandbox/intercom/inbox?workspace={DELAYED_WORKSPACE}"
                          f"&conversation={stopped}")  # fmt: skip
        account = demo_recovery_settings(base)
        rated = one_star_conversation_id(run)
        self.post(url, demo_low_rating_close(rated, run=run, now=now))
        self.stdout.write(f"Service recovery: conversation {rated}, sent and rated 1★")
        with emails_kept() as emails:
            done = demo_recover(
                account, rated, wait=max(wait, 10),
                sent=lambda: SurveyRequest.objects.filter(conversation_id=rated, status=SurveyRequest.Status.SENT).exists(),
            )  # fmt: skip
        self.stdout.write("    then:     " + "; ".join(done))
        for email in emails:
            self.stdout.write(f"    emailed:  {email.subject}, to {', '.join(email.to)}")
        self.stdout.write(f"    counted on the Satisfaction report: {base}/status/teammates/")

    def read_back(self, accounts: list[Account], *, base: str) -> None:
        """Read Stella's employees and feedback now, as the cluster does every STELLA_SYNC_MINUTES: the delivery
        statuses of what was sent, and who Stella won't recognise."""
        self.stdout.write("Read back from Stella (the cluster does this every minute with the sandbox):")
        for account in accounts:
            now = timezone.now()
            employees = stella_employees_sync(account, now=now)
            feedback = stella_feedback_pull(account, now=now)
            unknown = ", ".join(teammates_unknown_to_stella(account).values_list("name", flat=True)) or "nobody"
            self.stdout.write(f"- {account.name}: {feedback}\n    {employees}; Stella won't recognise: {unknown}")
        self.stdout.write(
            f"The sandbox's customers answer {settings.SANDBOX_FEEDBACK_SHARE:.0%} of the surveys delivered, "
            f"{settings.SANDBOX_FEEDBACK_DELAY_SECONDS} s later: their ratings show within a couple of minutes on "
            f"the status page and its Satisfaction report ({base}/status/teammates/)."
        )

    def scenarios(self, *, now: int, run: str) -> list[Scenario]:
        ids = [f"{run}{n}" for n in range(10)]
        # Customers of this run only (ada+<run>@…): Demo Company's 7-day suppression window holds back
        # Ada's second chat below, never a customer an earlier run surveyed.
        ada, bea, cai, dee = demo_customers_create(run)
        # The older shape has no channel: the sender asks the (sandbox) Intercom API for it.
        sandbox_conversation_create(ids[2], channel="chat", customer=cai, teammate=OMAR, started_at=now - 600)
        tagged = closed_conversation(app_id=WORKSPACE, conversation_id=ids[4], at=now, customer=dee, teammate=OMAR)
        tagged["data"]["item"]["tags"]["tags"] = [{"type": "tag", "id": "1", "name": "do_not_send_stella"}]
        demo: dict[str, Any] = {"app_id": WORKSPACE, "at": now}
        delayed: dict[str, Any] = {"app_id": DELAYED_WORKSPACE, "at": now}
        return [
            Scenario(
                "Closed chat",
                "sent",
                ids[0],
                [closed_conversation(conversation_id=ids[0], customer=ada, teammate=TESS, **demo)],
                SurveyOutcome.SENT,
            ),
            Scenario(
                "Closed chat; customer and teammate known only by id",
                "sent, after looking both up in Intercom",
                ids[1],
                [
                    closed_conversation(
                        conversation_id=ids[1],
                        customer=(bea[0], None, None),
                        teammate=(INES[0], INES[1], None),
                        **demo,
                    )
                ],
                SurveyOutcome.SENT,
            ),  # fmt: skip
            Scenario(
                "Closed chat, older webhook shape (no channel)",
                "sent, after looking the channel up in Intercom",
                ids[2],
                [closed_conversation_v1(conversation_id=ids[2], customer=cai, teammate=OMAR, **demo)],
                SurveyOutcome.SENT,
            ),
            Scenario(
                "Closed by the Fin bot",
                "sent, flagged do not send: Stella records it, nobody is surveyed",
                ids[3],
                [closed_conversation(conversation_id=ids[3], customer=ada, teammate=BOT, bot=True, **demo)],
                SurveyOutcome.DO_NOT_SEND,
            ),
            Scenario(
                "First message tagged do_not_send_stella",
                "sent, flagged do not send: Stella records it, nobody is surveyed",
                ids[4],
                [tagged],
                SurveyOutcome.DO_NOT_SEND,
            ),
            Scenario(
                f"Closed by {NEWCOMER[1]}, a teammate Stella has no employee for",
                f"invalid: {_NOT_FOUND} (Stella's answer; once Stella's employees are synced, decided here)",
                ids[5],
                [closed_conversation(conversation_id=ids[5], customer=dee, teammate=NEWCOMER, **demo)],
                SurveyOutcome.INVALID,
            ),
            Scenario(
                "Closed email, a channel Demo Company has turned off",
                f"invalid: {_NOT_ENABLED}, decided here without calling Stella",
                ids[6],
                [closed_conversation(conversation_id=ids[6], channel="email", customer=bea, teammate=TESS, **demo)],
                SurveyOutcome.INVALID,
            ),
            Scenario(
                "Ada's second chat, within Demo Company's 7-day suppression window",
                "suppressed (Ada was surveyed for the first closed chat)",
                ids[7],
                [closed_conversation(conversation_id=ids[7], customer=ada, teammate=OMAR, **demo)],
                SurveyOutcome.SUPPRESSED,
                after=ids[0],
            ),
            Scenario(
                "Closed, then reopened within the 1-minute channel delay",
                "cancelled",
                ids[8],
                [
                    closed_conversation(conversation_id=ids[8], customer=bea, teammate=TESS, **delayed),
                    reopened_conversation(
                        app_id=DELAYED_WORKSPACE, conversation_id=ids[8], at=now + 5, customer=bea, teammate=TESS
                    ),
                ],
                SurveyOutcome.CANCELLED,
            ),
            Scenario(
                "Closed email, with a 1-minute channel delay",
                "sent about a minute later",
                ids[9],
                [closed_conversation(conversation_id=ids[9], channel="email", customer=cai, teammate=INES, **delayed)],
                SurveyOutcome.SENT,
                waits=True,
            ),
        ]

    @staticmethod
    def rule_scenarios(*, now: int, run: str) -> list[Scenario]:
        """Closures the rules of whom to survey leave out (Demo Company, rules; Demo Company, sample), one the quiet
        hours hold, and one credited to the last teammate to reply."""
        team, few, old, quiet, credit, day = (f"{run}2{n}" for n in range(6))  # {run}20 to {run}25
        customer, in_japan = demo_customers_create(f"{run}r")[:2]
        # The sandbox's Intercom has this conversation with no teammate reply: the send's look-up counts none.
        sandbox_conversation_create(few, channel="chat", customer=customer, teammate=TESS, started_at=now - 600)
        # ...and this one, of the Billing team with nobody assigned, with Tess's reply, then Omar's.
        nobody: Person = ("", None, None)  # no teammate assigned
        sandbox_conversation_create(
            credit, channel="chat", customer=customer, teammate=nobody, started_at=now - 1200,
            replies=((TESS, now - 900), (OMAR, now - 600)), team_id=BILLING_TEAM,
        )  # fmt: skip
        rules: dict[str, Any] = {"app_id": RULES_WORKSPACE, "at": now, "customer": customer, "teammate": TESS}
        long_ago = now - (MAX_DAYS_SINCE_REPLY + 3) * 86400
        left_out = "suppressed, left out"
        return [
            Scenario(
                "Closed chat of the Onboarding team, a team Demo Company, rules leaves out",
                f"{left_out} ({messages.TEAM_LEFT_OUT.words}), decided here",
                team,
                [closed_conversation(conversation_id=team, team_id=ONBOARDING_TEAM, **rules)],
                SurveyOutcome.SUPPRESSED,
            ),
            Scenario(
                "Closed chat with no teammate reply (Demo Company, rules wants at least one)",
                f"{left_out} ({messages.TOO_FEW_REPLIES.words}), after counting the replies in Intercom",
                few,
                [closed_conversation(conversation_id=few, **rules)],
                SurveyOutcome.SUPPRESSED,
            ),
            Scenario(
                f"Closed {MAX_DAYS_SINCE_REPLY + 3} days after a teammate last replied "
                f"(Demo Company, rules: at most {MAX_DAYS_SINCE_REPLY})",
                f"{left_out} ({messages.REPLY_TOO_OLD.words}), decided here",
                old,
                [closed_conversation(conversation_id=old, last_admin_reply_at=long_ago, **rules)],
                SurveyOutcome.SUPPRESSED,
            ),
            Scenario(
                "Closed chat during Demo Company, quiet hours' quiet hours",
                f"{messages.QUIET_HOURS.words.lower()}: not left out, sent when they end",
                quiet,
                [
                    closed_conversation(
                        app_id=QUIET_WORKSPACE, conversation_id=quiet, at=now, customer=customer, teammate=TESS
                    )
                ],  # fmt: skip
                SurveyOutcome.WAITING,
                waits=True,
            ),
            Scenario(
                f"Closed chat of {in_japan[1]}'s, in Japan, at the same time (Demo Company, quiet hours keeps them in "
                "each customer's time zone)",
                "sent: outside the quiet hours in Asia/Tokyo, where Intercom says she is",
                day,
                [
                    closed_conversation(
                        app_id=QUIET_WORKSPACE, conversation_id=day, at=now, customer=in_japan, teammate=TESS
                    )
                ],  # fmt: skip
                SurveyOutcome.SENT,
            ),
            Scenario(
                "Closed chat of the Billing team, assigned to nobody in particular (Demo Company, rules credits the "
                "last teammate to reply)",
                f"sent, crediting {OMAR[1]}, who replied after {TESS[1]}, after reading the replies in Intercom",
                credit,
                [
                    closed_conversation(
                        conversation_id=credit,
                        team_id=BILLING_TEAM,
                        last_admin_reply_at=now - 600,
                        **{**rules, "teammate": nobody},
                    )
                ],  # fmt: skip
                SurveyOutcome.SENT,
            ),
            *Command.sample_scenarios(now=now, run=run, customer=customer),
        ]

    @staticmethod
    def sample_scenarios(*, now: int, run: str, customer: Person) -> list[Scenario]:
        """Two closed chats of Omar's in a row in Demo Company, sample: one is in its sample, the other not. Which
        comes first depends on where Omar's sample stands (each run adds two closures, and sampling goes by the
        order a teammate's closures are recorded), so the demo asks, and posts the other one second."""
        kept, left = f"{run}25", f"{run}26"
        sample: dict[str, Any] = {"app_id": SAMPLE_WORKSPACE, "at": now, "customer": customer, "teammate": OMAR}
        scenarios = [
            Scenario(
                f"Closed chat of {OMAR[1]}'s, picked for Demo Company, sample's {SAMPLE_PERCENT}% sample",
                f"sent: Demo Company, sample surveys {SAMPLE_PERCENT}% of each teammate's closures, and picked this one",
                kept,
                [closed_conversation(conversation_id=kept, **sample)],
                SurveyOutcome.SENT,
            ),
            Scenario(
                f"Closed chat of {OMAR[1]}'s, not picked for Demo Company, sample's {SAMPLE_PERCENT}% sample",
                f"suppressed, left out ({messages.NOT_SAMPLED.words}), decided here, and the same however often "
                "Intercom delivers it",
                left,
                [closed_conversation(conversation_id=left, **sample)],
                SurveyOutcome.SUPPRESSED,
            ),
        ]
        first, second = scenarios if demo_sample_next_kept(OMAR[0]) else reversed(scenarios)
        second.after = first.conversation_id  # recorded in this order: the second takes the next place
        return [first, second]

    def check_portal(self, url: str) -> None:
        """Is the portal there? Intercom's URL check (HEAD) answers 200; say plainly what to do when nothing does."""
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            tried = f"PORT {settings.PORT}" if url == default_url() else "the --url given"
            raise CommandError(
                f"Nothing answers at {url} ({reason}).\n"
                "Start the portal first (make run, in another terminal), and give the demo the port it uses: "
                f"this looked at {tried}. If make run has another port (make run PORT=8010, or PORT "
                "exported in its terminal), run\n"
                "    make demo PORT=8010\n"
                "or pass the URL:\n"
                f"    DEBUG=true .venv/bin/python manage.py send_demo_webhooks --url http://127.0.0.1:8010{WEBHOOK_PATH}"
            ) from None
        if status != 200:
            raise CommandError(
                f"Something answers at {url}, but not as the portal's webhook URL (HTTP {status} to HEAD). "
                "Is another program on that port? Give the demo make run's port (make demo PORT=…) or --url."
            )

    def post(self, url: str, webhook: dict[str, Any]) -> None:
        body = json.dumps(webhook).encode()
        signature = signature_for(body, settings.INTERCOM_CLIENT_SECRET)
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json", "X-Hub-Signature": signature}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            hint = " (the portal's INTERCOM_CLIENT_SECRET differs from this one)" if exc.code == 401 else ""
            raise CommandError(f"The portal at {url} refused a demo webhook: HTTP {exc.code}{hint}.") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CommandError(
                f"Could not post to {url} ({getattr(exc, 'reason', exc)}). Did the portal stop?"
            ) from None

    @staticmethod
    def recorded(conversation_ids: list[str]) -> dict[str, SurveyRequest]:
        return {
            request.conversation_id: request
            for request in SurveyRequest.objects.filter(conversation_id__in=conversation_ids)
        }

    def wait_for(self, conversation_ids: list[str], *, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.recorded(conversation_ids)) < len(conversation_ids) and time.monotonic() < deadline:
            time.sleep(0.2)

    def report(self, scenarios: list[Scenario], *, wait: float, base: str) -> None:
        deadline = time.monotonic() + wait
        while True:
            found = self.recorded([s.conversation_id for s in scenarios])
            if all(self.settled(s, found.get(s.conversation_id)) for s in scenarios) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        for scenario in scenarios:
            request = found.get(scenario.conversation_id)
            outcome = "not processed yet" if request is None else self.describe(request)
            self.stdout.write(f"- {scenario.title} (conversation {scenario.conversation_id})")
            self.stdout.write(f"    expected: {scenario.expect}\n    now:      {outcome}")
        self.summarize(scenarios, found, base=base, waited=wait > 0)

    @staticmethod
    def settled(scenario: Scenario, request: SurveyRequest | None) -> bool:
        if request is None:
            return False
        return request.outcome != SurveyOutcome.WAITING or (
            scenario.waits and request.status == SurveyRequest.Status.SCHEDULED
        )

    def summarize(self, scenarios: list[Scenario], found: dict[str, SurveyRequest], *, base: str, waited: bool) -> None:
        as_expected = waiting = 0
        for scenario in scenarios:
            request = found.get(scenario.conversation_id)
            if request is not None and request.outcome == scenario.outcome:
                as_expected += 1
            elif request is not None and scenario.waits and self.settled(scenario, request):
                as_expected, waiting = as_expected + 1, waiting + 1
        line = f"As expected: {as_expected} of {len(scenarios)}"
        self.stdout.write(line + (f" ({waiting} still waiting out its channel delay)." if waiting else "."))
        if waited and not found:
            self.stdout.write(
                self.style.WARNING(
                    "None of them is in this database yet. If the portal is busy, look again in a moment; if it "
                    "runs from another directory or DATABASE_URL, its own admin shows them."
                )
            )
        self.stdout.write(
            f"Status page, as support / support (Demo Company): {base}/status/\n"
            f"    Invalid Requests: {_NOT_FOUND}, {_NOT_ENABLED}; Suppressed: Ada's second chat\n"
            f"Admin, as admin / admin (every account, every rule's verdict): {base}/admin/surveys/surveyrequest/"
        )

    @staticmethod
    def describe(request: SurveyRequest) -> str:
        text = survey_request_outcome(request).lower()
        if request.status == SurveyRequest.Status.SCHEDULED:
            text += f" for {request.send_after:%H:%M:%S} UTC"
        if request.reason and request.outcome != SurveyOutcome.INVALID:
            text += f" ({request.get_reason_display()})"
        elif request.status_detail:
            text += f" ({request.status_detail})"
        if request.attribution and request.decision == Decision.SEND:
            text += f", crediting {request.teammate_name or request.teammate_email}: {request.attribution}"
        return text


@contextmanager
def emails_kept() -> Iterator[list[EmailMessage]]:
    """The emails the demo sends itself (service recovery's), kept to be named in a line each: with the console
    backend (make run's), each would print whole in the middle of the report; the demo keeps them in memory instead.
    With another backend (SMTP, a file) they go as it sends them, and are named only if it keeps them in memory."""
    console = settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
    backend = "django.core.mail.backends.locmem.EmailBackend" if console else settings.EMAIL_BACKEND
    kept: list[EmailMessage] = []
    with override_settings(EMAIL_BACKEND=backend):
        before = len(getattr(mail, "outbox", []))
        try:
            yield kept
        finally:
            kept.extend(getattr(mail, "outbox", [])[before:])


def default_url() -> str:
    """Where `make run` listens: 127.0.0.1 on PORT (from the environment, 8000 if unset)."""
    return f"http://127.0.0.1:{settings.PORT}{WEBHOOK_PATH}"


def portal_base(url: str) -> str:
    """http://127.0.0.1:8000/webhooks/intercom/ → http://127.0.0.1:8000"""
    return url.removesuffix("/").removesuffix(WEBHOOK_PATH.rstrip("/")).rstrip("/")
