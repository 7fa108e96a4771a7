"""Property tests of the webhook endpoint: 2,200 generated bodies, headers and signatures a run.

For every one: the answer is one the contract allows (never a 5xx), nothing is acted on without
a valid signature, and whatever got 200 is stored and ends processed or ignored.
"""

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.intercom.json_fields import PayloadError
from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from surveys.models import ConversationEvent, SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.helpers import CAPTURED_FIXTURES, WORKSPACE_ID, load_fixture, sign
from tests.helpers import FIXTURES as OWN_FIXTURES

pytestmark = pytest.mark.django_db

FIXTURES = [
    "conversation_admin_closed",
    "conversation_admin_closed_v2",
    "conversation_admin_closed_bot_v2",
    "conversation_admin_opened",
    "conversation_user_replied",
    "conversation_part_tag_created",
    "conversation_deleted",
    "ping",
]
SIGNED_ANSWERS = {200, 400, 413}
UNSIGNED_ANSWERS = {400, 401, 413}
FINAL = {InboundWebhook.Status.PROCESSED, InboundWebhook.Status.IGNORED}
EXAMPLES = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any character, lone surrogates and NUL included.
hostile_text = st.text(st.characters(exclude_categories=()), max_size=80) | st.sampled_from(
    ["", "\x00", "\ud800", "\udfff", "a" * 65, "n" * 101, "javascript:alert(1)", "0", "٣", "\ufeff"]
)
numbers = st.integers() | st.sampled_from([0, -1, 2**63, 10**30, 253402300800, 1293840000, 1764324000]) | st.floats()
scalars = st.none() | st.booleans() | numbers | hostile_text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
# Where a value may land: the envelope, the item, and fields the parser reads inside it.
PATHS = [
    ("id",), ("topic",), ("app_id",), ("created_at",), ("type",), ("data",), ("delivery_attempts",),
    ("data", "item"), ("data", "item", "id"), ("data", "item", "type"), ("data", "item", "created_at"),
    ("data", "item", "source"), ("data", "item", "source", "type"), ("data", "item", "source", "author"),
    ("data", "item", "source", "author", "name"), ("data", "item", "source", "author", "email"),
    ("data", "item", "admin_assignee_id"), ("data", "item", "contacts"), ("data", "item", "tags"),
    ("data", "item", "conversation_parts"), ("data", "item", "links"), ("data", "item", "user"),
    ("data", "item", "assignee"), ("data", "item", "conversation_message"), ("data", "item", "conversation_id"),
]  # fmt: skip


def mutated(payload: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    for path, value in changes:
        target: Any = payload
        for key in path[:-1]:
            if not isinstance(target, dict) or not isinstance(target.get(key), dict):
                break
            target = target[key]
        else:
            if isinstance(target, dict):
                target[path[-1]] = value
    return payload


bodies = st.one_of(
    st.builds(
        lambda name, changes: json.dumps(mutated(load_fixture(name), changes)).encode(),
        st.sampled_from(FIXTURES),
        st.lists(st.tuples(st.sampled_from(PATHS), json_values), max_size=4),
    ),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
    st.binary(max_size=300),
    st.builds(
        lambda name, junk: json.dumps(load_fixture(name)).encode() + junk, st.sampled_from(FIXTURES), st.binary()
    ),
)


def post(client: Client, body: bytes, headers: dict[str, str]):
    return client.generic("POST", "/webhooks/intercom/", body, content_type="application/json", headers=headers)


@EXAMPLES
@given(body=bodies, uppercase=st.booleans())
def test_a_signed_body_is_answered_200_400_or_413_and_every_200_ends_processed_or_ignored(account, body, uppercase):
    signature = sign(body)
    response = post(Client(), body, {"X-Hub-Signature": signature.upper() if uppercase else signature})
    assert response.status_code in SIGNED_ANSWERS, response.content
    if response.status_code != 200:
        return
    process_inbound_webhooks()
    if response.json()["status"] == "duplicate":
        return
    stored = InboundWebhook.objects.filter(notification_id=json.loads(body)["id"]).values_list("status", flat=True)
    assert list(stored) and stored[0] in FINAL, (list(stored), body)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies)
def test_what_the_parser_read_is_kept_and_read_back_exactly(body):
    """Acting on a webhook reads what the request parsed (IntercomNotification.stored), not the body again."""
    try:
        notification = IntercomNotification.from_json(body)
    except PayloadError:
        return
    assert IntercomNotification.from_stored(notification.stored()) == notification


signatures = st.one_of(
    st.just(None),  # no header
    st.just(""),
    st.builds(lambda hexes: "sha1=" + hexes, st.text("0123456789abcdef", min_size=40, max_size=40)),
    st.builds(lambda other: sign(other), st.binary(max_size=50)),  # a real signature of another body
    st.builds(lambda text: text, hostile_text.filter(lambda text: "\x00" not in text and "\n" not in text)),
    st.just("sha256=" + "0" * 64),
)


