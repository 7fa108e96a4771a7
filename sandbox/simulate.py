"""The sandbox's Intercom closing a conversation on request: a CSM onboarding an account locally completes
"Webhooks and closures arrive" from the checklist, with no Intercom workspace of their own."""

from __future__ import annotations

import json
import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from integrations.intercom.signature import signature_for
from integrations.webhooks import intercom_webhook_receive
from sandbox.demo import TEAMMATES, sandbox_contacts_create, sandbox_conversation_create, sandbox_people_create
from sandbox.samples import closed_conversation
from surveys.models import Account


@staff_member_required
@require_POST
def simulate_closure(request: HttpRequest, account_id: int) -> HttpResponse:
    """Post a signed `conversation.admin.closed` of a chat, for the account's workspace, closed by a teammate
    Stella knows, for a customer of its own; it is stored and processed as one from Intercom is."""
    account = get_object_or_404(Account, pk=account_id)
    if not request.user.has_perm("surveys.change_account"):
        return HttpResponse("You may not change this account.", status=403, content_type="text/plain")
    back = redirect("admin:surveys_account_checklist", account.pk)
    if not account.intercom_workspace_id:
        messages.error(request, "The account has no Intercom workspace yet: connect with Intercom first.")
        return back
    run = secrets.token_hex(3)
    now = int(time.time())
    conversation_id = f"{now}{int(run, 16) % 1000:03d}"
    customer = (f"contact-sim-{run}", "Sam Simulated", f"sam+{run}@customer.example")
    sandbox_people_create()  # the sandbox's teammates, should nobody have run the demo yet
    sandbox_contacts_create([customer])
    sandbox_conversation_create(
        conversation_id, channel="chat", customer=customer, teammate=TEAMMATES[0], started_at=now - 600
    )
    body = json.dumps(
        closed_conversation(
            app_id=account.intercom_workspace_id,
            conversation_id=conversation_id,
            at=now,
            customer=customer,
            teammate=TEAMMATES[0],
            notification_id=f"notif_sim_{run}",
        )
    ).encode()
    signature = signature_for(body, settings.INTERCOM_CLIENT_SECRET)
    intercom_webhook_receive(headers={"Content-Type": "application/json"}, body=body, signature=signature)
    messages.success(
        request,
        f"The sandbox's Intercom closed conversation {conversation_id} (a chat closed by {TEAMMATES[0][1]}) in "
        f"workspace {account.intercom_workspace_id}: it shows below once processed (a few seconds).",
    )
    return back
