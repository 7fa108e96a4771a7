import json
from datetime import UTC, datetime

import pytest

from integrations.intercom.json_fields import PayloadError
from integrations.intercom.payloads import Conversation, IntercomNotification
from integrations.vocabulary import AssigneeKind, Channel
from sandbox.samples import closed_conversation, comment
from tests.helpers import CAPTURED_FIXTURES, FIXTURES, load_fixture


def parse(payload: dict) -> IntercomNotification:
    return IntercomNotification.from_json(json.dumps(payload).encode())


# What each real sample must read as: topic, conversation id, channel, assignee kind,
# customer email, first-message tags, conversation tags, close part id.
CAPTURED_EXPECTATIONS = {
    "hull__webhook-conversation-admin-assigned-to-unknown.json": (
        "conversation.admin.assigned",
        "137324500000000",
        None,
        AssigneeKind.NOBODY,
        "bob.dylan@rei.com",
        (),
        (),
        None,
    ),
    "hull__webhook-conversation-admin-closed.json": (
        "conversation.admin.closed",
        "137324500000000",
        None,
        AssigneeKind.ADMIN,
        "bob.dylan@rei.com",
        (),
        (),
        "6073838784",
    ),
    "hull__webhook-conversation-admin-opened-no-admin.json": (
        "conversation.admin.opened",
        "137324500000000",
        None,
        AssigneeKind.NOBODY,
        "bob.dylan@rei.com",
        (),
        (),
        None,
    ),
    # The tagged part is not the first message: the tag stays a conversation tag only.
    "hull__webhook-conversation-part-tag-created.json": (
        "conversation_part.tag.created",
        "137324500000000",
        None,
        AssigneeKind.ADMIN,
        "bob.dylan@rei.com",
        (),
        ("sample tag",),
        None,
    ),
    "zulip__conversation_admin_assigned.json": (
        "conversation.admin.assigned",
        "21322009097",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        None,
    ),
    "zulip__conversation_admin_closed.json": (
        "conversation.admin.closed",
        "21322009097",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        "2824395628",
    ),
    "zulip__conversation_admin_open_assigned.json": (
        "conversation.admin.open.assigned",
        "215472621202693",
        Channel.CHAT,
        AssigneeKind.ADMIN,
        None,
        (),
        (),
        None,
    ),
    "zulip__conversation_admin_opened.json": (
        "conversation.admin.opened",
        "21330229536",
        None,
        AssigneeKind.ADMIN,
        "eg3800@mun.ca",
        (),
        (),
        None,
    ),
    "zulip__conversation_admin_replied.json": (
        "conversation.admin.replied",
        "21322009097",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        None,
    ),
    "zulip__conversation_admin_snoozed.json": (
        "conversation.admin.snoozed",
        "21330067382",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        None,
    ),
    "zulip__conversation_admin_unsnoozed.json": (
        "conversation.admin.unsnoozed",
        "21330067382",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        None,
    ),
    "zulip__conversation_deleted.json": ("conversation.deleted", "215472621305755", None, None, None, (), (), None),
    # A bot wrote the part, but nobody is assigned: not a bot assignee.
    "zulip__conversation_operator_replied.json": (
        "conversation.operator.replied",
        "215472621202693",
        Channel.CHAT,
        AssigneeKind.NOBODY,
        None,
        (),
        (),
        None,
    ),
    # The tagged part's id is the first message's id.
    "zulip__conversation_part_tag_created.json": (
        "conversation_part.tag.created",
        "21330067382",
        None,
        AssigneeKind.NOBODY,
        "jerryguitarist@gmail.com",
        ("developer",),
        ("developer",),
        None,
    ),
    "zulip__conversation_user_created.json": (
        "conversation.user.created",
        "21321941764",
        None,
        AssigneeKind.NOBODY,
        None,
        (),
        (),
        None,
    ),
    "zulip__conversation_user_replied.json": (
        "conversation.user.replied",
        "21322009097",
        None,
        AssigneeKind.ADMIN,
        "jerryguitarist@gmail.com",
        (),
        (),
        None,
    ),
    "zulip__ping.json": ("ping", None, None, None, None, (), (), None),
}