@EXAMPLES
@given(body=bodies, signature=signatures)
def test_an_unsigned_body_is_answered_400_401_or_413_and_nothing_is_acted_on(account, body, signature):
    if signature is not None and signature.strip().lower() == sign(body):
        return  # hypothesis found the signature itself: not an unsigned case
    acted_on = (SurveyRequest.objects.count(), ConversationEvent.objects.count())
    headers = {} if signature is None else {"X-Hub-Signature": signature}
    try:
        response = post(Client(), body, headers)
    except (UnicodeEncodeError, ValueError):
        return  # the test client itself can't send such a header; no server would receive it either
    assert response.status_code in UNSIGNED_ANSWERS, response.content
    process_inbound_webhooks()
    assert (SurveyRequest.objects.count(), ConversationEvent.objects.count()) == acted_on
    assert not InboundWebhook.objects.exclude(status=InboundWebhook.Status.INVALID).exists()


# Every real capture, ours and the public ones: both payload generations, every topic.
CAPTURES = sorted(OWN_FIXTURES.glob("*.json")) + sorted(CAPTURED_FIXTURES.glob("*.json"))
LEAF_EXAMPLES = settings(EXAMPLES, max_examples=200)
# Text with at least one character no database stores (NUL, half a surrogate pair), among what a link or a word of
# Intercom's vocabulary must not hold either (control and format characters, spaces, U+FFFD itself) and any other.
unstorable = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
nasty = unstorable | st.sampled_from(["\x07", "\x1b", "\x7f", "\u202e", "\n", " ", "\ufffd"])
any_text = st.text(nasty | st.characters(exclude_categories=()), max_size=6)
nasty_text = st.builds(lambda before, bad, after: before + bad + after, any_text, unstorable, any_text)
# Both shrink towards False: towards the capture as it was.
HALF = st.booleans()
ONE_IN_TWENTY = st.sampled_from([False] * 19 + [True])
Leaf = tuple[str | int, ...]  # where a string sits: keys and list indexes


def string_leaves(value: Any, path: Leaf = ()) -> Iterator[Leaf]:
    """The path of every string in a JSON value, however deep."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from string_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from string_leaves(child, (*path, index))


def at(value: Any, path: Leaf) -> Any:
    for key in path:
        value = value[key]
    return value


def capture(name: Path) -> dict[str, Any]:
    """A capture as the test account's: else an unknown workspace would end it before anything is stored."""
    payload = json.loads(name.read_text())
    payload["app_id"] = WORKSPACE_ID
    return payload


@functools.cache
def refused_leaves(name: Path) -> frozenset[Leaf]:
    """The strings whose hostile text the parser refuses (ids, the topic, the types). They are made hostile
    less often, so most bodies get through to be acted on with many other strings made hostile at once."""
    payload = capture(name)
    refused = set()
    for path in string_leaves(payload):
        probe = copy.deepcopy(payload)
        at(probe, path[:-1])[path[-1]] = "\ud800"
        try:
            IntercomNotification.from_json(json.dumps(probe))
        except PayloadError:
            refused.add(path)
    return frozenset(refused)


@st.composite
def captures_with_hostile_strings(draw: st.DrawFn) -> dict[str, Any]:
    """A real capture in which any string may have become hostile text, or had some slipped in among its own."""
    name = draw(st.sampled_from(CAPTURES))
    payload = capture(name)
    for path in list(string_leaves(payload)):
        if not draw(ONE_IN_TWENTY if path in refused_leaves(name) else HALF):
            continue
        text = draw(nasty_text)
        if draw(HALF):
            original = at(payload, path)
            cut = draw(st.integers(0, len(original)))
            text = original[:cut] + text + original[cut:]
        at(payload, path[:-1])[path[-1]] = text
    return payload


def names_a_field_of(payload: dict[str, Any], message: str) -> bool:
    """Whether a message begins with the dotted path of a field the body holds (`data.item.contacts.contacts[0].id`)."""
    field = message.split(" ", 1)[0]
    if not re.fullmatch(r"[a-z_]+(\.[a-z_]+|\[\d+\])*", field):
        return False
    try:
        at(payload, tuple(int(key) if key.isdigit() else key for key in re.findall(r"[a-z_]+|\d+", field)))
    except (KeyError, IndexError, TypeError):
        return False
    return True


@LEAF_EXAMPLES
@given(payload=captures_with_hostile_strings())
def test_any_string_of_a_real_capture_made_hostile_is_refused_naming_it_or_processed(account, payload):
    with transaction.atomic():  # each example starts afresh: a capture's closure is never a duplicate of the last
        _refused_naming_a_field_or_processed(payload)
        transaction.set_rollback(True)


def _refused_naming_a_field_or_processed(payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    response = post(Client(), body, {"X-Hub-Signature": sign(body)})
    assert response.status_code in {200, 400}, response.content
    if response.status_code == 400:
        assert names_a_field_of(payload, response.json()["error"]), response.json()
        return
    process_inbound_webhooks()
    webhook = InboundWebhook.objects.get()
    assert webhook.status in FINAL, (webhook.status, webhook.error, body)
