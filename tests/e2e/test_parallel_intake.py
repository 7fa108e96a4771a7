"""Several processes acting on stored webhooks at once, on PostgreSQL: each conversation's events still applied
in created_at order (a reopen right after a close cancels it, whichever process takes which), no closure
recorded twice, nothing sent twice."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from integrations.models import InboundWebhook
from sandbox.demo import sandbox_people_create
from sandbox.models import StellaSandboxRequest
from surveys.delivery.sending import survey_requests_send_due
from surveys.models import SurveyRequest
from tests.e2e.test_cluster_faults import FINAL, ROOT, database_url, start_cluster, stop
from tests.factories import AccountFactory
from tests.helpers import notification, post_webhook, sign, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel drains need PostgreSQL's row locks"),
]

CONVERSATIONS = 60
DRAINS = 3
# Small batches, so each conversation's close and reopen fall in different batches, often of different drains.
INTAKE = {"INTAKE_BATCH_SIZE": "4", "INTAKE_DRAINS": str(DRAINS), "INTAKE_BATCH_SECONDS": "5"}
# A drain says when it is ready, then waits for the line that tells every drain to go at once.
DRAIN = """
import os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from surveys.intake.process import inbound_webhooks_process_pending
print("ready", flush=True)
sys.stdin.readline()
print(inbound_webhooks_process_pending())
"""


def closed(conversation: str, *, at: int, notification_id: str, workspace: str, shape: str = "") -> dict:
    """A close; `shape="_v2"`: the newer shape, which names the channel, so nothing is looked up before sending."""
    payload = notification(f"conversation_admin_closed{shape}", id=notification_id, created_at=at, app_id=workspace)
    item = payload["data"]["item"]
    item["id"] = conversation
    # A customer of its own per conversation: the suppression window isn't what is tested here.
    customer = {"id": f"user-{conversation}", "email": f"{conversation}@customer.example"}
    if shape:
        item["source"]["author"].update(customer)
        item["contacts"]["contacts"][0]["id"] = customer["id"]
    else:
        item["user"].update(customer)
    return payload


def reopened(conversation: str, *, at: int, workspace: str) -> dict:
    payload = notification("conversation_admin_opened", id=f"reopen-{conversation}", created_at=at, app_id=workspace)
    payload["data"]["item"]["id"] = conversation
    return payload


def close_then_reopen(workspace: str) -> list[dict]:
    """Every conversation closed, and reopened 30 s later; half the reopens delivered before their close.
    Conversations interleave: each one's close and reopen are 30 others apart in created_at order."""
    start = int(timezone.now().timestamp()) - 120
    payloads = []
    for n in range(CONVERSATIONS):
        conversation = f"{workspace}-{n}"
        pair = [
            closed(conversation, at=start + n, notification_id=f"close-{conversation}", workspace=workspace),
            reopened(conversation, at=start + n + 30, workspace=workspace),
        ]
        payloads += reversed(pair) if n % 2 else pair
    return payloads


def assert_applied_in_order(workspace: str) -> None:
    """Every webhook stored before any drain began: each close acted on before its reopen."""
    processed_at = dict(
        InboundWebhook.objects.filter(workspace_id=workspace).values_list("notification_id", "processed_at")
    )
    for n in range(CONVERSATIONS):
        conversation = f"{workspace}-{n}"
        assert processed_at[f"close-{conversation}"] <= processed_at[f"reopen-{conversation}"], conversation


def assert_every_close_cancelled_by_its_reopen(workspace: str) -> None:
    webhooks = InboundWebhook.objects.filter(workspace_id=workspace)
    assert Counter(webhooks.values_list("status", flat=True)) == {"processed": 2 * CONVERSATIONS}
    requests_ = SurveyRequest.objects.filter(account__intercom_workspace_id=workspace)
    assert requests_.count() == CONVERSATIONS
    assert Counter(requests_.values_list("conversation_id", flat=True)).most_common(1)[0][1] == 1
    assert set(requests_.values_list("status", "status_detail")) == {
        (SurveyRequest.Status.CANCELLED, "Reopened during the channel delay")
    }