OWN_EXPECTATIONS = {
    "conversation_admin_closed.json": (
        "conversation.admin.closed",
        "30100000001",
        None,
        AssigneeKind.ADMIN,
        "ada@customer.example",
        (),
        (),
        "7100000001",
    ),
    "conversation_admin_closed_v2.json": (
        "conversation.admin.closed",
        "215000000000201",
        Channel.CHAT,
        AssigneeKind.ADMIN,
        "bea@customer.example",
        (),
        (),
        "37400000201",
    ),
    "conversation_admin_closed_email_v2.json": (
        "conversation.admin.closed",
        "215000000000301",
        Channel.EMAIL,
        AssigneeKind.ADMIN,
        "cai@client.example",
        (),
        (),
        "37400000301",
    ),
    "conversation_admin_closed_bot_v2.json": (
        "conversation.admin.closed",
        "215000000000401",
        Channel.CHAT,
        AssigneeKind.BOT,
        "dee@customer.example",
        (),
        (),
        "37400000401",
    ),
    "conversation_admin_opened.json": (
        "conversation.admin.opened",
        "30100000001",
        None,
        AssigneeKind.ADMIN,
        "ada@customer.example",
        (),
        (),
        None,
    ),
    "conversation_user_replied.json": (
        "conversation.user.replied",
        "30100000001",
        None,
        AssigneeKind.ADMIN,
        "ada@customer.example",
        (),
        (),
        None,
    ),
    "conversation_admin_snoozed.json": (
        "conversation.admin.snoozed",
        "30100000001",
        None,
        AssigneeKind.ADMIN,
        "ada@customer.example",
        (),
        (),
        None,
    ),
    "conversation_part_tag_created.json": (
        "conversation_part.tag.created",
        "30100000001",
        None,
        AssigneeKind.ADMIN,
        "ada@customer.example",
        ("fraud",),
        ("fraud",),
        None,
    ),
    "conversation_deleted.json": ("conversation.deleted", "215000000000201", None, None, None, (), (), None),
    "contact_deleted.json": ("contact.deleted", None, None, None, None, (), (), None),
    "ping.json": ("ping", None, None, None, None, (), (), None),
}


def summary(notification: IntercomNotification) -> tuple:
    conversation = notification.conversation
    if conversation is None:
        return (notification.topic, notification.conversation_id, None, None, None, (), (), None)
    return (
        notification.topic,
        notification.conversation_id,
        conversation.channel,
        conversation.assignee.kind,
        conversation.customer.email if conversation.customer else None,
        conversation.first_message_tags,
        conversation.tags,
        conversation.closure.part_id if conversation.closure else None,
    )


@pytest.mark.parametrize("name", sorted(OWN_EXPECTATIONS))
def test_own_fixture_parses_as_expected(name):
    assert summary(IntercomNotification.from_json((FIXTURES / name).read_bytes())) == OWN_EXPECTATIONS[name]


def test_every_own_fixture_has_an_expectation():
    assert sorted(path.name for path in FIXTURES.glob("*.json")) == sorted(OWN_EXPECTATIONS)


def captured_samples() -> list[str]:
    return sorted(path.name for path in CAPTURED_FIXTURES.glob("*.json"))


def test_every_captured_sample_is_here_and_has_an_expectation():
    assert captured_samples() == sorted(CAPTURED_EXPECTATIONS)


@pytest.mark.parametrize("name", captured_samples())
def test_real_sample_parses_as_expected(name):
    body = (CAPTURED_FIXTURES / name).read_bytes()
    assert summary(IntercomNotification.from_json(body)) == CAPTURED_EXPECTATIONS[name]


def test_envelope_fields_are_typed():
    notification = parse(load_fixture("conversation_admin_closed"))
    assert notification.id == "notif_0a4e8d52-1c3b-4f7a-9a61-5d2b7c9e0001"
    assert notification.app_id == "ws1test"
    assert notification.created_at == datetime(2025, 11, 28, 10, 0, 1, tzinfo=UTC)
    assert notification.delivery_attempts == 1


def test_older_shape_reads_customer_teammate_and_link():
    conversation = parse(load_fixture("conversation_admin_closed")).conversation
    assert conversation.customer.name == "Ada Customer"
    assert conversation.customer.role == "user"
    assert (conversation.assignee.id, conversation.assignee.name, conversation.assignee.email) == (
        "4100001",
        "Tess Teammate",
        "tess@support.example",
    )
    assert conversation.url == "https://app.intercom.com/a/apps/ws1test/conversations/30100000001"
    assert conversation.closure.at == datetime(2025, 11, 28, 10, 0, tzinfo=UTC)
    assert conversation.closure.closer.name == "Tess Teammate"


def test_newer_shape_takes_the_teammate_name_from_their_close_part():
    conversation = parse(load_fixture("conversation_admin_closed_v2")).conversation
    assert (conversation.assignee.id, conversation.assignee.name, conversation.assignee.email) == (
        "4100002",
        "Omar Operator",
        "omar@support.example",
    )
    assert conversation.customer.id == "6a1f0c2e9b3d4e0012ab0201"


def test_newer_shape_without_links_builds_the_inbox_link():
    conversation = parse(load_fixture("conversation_admin_closed_v2")).conversation
    assert conversation.url == "https://app.intercom.com/a/apps/ws1test/conversations/215000000000201"


