from datetime import UTC, datetime, timedelta

import factory

from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.rules import Decision
from surveys.models import Account, Feedback, IntegrationHealth, IntegrationSettings, SurveyRequest, Teammate
from tests.helpers import WORKSPACE_ID

NOW = datetime(2025, 11, 28, 10, 0, tzinfo=UTC)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Company {n}")
    intercom_workspace_id = factory.Sequence(lambda n: f"ws{n}")
    integration = factory.RelatedFactory("tests.factories.IntegrationSettingsFactory", factory_related_name="account")
    health = factory.RelatedFactory("tests.factories.IntegrationHealthFactory", factory_related_name="account")


class IntegrationSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrationSettings
        django_get_or_create = ["account"]

    account = factory.SubFactory(AccountFactory, integration=None)
    test_api_key = "test-key-0000-1111-2222-abcd"
    production_api_key = "live-key-9999-8888-7777-wxyz"
    intercom_access_token = "intercom-token-5555-6666-tokn"


class IntegrationHealthFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrationHealth
        django_get_or_create = ["account"]

    account = factory.SubFactory(AccountFactory, health=None)


class SurveyRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SurveyRequest

    class Params:
        sent = factory.Trait(status=SurveyRequest.Status.SENT, sent_at=factory.SelfAttribute("send_after"))

    account = factory.SubFactory(AccountFactory, intercom_workspace_id=WORKSPACE_ID)
    conversation_id = factory.Sequence(lambda n: f"9{n:08d}")
    conversation_url = factory.LazyAttribute(
        lambda o: f"https://app.intercom.com/a/apps/{WORKSPACE_ID}/conversations/{o.conversation_id}"
    )
    closure_id = factory.Sequence(lambda n: f"close-{n}")
    closed_at = NOW - timedelta(hours=1)
    channel = Channel.CHAT
    channel_source = "conversation"
    assignee_kind = AssigneeKind.ADMIN
    teammate_id = "4100001"
    teammate_name = "Tess Teammate"
    teammate_email = "tess@support.example"
    customer_id = factory.Sequence(lambda n: f"contact-{n}")
    customer_role = "user"
    customer_name = "Ada Customer"
    customer_email = "ada@customer.example"
    status = SurveyRequest.Status.SCHEDULED
    decision = Decision.SEND
    mode = IntegrationSettings.Mode.TEST
    send_after = factory.SelfAttribute("closed_at")
    delay_ends_at = factory.SelfAttribute("closed_at")


class TeammateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Teammate

    account = factory.SubFactory(AccountFactory)
    intercom_id = factory.Sequence(lambda n: f"41{n:05d}")
    name = factory.Sequence(lambda n: f"Teammate {n}")
    email = factory.Sequence(lambda n: f"teammate{n}@support.example")


class FeedbackFactory(factory.django.DjangoModelFactory):
    """Stella's record of one interaction, as a feedback pull stores it."""

    class Meta:
        model = Feedback

    account = factory.SubFactory(AccountFactory)
    uuid = factory.Sequence(lambda n: f"00000000-0000-4000-8000-{n:012d}")
    sequence_id = factory.Sequence(lambda n: n + 1)
    ext_interaction_id = factory.LazyAttribute(lambda o: o.survey_request.conversation_id if o.survey_request else "")
    survey_request = None
    mode = IntegrationSettings.Mode.TEST
    channel = Channel.CHAT
    employee_email = "tess@support.example"
    delivery_status = "Delivered"
    request_created_at = NOW - timedelta(minutes=50)
    request_sent_at = factory.SelfAttribute("request_created_at")