def test_drains_side_by_side_apply_each_conversation_in_order(client):
    account = AccountFactory(integration__channel_delay=timedelta(minutes=10))
    workspace = account.intercom_workspace_id
    for payload in close_then_reopen(workspace):
        assert post_webhook(client, payload, process=False).status_code == 200
    env = {**os.environ, **INTAKE, "INTAKE_BATCH_SECONDS": "60", "DATABASE_URL": database_url(), "LOG_LEVEL": "WARNING"}
    drains = [
        subprocess.Popen(
            [sys.executable, "-c", DRAIN], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(DRAINS)
    ]
    # Every drain started before any begins (not needed for correctness: it makes them work side by side).
    assert [drain.stdout.readline() for drain in drains] == ["ready\n"] * DRAINS
    for drain in drains:
        drain.stdin.write("go\n")
        drain.stdin.flush()
    counts = []
    for drain in drains:
        out, _ = drain.communicate(timeout=120)
        assert drain.returncode == 0
        counts.append(int(out.strip().splitlines()[-1]))
    assert sum(counts) == 2 * CONVERSATIONS
    assert sum(1 for count in counts if count) >= 2, counts  # they did work side by side
    assert_applied_in_order(workspace)
    assert_every_close_cancelled_by_its_reopen(workspace)


def test_two_clusters_taking_webhooks_as_they_arrive_survey_nobody_twice(live_server):
    sandbox_people_create()
    delayed = AccountFactory(integration__channel_delay=timedelta(minutes=10))
    now = AccountFactory(integration__test_api_key="sandbox-test-key-0001")
    at = int(timezone.now().timestamp()) - 60
    # Each closure of the undelayed account delivered twice, under two notification ids (as Intercom may).
    twice = [
        closed(
            f"now-{n}", at=at + n, notification_id=f"close-{n}-{copy}", workspace=now.intercom_workspace_id, shape="_v2"
        )
        for n in range(CONVERSATIONS)
        for copy in (1, 2)
    ]
    payloads = [p for pair in zip(close_then_reopen(delayed.intercom_workspace_id), twice, strict=True) for p in pair]

    settings = {**INTAKE, "Q_WORKERS": "2"}
    clusters = [start_cluster(f"{live_server.url}/sandbox/stella", settings=settings) for _ in range(2)]
    try:
        with requests.Session() as session:
            for payload in payloads:
                body = json.dumps(payload).encode()
                response = session.post(
                    f"{live_server.url}/webhooks/intercom/",
                    data=body,
                    headers={"Content-Type": "application/json", "X-Hub-Signature": sign(body)},
                    timeout=10,
                )
                assert response.status_code == 200, response.text

        def all_done() -> bool:
            survey_requests_send_due(now=timezone.now())  # the every-minute sweep, as often as the test waits
            undelayed = SurveyRequest.objects.filter(account=now)
            return (
                not InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED).exists()
                and undelayed.count() == CONVERSATIONS
                and set(undelayed.values_list("status", flat=True)) <= FINAL
            )

        wait_until(
            all_done,
            timeout=120,
            message=lambda: (
                Counter(SurveyRequest.objects.values_list("status", flat=True)),
                Counter(InboundWebhook.objects.values_list("status", "error")),
            ),
            interval=0.2,
        )
    finally:
        for cluster in clusters:
            stop(cluster, signal.SIGTERM)

    # Here a reopen may arrive, and be acted on, before its close: the close is then recorded cancelled.
    assert_every_close_cancelled_by_its_reopen(delayed.intercom_workspace_id)
    assert not InboundWebhook.objects.filter(status=InboundWebhook.Status.FAILED).exists()
    posted = Counter(body["ext_interaction_id"] for body in StellaSandboxRequest.objects.values_list("body", flat=True))
    assert set(posted) == {f"now-{n}" for n in range(CONVERSATIONS)}
    assert max(posted.values()) == 1, [conversation for conversation, times in posted.items() if times > 1]