def with_item(name: str, **item_fields) -> dict:
    payload = load_fixture(name)
    payload["data"]["item"].update(item_fields)
    return payload


@pytest.mark.parametrize(
    ("source_type", "channel"),
    [
        ("email", Channel.EMAIL),
        ("conversation", Channel.CHAT),
        ("whatsapp", Channel.UNSUPPORTED),
        ("sms", Channel.UNSUPPORTED),
        ("phone_call", Channel.UNSUPPORTED),
        ("facebook", Channel.UNSUPPORTED),
        ("instagram", Channel.UNSUPPORTED),
        ("push", Channel.UNSUPPORTED),
    ],
)
def test_channel_is_where_the_conversation_began(source_type, channel):
    payload = load_fixture("conversation_admin_closed_v2")
    payload["data"]["item"]["source"]["type"] = source_type
    conversation = parse(payload).conversation
    assert conversation.channel == channel
    assert conversation.channel_source == source_type


@pytest.mark.parametrize(
    ("initial", "channel"), [("messenger", Channel.CHAT), ("email", Channel.EMAIL), ("twitter", Channel.UNSUPPORTED)]
)
def test_rest_channel_initial_names_the_channel(initial, channel):
    payload = with_item("conversation_admin_closed_v2", channel={"initial": initial, "current": "email"})
    assert parse(payload).conversation.channel == channel


def test_chat_that_moved_to_email_stays_chat():
    payload = with_item("conversation_admin_closed_v2", channel={"initial": "messenger", "current": "email"})
    assert parse(payload).conversation.channel == Channel.CHAT


def test_older_shape_leaves_the_channel_to_be_looked_up():
    assert parse(load_fixture("conversation_admin_closed")).conversation.channel is None


@pytest.mark.parametrize("unassigned", [None, 0, "0", ""])
def test_unassigned_newer_shape(unassigned):
    payload = with_item("conversation_admin_closed_v2", admin_assignee_id=unassigned)
    assert parse(payload).conversation.assignee.kind == AssigneeKind.NOBODY


def test_nobody_admin_is_unassigned():
    payload = with_item("conversation_admin_closed", assignee={"type": "nobody_admin", "id": None})
    assert parse(payload).conversation.assignee.kind == AssigneeKind.NOBODY


def test_team_assignee_without_a_teammate():
    payload = with_item("conversation_admin_closed_v2", admin_assignee_id=None, team_assignee_id=555)
    assignee = parse(payload).conversation.assignee
    assert (assignee.kind, assignee.id) == (AssigneeKind.TEAM, "555")


def test_assignment_part_to_a_bot_makes_a_bot_assignee():
    payload = with_item("conversation_admin_closed_v2", admin_assignee_id=777)
    parts = payload["data"]["item"]["conversation_parts"]["conversation_parts"]
    parts.insert(0, {**parts[0], "id": "1", "part_type": "assignment", "assigned_to": {"type": "bot", "id": "777"}})
    assert parse(payload).conversation.assignee.kind == AssigneeKind.BOT


def test_operator_address_makes_a_bot_assignee():
    payload = with_item(
        "conversation_admin_closed",
        assignee={"type": "admin", "id": "99", "name": "Operator", "email": "operator+ws1test@intercom.io"},
    )
    assert parse(payload).conversation.assignee.kind == AssigneeKind.BOT


