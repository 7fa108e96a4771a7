import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.intercom.signature import signature_for
from sandbox.demo import (
    BOT,
    CUSTOMERS,
    DELAYED_WORKSPACE,
    TEAMMATES,
    WORKSPACE,
    sandbox_conversation_create,
    sandbox_people_create,
)
from sandbox.samples import closed_conversation, closed_conversation_v1, reopened_conversation
from surveys.models import SurveyRequest
from surveys.presenters import survey_request_outcome

ADA, BEA, CAI, DEE = CUSTOMERS
TESS, OMAR, INES = TEAMMATES


@dataclass
class Scenario:
    title: str
    expect: str
    conversation_id: str
    webhooks: list[dict[str, Any]]


class Command(BaseCommand):
    help = (
        "Post signed sample Intercom webhooks to the running portal (make run): a closed chat, a closed "
        "email, an older-shape closure, a bot, a tagged first message, and a reopen within the channel delay."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=f"{settings.PORTAL_URL}/webhooks/intercom/")
        parser.add_argument("--wait", type=float, default=15, help="Seconds to wait for the outcomes (0: don't).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("The demo needs the sandbox (SANDBOX=true): it would otherwise survey real people.")
        sandbox_people_create()
        scenarios = self.scenarios(now=int(time.time()))
        for scenario in scenarios:
            for webhook in scenario.webhooks:
                self.post(options["url"], webhook)
        self.stdout.write(f"Posted {sum(len(s.webhooks) for s in scenarios)} webhooks to {options['url']}")
        self.report(scenarios, wait=options["wait"])

    def scenarios(self, *, now: int) -> list[Scenario]:
        ids = [str(now * 10 + n) for n in range(7)]
        # The older shape has no channel: the sender asks the (sandbox) Intercom API for it.
        sandbox_conversation_create(ids[2], channel="chat", customer=CAI, teammate=OMAR, started_at=now - 600)
        tagged = closed_conversation(app_id=WORKSPACE, conversation_id=ids[4], at=now, customer=DEE, teammate=OMAR)
        tagged["data"]["item"]["tags"]["tags"] = [{"type": "tag", "id": "1", "name": "do_not_send_stella"}]
        return [
            Scenario(
                "Closed chat",
                "sent",
                ids[0],
                [closed_conversation(app_id=WORKSPACE, conversation_id=ids[0], at=now, customer=ADA, teammate=TESS)],
            ),
            Scenario(
                "Closed email; customer and teammate known only by id",
                "sent, after looking both up in Intercom",
                ids[1],
                [
                    closed_conversation(
                        app_id=WORKSPACE,
                        conversation_id=ids[1],
                        at=now,
                        channel="email",
                        customer=(BEA[0], None, None),
                        teammate=(INES[0], INES[1], None),
                    )
                ],
            ),  # fmt: skip
            Scenario(
                "Closed chat, older webhook shape (no channel)",
                "sent, after looking the channel up in Intercom",
                ids[2],
                [closed_conversation_v1(app_id=WORKSPACE, conversation_id=ids[2], at=now, customer=CAI, teammate=OMAR)],
            ),
            Scenario(
                "Closed by the Fin bot",
                "do not send (sent to Stella flagged do_not_send)",
                ids[3],
                [
                    closed_conversation(
                        app_id=WORKSPACE, conversation_id=ids[3], at=now, customer=ADA, teammate=BOT, bot=True
                    )
                ],
            ),
            Scenario(
                "First message tagged do_not_send_stella",
                "do not send (sent to Stella flagged do_not_send)",
                ids[4],
                [tagged],
            ),
            Scenario(
                "Closed, then reopened within the 1-minute channel delay",
                "cancelled",
                ids[5],
                [
                    closed_conversation(
                        app_id=DELAYED_WORKSPACE, conversation_id=ids[5], at=now, customer=BEA, teammate=TESS
                    ),
                    reopened_conversation(
                        app_id=DELAYED_WORKSPACE, conversation_id=ids[5], at=now + 5, customer=BEA, teammate=TESS
                    ),
                ],
            ),
            Scenario(
                "Closed, with a 1-minute channel delay",
                "sent about a minute later",
                ids[6],
                [
                    closed_conversation(
                        app_id=DELAYED_WORKSPACE, conversation_id=ids[6], at=now, customer=CAI, teammate=INES
                    )
                ],
            ),
        ]

    def post(self, url: str, webhook: dict[str, Any]) -> None:
        body = json.dumps(webhook).encode()
        signature = signature_for(body, settings.INTERCOM_CLIENT_SECRET)
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json", "X-Hub-Signature": signature}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.URLError as exc:
            raise CommandError(f"Could not post to {url} ({exc}). Is the portal running (make run)?") from None

    def report(self, scenarios: list[Scenario], *, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            found = {
                request.conversation_id: request
                for request in SurveyRequest.objects.filter(conversation_id__in=[s.conversation_id for s in scenarios])
            }
            settled = all(
                s.conversation_id in found
                and found[s.conversation_id].status not in (SurveyRequest.Status.SENDING,)
                and (found[s.conversation_id].status != SurveyRequest.Status.SCHEDULED or "minute" in s.expect)
                for s in scenarios
            )
            if settled or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        for scenario in scenarios:
            request = found.get(scenario.conversation_id)
            outcome = "not processed yet" if request is None else self.describe(request)
            self.stdout.write(f"- {scenario.title} (conversation {scenario.conversation_id})")
            self.stdout.write(f"    expected: {scenario.expect}\n    now:      {outcome}")
        self.stdout.write(f"See them in the admin: {settings.PORTAL_URL}/admin/surveys/surveyrequest/")

    @staticmethod
    def describe(request: SurveyRequest) -> str:
        text = survey_request_outcome(request).lower()
        if request.status == SurveyRequest.Status.SCHEDULED:
            text += f" for {request.send_after:%H:%M:%S} UTC"
        if request.status_detail:
            text += f" ({request.status_detail})"
        return text
