"""The demo's people and accounts: Stella's employees and Intercom's teammates and contacts in the
sandbox, and the accounts `make run` creates."""

from __future__ import annotations

from datetime import timedelta

from sandbox.models import IntercomRecord, StellaEmployee
from sandbox.samples import Person, conversation_item
from surveys.accounts import account_upsert
from surveys.models import Account, Teammate

WORKSPACE = "demo"
DELAYED_WORKSPACE = "demo-delayed"
DELAY = timedelta(minutes=1)

TEAMMATES: list[Person] = [
    ("4100001", "Tess Teammate", "tess@support.example"),
    ("4100002", "Omar Operator", "omar@support.example"),
    ("4100003", "Ines Inbox", "ines@support.example"),
]
BOT: tuple[str, str, str] = ("4109999", "Fin", f"operator+{WORKSPACE}@intercom.io")
# Stella needs an employee even for a do-not-send request: the bot is mapped to one by custom id.
BOT_EMPLOYEE_ID = "fin-bot"
CUSTOMERS: list[Person] = [
    ("contact-ada", "Ada Customer", "ada@customer.example"),
    ("contact-bea", "Bea Buyer", "bea@customer.example"),
    ("contact-cai", "Cai Client", "cai@client.example"),
    ("contact-dee", None, "dee@customer.example"),
]


def demo_accounts_create() -> list[Account]:
    """Demo Company (no delay) and Demo Company, delayed (a one-minute channel delay), if missing."""
    accounts = []
    for workspace, name, delay in (
        (WORKSPACE, "Demo Company", timedelta(0)),
        (DELAYED_WORKSPACE, "Demo Company, delayed", DELAY),
    ):
        account = Account.objects.filter(intercom_workspace_id=workspace).first()
        if account is None:
            account, _ = account_upsert(
                workspace_id=workspace,
                name=name,
                channel_delay=delay,
                test_api_key=f"sandbox-test-key-{workspace}",
                production_api_key=f"sandbox-live-key-{workspace}",
                intercom_access_token=f"sandbox-intercom-token-{workspace}",
            )
            Teammate.objects.get_or_create(
                account=account,
                intercom_id=BOT[0],
                defaults={"name": BOT[1], "email": BOT[2], "is_bot": True, "stella_custom_id": BOT_EMPLOYEE_ID},
            )
        accounts.append(account)
    return accounts


def sandbox_people_create() -> None:
    """Stella's employees and Intercom's teammates and contacts, as the sandbox serves them."""
    for teammate_id, name, email in [*TEAMMATES, BOT]:
        IntercomRecord.objects.update_or_create(
            kind=IntercomRecord.Kind.ADMIN,
            intercom_id=teammate_id,
            defaults={
                "data": {"type": "admin", "id": teammate_id, "name": name, "email": email, "has_inbox_seat": True}
            },
        )
    for _, _, email in TEAMMATES:
        StellaEmployee.objects.get_or_create(email=email)
    StellaEmployee.objects.get_or_create(custom_id=BOT_EMPLOYEE_ID)
    for contact_id, name, email in CUSTOMERS:
        IntercomRecord.objects.update_or_create(
            kind=IntercomRecord.Kind.CONTACT,
            intercom_id=contact_id,
            defaults={"data": {"type": "contact", "id": contact_id, "role": "user", "name": name, "email": email}},
        )


def sandbox_conversation_create(
    conversation_id: str, *, channel: str, customer: Person, teammate: Person, started_at: int
) -> None:
    """A conversation the sandbox's Intercom returns for GET /conversations/{id}."""
    data = conversation_item(
        conversation_id=conversation_id,
        channel=channel,
        customer_id=customer[0],
        customer_name=customer[1],
        customer_email=customer[2] or "",
        assignee_id=teammate[0],
        tags=(),
        parts=[],
        state="closed",
        started_at=started_at,
    )
    IntercomRecord.objects.update_or_create(
        kind=IntercomRecord.Kind.CONVERSATION, intercom_id=conversation_id, defaults={"data": data}
    )