def test_bot_closer_makes_a_bot_assignee():
    payload = load_fixture("conversation_admin_closed")
    close = payload["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    close["author"] = {"type": "bot", "id": "4109999", "name": "Fin"}
    assert parse(payload).conversation.assignee.kind == AssigneeKind.BOT


def test_tag_on_a_newer_first_message_part():
    payload = load_fixture("conversation_admin_closed_v2")
    payload["topic"] = "conversation_part.tag.created"
    close = payload["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    close.update(id="3400000201", part_type="comment", tags=[{"type": "tag", "id": "1", "name": "dupe"}])
    assert parse(payload).conversation.first_message_tags == ("dupe",)


def test_customer_from_contacts_only_is_looked_up_later():
    payload = load_fixture("conversation_admin_closed_v2")
    payload["data"]["item"]["source"]["author"] = {
        "type": "admin",
        "id": "4100002",
        "name": "Omar",
        "email": "omar@support.example",
    }
    customer = parse(payload).conversation.customer
    assert (customer.id, customer.role, customer.email) == ("6a1f0c2e9b3d4e0012ab0201", "contact", None)


def test_anonymous_lead_has_no_email():
    payload = load_fixture("conversation_admin_closed_v2")
    payload["data"]["item"]["source"]["author"].update(type="lead", email="", name=None)
    customer = parse(payload).conversation.customer
    assert (customer.role, customer.email, customer.name) == ("lead", None, None)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["data"]["item"].pop("id"), "data.item.id is missing"),
        (lambda p: p.pop("topic"), "topic is missing"),
        (lambda p: p.pop("app_id"), "app_id is missing"),
        (lambda p: p.pop("data"), "data is missing"),
        (lambda p: p["data"].pop("item"), "data.item is missing"),
        (lambda p: p.update(created_at="yesterday"), "created_at is not a number"),
        (lambda p: p.update(type="something_else"), "type is not notification_event"),
        (lambda p: p.update(id=None), "id is missing"),
        (lambda p: p["data"]["item"].update(user="Ada"), "data.item.user is not an object"),
        (lambda p: p["data"]["item"]["tags"]["tags"].append({"type": "tag"}), "data.item.tags.tags[0].name is missing"),
        (
            lambda p: p["data"]["item"]["conversation_parts"]["conversation_parts"][0].pop("created_at"),
            "data.item.conversation_parts.conversation_parts[0].created_at is missing",
        ),
    ],
)
def test_malformed_notification_names_the_problem(mutate, message):
    payload = load_fixture("conversation_admin_closed")
    mutate(payload)
    with pytest.raises(PayloadError) as error:
        parse(payload)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("body", "message"), [(b"not json", "body is not JSON"), (b"[1, 2]", "body is not a JSON object")]
)
def test_body_that_is_not_a_json_object(body, message):
    with pytest.raises(PayloadError, match=message):
        IntercomNotification.from_json(body)


def test_deleted_conversation_needs_its_id():
    payload = load_fixture("conversation_deleted")
    payload["data"]["item"].pop("conversation_id")
    with pytest.raises(PayloadError, match="data.item.conversation_id is missing"):
        parse(payload)


def test_built_samples_read_like_the_captures():
    from sandbox.samples import closed_conversation, reopened_conversation

    closed = parse(closed_conversation(app_id="demo", conversation_id="42", at=1764324001, channel="email"))
    conversation = closed.conversation
    assert (closed.topic, conversation.channel, conversation.assignee.kind) == (
        "conversation.admin.closed", Channel.EMAIL, AssigneeKind.ADMIN,
    )  # fmt: skip
    assert (conversation.customer.email, conversation.assignee.email) == (
        "ada@customer.example",
        "tess@support.example",
    )
    assert conversation.closure.at == datetime(2025, 11, 28, 10, 0, 1, tzinfo=UTC)
    bot = parse(closed_conversation(app_id="demo", conversation_id="43", at=1764324001, bot=True, tags=("dupe",)))
    assert (bot.conversation.assignee.kind, bot.conversation.tags) == (AssigneeKind.BOT, ("dupe",))
    reopened = parse(reopened_conversation(app_id="demo", conversation_id="42", at=1764324100))
    assert (reopened.topic, reopened.conversation_id) == ("conversation.admin.opened", "42")


def test_team_and_last_reply_from_a_2x_webhook_and_replies_from_the_rest_api():
    at = 1_780_000_000
    body = closed_conversation(app_id="ws", conversation_id="9", at=at, team_id="5100001", last_admin_reply_at=at - 60)
    conversation = parse(body).conversation
    assert (conversation.team_id, conversation.last_admin_reply_at) == ("5100001", datetime.fromtimestamp(at - 60, UTC))
    assert conversation.teammate_replies is None  # a webhook's parts are the event's, not the conversation's
    item = body["data"]["item"]
    tess, fin = ("41", "Tess", "tess@x.example"), ("49", "Fin", "operator+ws@intercom.io")
    item["conversation_parts"]["conversation_parts"] = [
        comment("p1", at=at - 300, author=tess),
        {**comment("p2", at=at - 200, author=tess), "part_type": "note"},
        comment("p3", at=at - 100, author=fin),  # the operator's address: a bot
        comment("p4", at=at - 60, author=("42", "Omar", None)),
    ]
    item["statistics"]["last_admin_reply_at"] = at - 60  # unix seconds, as REST has it
    rest = Conversation.from_rest(item, url="https://app.intercom.com/x")
    assert (rest.teammate_replies, rest.last_replier.id, rest.last_admin_reply_at.timestamp()) == (2, "42", at - 60)


@pytest.mark.parametrize("value", ["yesterday", "2099-01-01T00:00:00Z", True, [1], 10**20])
def test_statistics_never_make_a_notification_unreadable(value):
    body = closed_conversation(app_id="ws", conversation_id="9", at=1_780_000_000)
    body["data"]["item"]["statistics"]["last_admin_reply_at"] = value
    assert parse(body).conversation.last_admin_reply_at is None
