"""Intercom's Canvas Kit, for an inbox app in the conversation details: the requests Intercom sends, as typed
objects, and the components a canvas answers with. Nothing here knows accounts or surveys.

Intercom POSTs `initialize` when a teammate opens a conversation with the app in its details, and `submit` when
they press a button; each is signed (X-Body-Signature, integrations/intercom/signature.py) and answered with
`{"canvas": {"content": {"components": [...]}, "stored_data": {...}}}`. What `stored_data` holds comes back in
the next request's `current_canvas`, signed again.

The request is read under the webhook's rules (payloads.py): UTF-8 JSON without a byte order mark, nested at most
64 deep; ids non-empty, at most 64 characters, without a NUL or half a surrogate pair; free text (a teammate's
name) made storable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from integrations.intercom.json_fields import MAX_ID_LENGTH, JsonObject, PayloadError, load_bounded

# Intercom's text component reads a little Markdown (bold, italic, links): text from outside (a customer's comment,
# a name) is escaped so it shows as typed and can't make a link.
_MARKDOWN = re.compile(r"([\\`*_\[\]()<>#!|~])")
MAX_COMPONENT_ID_LENGTH = 100
MAX_NAME_LENGTH = 200  # a teammate's name, as the survey request keeps who stopped it


@dataclass(frozen=True)
class CanvasRequest:
    """What an inbox app needs of one Canvas Kit request: the workspace, the teammate, the conversation, the button
    pressed (submit only) and the stored data the canvas shown carried."""

    workspace_id: str
    conversation_id: str | None
    admin_id: str | None
    admin_name: str
    component_id: str
    stored_data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: bytes) -> CanvasRequest:
        """Read a request, or raise PayloadError naming what is wrong."""
        data = load_bounded(body)
        if not isinstance(data, dict):
            raise PayloadError("body is not a JSON object")
        envelope = JsonObject(data, "")
        # `workspace_id` since Canvas Kit 2.0; `app_id` before.
        key = "workspace_id" if envelope.data.get("workspace_id") is not None else "app_id"
        workspace_id = envelope.require_id_text(key, max_length=MAX_ID_LENGTH)
        admin = envelope.object_or_empty("admin")
        conversation = envelope.object_or_empty("conversation")
        context = envelope.object_or_empty("context")
        component_id = envelope.optional("component_id", str) or ""
        if len(component_id) > MAX_COMPONENT_ID_LENGTH:
            raise PayloadError(f"component_id is longer than {MAX_COMPONENT_ID_LENGTH} characters")
        current = envelope.object_or_empty("current_canvas")
        stored = current.optional("stored_data", dict) or {}
        return cls(
            workspace_id=workspace_id,
            conversation_id=conversation.optional_id("id") or context.optional_id("conversation_id"),
            admin_id=admin.optional_id("id"),
            admin_name=(admin.optional("name", str) or admin.optional("email", str) or "")[:MAX_NAME_LENGTH],
            component_id=component_id,
            stored_data=stored,
        )


def plain(text: str) -> str:
    """Text from outside as a text component shows it: as typed, never Markdown."""
    return _MARKDOWN.sub(r"\\\1", text)


def text(words: str, *, style: str = "paragraph") -> dict[str, Any]:
    """A text component (style: header, paragraph, muted or error). `words` is ours: escape outside text with plain."""
    return {"type": "text", "text": words, "style": style}


def button(component_id: str, label: str, *, style: str = "primary") -> dict[str, Any]:
    """A button that sends a submit request naming `component_id`."""
    return {"type": "button", "id": component_id, "label": label, "style": style, "action": {"type": "submit"}}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def canvas(components: list[dict[str, Any]], *, stored_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer to an initialize or submit request."""
    answer: dict[str, Any] = {"content": {"components": components}}
    if stored_data:
        answer["stored_data"] = stored_data
    return {"canvas": answer}
