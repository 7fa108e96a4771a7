"""The demo's last two scenarios (send_demo_webhooks): a waiting conversation stopped from the inbox app, through
the portal's own Canvas Kit endpoints signed as Intercom signs them, and a 1★ answer recovered (tag, note,
assignment, webhook, email), each as the running portal does it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from itertools import count
from typing import Any

from django.conf import settings
from django.utils import timezone

from integrations.intercom.signature import body_signature_for
from sandbox.demo import DELAYED_WORKSPACE, TEAMMATES, WORKSPACE, demo_customers_create
from sandbox.models import StellaSandboxFeedback
from sandbox.samples import closed_conversation
from sandbox.views import _star_rating_for
from surveys.accounts.account import account_upsert
from surveys.loop.feedback import stella_feedback_pull
from surveys.loop.recovery import recovery_all, recovery_state
from surveys.models import Account, SurveyRequest

TESS = TEAMMATES[0]
WEBHOOK_NAME = "demo-support-leads"


def canvas_kit_post(base: str, step: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST a Canvas Kit request to the portal, signed with the app's client secret as Intercom signs it."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{base}/intercom/canvas/{step}/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Body-Signature": body_signature_for(body, settings.INTERCOM_CLIENT_SECRET),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def inbox_request(conversation_id: str, **more: Any) -> dict[str, Any]:
    return {
        "workspace_id": DELAYED_WORKSPACE,
        "workspace_region": "us",
        "admin": {"type": "admin", "id": TESS[0], "name": TESS[1], "email": TESS[2]},
        "context": {"location": "conversation", "conversation_id": conversation_id},
        "conversation": {"type": "conversation", "id": conversation_id},
        **more,
    }


def demo_stop_from_inbox(base: str, conversation_id: str) -> str:
    """Tess opens the waiting conversation in Intercom and presses Don't survey: what became of it, in words."""
    waiting = SurveyRequest.objects.filter(
        account__intercom_workspace_id=DELAYED_WORKSPACE, conversation_id=conversation_id
    )
    if not waiting.exists():
        return "not processed yet: nothing to stop (is the cluster running?)"
    shown = canvas_kit_post(base, "initialize", inbox_request(conversation_id))
    stored = shown["canvas"].get("stored_data", {})
    canvas_kit_post(
        base,
        "submit",
        inbox_request(
            conversation_id,
            component_id="dont_survey",
            input_values={},
            current_canvas={**shown["canvas"], "stored_data": stored},
        ),
    )
    request = SurveyRequest.objects.get(
        account__intercom_workspace_id=DELAYED_WORKSPACE, conversation_id=conversation_id
    )
    return f"{request.get_status_display().lower()} ({request.get_reason_display()}: {request.status_detail})"


def one_star_conversation_id(run: str) -> str:
    """A conversation id of this run that the sandbox's made-up customer rates 1★."""
    return next(f"{run}7{n:03d}" for n in count() if _star_rating_for(f"{run}7{n:03d}") == 1)


def demo_recovery_settings(base: str) -> Account:
    """Demo Company starts service recovery on 2★ or fewer: every action, the webhook the sandbox's."""
    account, _ = account_upsert(
        workspace_id=WORKSPACE,
        low_rating_threshold=2,
        low_rating_tag="low-rating",
        low_rating_note=True,
        low_rating_assign=TEAMMATES[1][0],
        low_rating_webhook=f"{base}/sandbox/webhook/{WEBHOOK_NAME}",
        intercom_note_author_id=TESS[0],
        alert_recipients=Account.objects.get(intercom_workspace_id=WORKSPACE).integration.alert_recipients
        or "support-leads@demo.example",
    )
    return account


def demo_low_rating_close(conversation_id: str, *, run: str, now: int) -> dict[str, Any]:
    """The closed chat of a customer of its own (Demo Company's suppression window holds back none)."""
    customer = demo_customers_create(f"{run}r")[0]
    return closed_conversation(
        app_id=WORKSPACE, conversation_id=conversation_id, at=now, customer=customer, teammate=TESS
    )


def demo_recover(account: Account, conversation_id: str, *, wait: float, sent: Callable[[], bool]) -> list[str]:
    """Once the chat is sent, its customer answers 1★ at once; the feedback pull and recovery run as the cluster
    runs them. What was done, in words."""
    deadline = time.monotonic() + wait
    while not sent() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not sent():
        return ["not sent yet: nothing to recover (is the cluster running?)"]
    StellaSandboxFeedback.objects.filter(ext_interaction_id=conversation_id).update(respond_at=timezone.now())
    stella_feedback_pull(account, now=timezone.now())
    recovery_all(now=timezone.now())
    request = SurveyRequest.objects.get(account=account, conversation_id=conversation_id)
    return [f"{action.get_kind_display()}: {recovery_state(action)}" for action in request.recovery_actions.all()]
