"""The survey domain's data, one module per idea: accounts and their rules (accounts.py), what happened to their
conversations and the survey requests and Stella calls made for them (requests.py), the status page's counts
(counts.py), and what Stella told us back (loop.py). Import from here: `from surveys.models import SurveyRequest`."""

from surveys.models.accounts import (
    DEFAULT_DO_NOT_SEND_TAGS,
    Account,
    IntegrationHealth,
    IntegrationSettings,
    Teammate,
)
from surveys.models.counts import CallCount, DailyCount, TeammateDailyCount
from surveys.models.loop import (
    Feedback,
    IntercomNote,
    QuarantinedFeedback,
    RecoveryAction,
    StellaEmployee,
    StellaSyncState,
)
from surveys.models.requests import (
    TRANSITIONS,
    ApiRequest,
    ApiRequestQuerySet,
    ConversationEvent,
    InvalidApiRequest,
    InvalidApiRequestManager,
    SurveyOutcome,
    SurveyRequest,
    SurveyRequestQuerySet,
    TestApiRequest,
    TestApiRequestManager,
)

__all__ = [
    "DEFAULT_DO_NOT_SEND_TAGS",
    "TRANSITIONS",
    "Account",
    "ApiRequest",
    "ApiRequestQuerySet",
    "CallCount",
    "ConversationEvent",
    "DailyCount",
    "Feedback",
    "IntegrationHealth",
    "IntegrationSettings",
    "IntercomNote",
    "InvalidApiRequest",
    "InvalidApiRequestManager",
    "QuarantinedFeedback",
    "RecoveryAction",
    "StellaEmployee",
    "StellaSyncState",
    "SurveyOutcome",
    "SurveyRequest",
    "SurveyRequestQuerySet",
    "Teammate",
    "TeammateDailyCount",
    "TestApiRequest",
    "TestApiRequestManager",
]
