"""The sandbox's Intercom inbox: a conversation's details panel with the inbox app in it, so the app can be tried and
browser-tested locally. The page plays Intercom's side of Canvas Kit: it signs an initialize (or, when a button is
pressed, a submit) request with the app's client secret, as Intercom does, hands it to the portal's own endpoint
(surveys/inbox_app/views.py, verification and all) and draws the canvas that comes back."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.test import RequestFactory
from django.urls import resolve, reverse
from django.utils.safestring import SafeString, mark_safe

from integrations.intercom.signature import body_signature_for
from sandbox.demo import TEAMMATES
from surveys.models import Account, SurveyRequest

# Canvas Kit's Markdown, as far as the app writes it: **bold**, and backslash escapes of text from outside.
_TOKENS = re.compile(r"\\(.)|\*\*(.+?)\*\*", re.DOTALL)
RECENT = 12


@staff_member_required
def intercom_inbox(request: HttpRequest) -> HttpResponse:
    """GET: the conversation's panel (`?workspace=…&conversation=…`); POST: a button on its canvas pressed."""
    params = request.POST if request.method == "POST" else request.GET
    workspace, conversation = params.get("workspace", ""), params.get("conversation", "")
    teammate_id, teammate_name, teammate_email = TEAMMATES[0]
    context: dict[str, Any] = {
        "workspace": workspace,
        "conversation": conversation,
        "teammate": teammate_name,
        "recent": SurveyRequest.objects.select_related("account").order_by("-closed_at")[:RECENT],
        "accounts": Account.objects.order_by("name"),
    }
    if workspace and conversation:
        body: dict[str, Any] = {
            "workspace_id": workspace,
            "workspace_region": "us",
            "admin": {"type": "admin", "id": teammate_id, "name": teammate_name, "email": teammate_email},
            "context": {"location": "conversation", "conversation_id": conversation, "locale": "en"},
            "conversation": {"type": "conversation", "id": conversation},
        }
        endpoint = "intercom_canvas_initialize"
        if request.method == "POST":
            endpoint = "intercom_canvas_submit"
            stored = json.loads(request.POST.get("stored_data") or "{}")
            body |= {"component_id": request.POST.get("component_id", ""), "input_values": {}}
            body["current_canvas"] = {"content": {"components": []}, "stored_data": stored}
        status, answer = _canvas_kit_request(endpoint, json.dumps(body).encode())
        context |= {"status": status, "answer": answer, "components": _components(answer)}
        context["stored_data"] = json.dumps(answer.get("canvas", {}).get("stored_data", {}))
    return render(request, "sandbox/intercom_inbox.html", context)


def _canvas_kit_request(endpoint: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """What the portal's endpoint answers a request signed as Intercom signs it."""
    path = reverse(endpoint)
    signed = RequestFactory().post(
        path,
        data=body,
        content_type="application/json",
        headers={"X-Body-Signature": body_signature_for(body, settings.INTERCOM_CLIENT_SECRET)},
    )
    response = resolve(path).func(signed)
    return response.status_code, json.loads(response.content)


def _components(answer: dict[str, Any]) -> list[dict[str, Any]]:
    components = answer.get("canvas", {}).get("content", {}).get("components", [])
    return [{**component, "html": canvas_markdown(component.get("text", ""))} for component in components]


def canvas_markdown(text: str) -> SafeString:
    """A text component as Intercom draws it: escaped characters as themselves, **bold** in bold, nothing else."""

    def token(match: re.Match[str]) -> str:
        escaped, bold = match.groups()
        if escaped is not None:
            return html.escape(escaped)
        return f"<strong>{canvas_markdown(bold)}</strong>"

    out, at = [], 0
    for match in _TOKENS.finditer(text):
        out += [html.escape(text[at : match.start()]), token(match)]
        at = match.end()
    out.append(html.escape(text[at:]))
    return mark_safe("".join(out))  # every piece above is escaped
