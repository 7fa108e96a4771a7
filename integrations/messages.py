"""Every reason the portal can show, once: its stable code, its words, what it means and how it is fixed.

A reason is a local verdict of the rules (surveys/decisions/rules.py names them by these codes), a message Stella
answers with (its API Status page's wording, matched by text when a call comes back), an Intercom failure,
or why a waiting survey request was cancelled. Stored rows carry the code (`ApiRequest.error_code`,
`SurveyRequest.reason`); the status page, its CSV, the API, the admin, the dry run, the reason dropdown and
the alerts read the words, explanation and fix from here. A message nobody knows still shows verbatim.

Here, in the vocabulary layer, because the clients below the survey domain answer in these words too.
Where a fix is made is named by admin URL name (resolved on demand), not imported: nothing imports upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from django.urls import reverse


class Kind(StrEnum):
    INVALID = "invalid"  # a local verdict: Stella would refuse, so it isn't called
    DO_NOT_SEND = "do_not_send"  # a local verdict: sent flagged do not send
    SUPPRESSED = "suppressed"  # a local verdict: kept back
    STELLA = "stella"  # Stella's answer to a call
    INTERCOM = "intercom"  # Intercom's answer to a look-up
    CANCELLED = "cancelled"  # why a waiting request was cancelled


class FixPlace(StrEnum):
    """Where a CSM makes the fix: each has one admin page (see `fix_url`)."""

    NOWHERE = "nowhere"  # nothing of ours to fix
    STELLA = "stella"  # in Stella itself: no page of ours
    TEAMMATES = "teammates"  # the account's teammates, where a Stella custom id is typed
    INTERCOM = "intercom"  # connect the account with Intercom
    SETTINGS = "settings"  # the account's settings (keys, brand, language, channels)


@dataclass(frozen=True)
class Message:
    code: str  # stable: stored in rows, used in URLs and the API's filter
    words: str  # the one name every screen gives it
    explanation: str  # what happened, for a support user
    fix: str  # what a CSM does about it
    place: FixPlace
    kind: Kind
    # For a local verdict that stands for Stella's answer: the code of that answer, whose words it shows
    # (and which a call would have stored). Empty: it has words of its own.
    stella: str = ""
    # The rule that finds it, as the dry run and a request's page ask it; empty: its words, asked.
    question: str = ""

    @property
    def per_teammate(self) -> bool:
        """Fixed one teammate at a time (the to-fix box lists who)."""
        return self.place == FixPlace.TEAMMATES

    @property
    def asked(self) -> str:
        return self.question or f"{self.words}?"

    def told(self, *, csm: bool) -> str:
        """What happened, then what the reader does about it: a CSM, the fix; a support user, who to ask (nothing
        more where nothing of ours is to fix)."""
        return f"{self.explanation} {self.next_step(csm=csm)}".strip()

    def next_step(self, *, csm: bool) -> str:
        if self.place == FixPlace.NOWHERE:
            return ""
        return self.fix if csm else WHO_TO_ASK[self.place]


# Who a support user asks, by where the fix is made: the fix itself is a CSM's to make.
WHO_TO_ASK = {
    FixPlace.STELLA: "Ask your CSM: it is changed in Stella.",
    FixPlace.TEAMMATES: "Ask your CSM to set the teammate up in Stella.",
    FixPlace.INTERCOM: "Ask your CSM to connect the account with Intercom.",
    FixPlace.SETTINGS: "Ask your CSM to correct the account's settings.",
}


_ADD_IN_STELLA = "Add the teammate in Stella, or give them their Stella custom id under Teammates."

# ---- Stella's answers (its API Status page; docs/reference), matched by text ----
STELLA_EMPLOYEE_NOT_FOUND = Message(
    "stella_employee_not_found",
    "Employee not found",
    "Stella has no employee with the teammate's email or custom id, so it can't credit anyone with the survey.",
    _ADD_IN_STELLA,
    FixPlace.TEAMMATES,
    Kind.STELLA,
)
STELLA_PROFILE_INCOMPLETE = Message(
    "stella_profile_incomplete",
    "Employee profile not complete",
    "The teammate's Stella profile is incomplete or not yet approved.",
    "Complete or approve the teammate's profile in Stella, then resend.",
    FixPlace.TEAMMATES,
    Kind.STELLA,
)
STELLA_EMPLOYEE_DEACTIVATED = Message(
    "stella_employee_deactivated",
    "Deactivated employee",
    "The teammate is deactivated in Stella, so nobody can be surveyed on their behalf.",
    "Reactivate the teammate in Stella, or leave them out.",
    FixPlace.TEAMMATES,
    Kind.STELLA,
)
STELLA_INVALID_CUSTOMER = Message(
    "stella_invalid_customer",
    "Invalid customer",
    "The customer's email is missing or malformed, so there is nobody to send the survey to.",
    "Nothing to fix here: the conversation had no valid customer email.",
    FixPlace.NOWHERE,
    Kind.STELLA,
)
STELLA_CHANNEL_NOT_ENABLED = Message(
    "stella_channel_not_enabled",
    "Channel not enabled for company",
    "Stella doesn't survey this channel for the company.",
    "Turn the channel on in Stella's Company Info, then review that channel's survey.",
    FixPlace.STELLA,
    Kind.STELLA,
)
STELLA_CHANNEL_MANUAL = Message(
    "stella_channel_manual",
    "Channel is in manual mode",
    "The channel is still in manual mode in Stella, so live requests are refused.",
    "Switch the channel to integrated in Stella.",
    FixPlace.STELLA,
    Kind.STELLA,
)
STELLA_BRAND_MISSING = Message(
    "stella_brand_missing",
    "Brand signifier not provided",
    "The company has several brands in Stella and the request named none.",
    "Set the account's brand.",
    FixPlace.SETTINGS,
    Kind.STELLA,
)
STELLA_BRAND_INVALID = Message(
    "stella_brand_invalid",
    "Invalid/inactive brand signifier",
    "The account's brand matches no active brand in Stella.",
    "Correct the account's brand.",
    FixPlace.SETTINGS,
    Kind.STELLA,
)
STELLA_LANGUAGE_MISSING = Message(
    "stella_language_missing",
    "Language not specified",
    "The company has several languages in Stella and the request named none.",
    "Set the account's language.",
    FixPlace.SETTINGS,
    Kind.STELLA,
)
STELLA_KEY_REJECTED = Message(
    "stella_key_rejected",
    "API key rejected",
    "Stella refused the account's API key; sending is paused until it changes.",
    "Enter the right test or production key on the account.",
    FixPlace.SETTINGS,
    Kind.STELLA,
)
STELLA_VALIDATION_ERROR = Message(
    "stella_validation_error",
    "Validation error",
    "Stella refused the request (400) without saying why.",
    "Look at the request and Stella's answer on its page; ask Stella if it isn't clear.",
    FixPlace.STELLA,
    Kind.STELLA,
)

# ---- Intercom's answers to the look-ups before a send ----
INTERCOM_TOKEN_MISSING = Message(
    "intercom_token_missing",
    "No Intercom access token: connect with Intercom",
    "The account has no Intercom access token, so the conversation couldn't be looked up in Intercom; nothing "
    "was sent to Intercom or Stella.",
    "Connect the account with Intercom.",
    FixPlace.INTERCOM,
    Kind.INTERCOM,
)
INTERCOM_TOKEN_REJECTED = Message(
    "intercom_token_rejected",
    "Intercom access token rejected",
    "Intercom refused the account's access token.",
    "Connect the account with Intercom again.",
    FixPlace.INTERCOM,
    Kind.INTERCOM,
)
INTERCOM_CONVERSATION_NOT_FOUND = Message(
    "intercom_conversation_not_found",
    "Conversation not found in Intercom",
    "Intercom answered that it has no such conversation (404) when the portal looked it up, so there was nobody "
    "to survey.",
    "Nothing to fix: the conversation no longer exists in Intercom.",
    FixPlace.NOWHERE,
    Kind.INTERCOM,
)

# ---- The rules' verdicts (surveys/decisions/rules.py), decided here before any call ----
_NOT_CALLED = "Stella was not called."
CHANNEL_UNSUPPORTED = Message(
    "channel_unsupported",
    STELLA_CHANNEL_NOT_ENABLED.words,
    f"The conversation began in a channel Stella doesn't survey (neither email nor chat). {_NOT_CALLED}",
    "Nothing to fix: Stella surveys email and chat only.",
    FixPlace.NOWHERE,
    Kind.INVALID,
    stella=STELLA_CHANNEL_NOT_ENABLED.code,
    question="Began in a channel Stella doesn't survey?",
)
CHANNEL_DISABLED = Message(
    "channel_disabled",
    STELLA_CHANNEL_NOT_ENABLED.words,
    f"The account has this channel turned off, so Stella would refuse it. {_NOT_CALLED}",
    "Turn the channel on under the account's Rules to survey it.",
    FixPlace.SETTINGS,
    Kind.INVALID,
    stella=STELLA_CHANNEL_NOT_ENABLED.code,
    question="Channel turned off for the account?",
)
INVALID_CUSTOMER = Message(
    "invalid_customer",
    STELLA_INVALID_CUSTOMER.words,
    f"The customer's email is missing or malformed, so there is nobody to send the survey to. {_NOT_CALLED}",
    STELLA_INVALID_CUSTOMER.fix,
    FixPlace.NOWHERE,
    Kind.INVALID,
    stella=STELLA_INVALID_CUSTOMER.code,
    question="Customer email missing or malformed?",
)
EMPLOYEE_NOT_FOUND = Message(
    "employee_not_found",
    "No teammate assigned",
    f"No teammate was assigned when the conversation closed, so there is nobody for Stella to credit. {_NOT_CALLED}",
    "Nothing to fix: assign conversations before closing them.",
    FixPlace.NOWHERE,
    Kind.INVALID,
    stella=STELLA_EMPLOYEE_NOT_FOUND.code,
)
EMPLOYEE_UNKNOWN = Message(
    "employee_unknown",
    STELLA_EMPLOYEE_NOT_FOUND.words,
    "Stella's employees, as last synced, include nobody with the teammate's email or Stella custom id, so Stella "
    f"would refuse it. {_NOT_CALLED}",
    _ADD_IN_STELLA,
    FixPlace.TEAMMATES,
    Kind.INVALID,
    stella=STELLA_EMPLOYEE_NOT_FOUND.code,
    question="Teammate unknown to Stella, as its employees were last synced?",
)
BOT_ASSIGNEE = Message(
    "bot_assignee",
    "Assigned to a bot",
    "A bot handled it, so Stella records it without surveying anyone.",
    "Nothing to fix.",
    FixPlace.NOWHERE,
    Kind.DO_NOT_SEND,
)
SUPPRESSED_TAG = Message(
    "suppressed_tag",
    "First message tagged do not send",
    "The first message carries a do-not-send tag (fraud, dupe, do_not_send_stella…).",
    "Nothing to fix; the tags are under the account's Rules.",
    FixPlace.NOWHERE,
    Kind.DO_NOT_SEND,
)
SUPPRESSION_WINDOW = Message(
    "suppression_window",
    "Customer surveyed within the suppression window",
    "This customer was surveyed recently, within the account's suppression window.",
    "Nothing to fix; the window is under the account's Rules.",
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
)
ALREADY_SURVEYED = Message(
    "already_surveyed",
    "Conversation already surveyed",
    "This conversation was already surveyed after an earlier close.",
    "Nothing to fix.",
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
)


# ---- Left out by the account's own rules: whom to survey (issue 20) ----
_LEFT_OUT_FIX = "Nothing to fix, if that is what the account wants; the rule is under the account's Rules."
TEAM_LEFT_OUT = Message(
    "team_left_out",
    "Team not surveyed",
    "The conversation was assigned to a team the account doesn't survey (not one of its included teams, or one "
    "of its excluded teams) when it closed. Nothing was sent to Stella.",
    _LEFT_OUT_FIX,
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
    question="Team left out by the account's team rule?",
)
TOO_FEW_REPLIES = Message(
    "too_few_replies",
    "Too few teammate replies",
    "Human teammates wrote fewer replies in the conversation than the account's minimum, so there is little for "
    "the customer to rate (auto-closed, abandoned or handled by a bot). Nothing was sent to Stella.",
    _LEFT_OUT_FIX,
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
    question="Fewer teammate replies than the account's minimum?",
)
REPLY_TOO_OLD = Message(
    "reply_too_old",
    "Closed long after the last teammate reply",
    "The conversation closed more days after a teammate last replied than the account allows: the customer "
    "would rate a conversation they no longer remember. Nothing was sent to Stella.",
    _LEFT_OUT_FIX,
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
    question="Closed too long after the last teammate reply?",
)
NOT_SAMPLED = Message(
    "not_sampled",
    "Not in the sample",
    "The account surveys a sample of its closures, the same share of each teammate's, and this one was not "
    "picked. Nothing was sent to Stella.",
    _LEFT_OUT_FIX,
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
    question="Left out of the account's sample?",
)

# A survey waiting, not a verdict: shown as its row's detail while it waits.
QUIET_HOURS = Message(
    "quiet_hours",
    "Waiting for the account's quiet hours to end",
    "It fell due during the account's quiet hours (in the account's time zone, or the customer's where the account "
    "keeps them so), so it goes when they end; a reopen, reply, snooze or deletion until then still cancels it.",
    "Nothing to fix; the quiet hours are under the account's Rules.",
    FixPlace.NOWHERE,
    Kind.SUPPRESSED,
)


# ---- Why a waiting request was cancelled ----
def _cancelled(code: str, words: str, explanation: str) -> Message:
    return Message(code, words, explanation, "Nothing to fix.", FixPlace.NOWHERE, Kind.CANCELLED)


REOPENED = _cancelled(
    "reopened", "Reopened during the channel delay", "The conversation was reopened before the survey went out."
)
CUSTOMER_REPLIED = _cancelled(
    "customer_replied",
    "Customer replied during the channel delay",
    "The customer wrote again before the survey went out.",
)
SNOOZED = _cancelled(
    "snoozed", "Snoozed during the channel delay", "The conversation was snoozed before the survey went out."
)
DELETED = _cancelled(
    "deleted",
    "Conversation deleted during the channel delay",
    "The conversation was deleted before the survey went out.",
)
SUPERSEDED = _cancelled(
    "superseded",
    "Closed again later: the newer close is the one surveyed",
    "The conversation closed again, and a conversation is surveyed once, for its latest close.",
)
ERASED = _cancelled(
    "erased",
    "The customer's personal data was erased before it was sent",
    "The customer asked to be forgotten, so nothing is sent about them.",
)
STOPPED_IN_INTERCOM = _cancelled(
    "stopped_in_intercom",
    "Stopped by a teammate in Intercom",
    "A teammate pressed Don't survey this conversation in the inbox app before the survey went out; Stella was "
    "not called.",
)

MESSAGES: dict[str, Message] = {
    message.code: message
    for message in (
        STELLA_EMPLOYEE_NOT_FOUND, STELLA_PROFILE_INCOMPLETE, STELLA_EMPLOYEE_DEACTIVATED, STELLA_INVALID_CUSTOMER,
        STELLA_CHANNEL_NOT_ENABLED, STELLA_CHANNEL_MANUAL, STELLA_BRAND_MISSING, STELLA_BRAND_INVALID,
        STELLA_LANGUAGE_MISSING, STELLA_KEY_REJECTED, STELLA_VALIDATION_ERROR,
        INTERCOM_TOKEN_MISSING, INTERCOM_TOKEN_REJECTED, INTERCOM_CONVERSATION_NOT_FOUND,
        CHANNEL_UNSUPPORTED, CHANNEL_DISABLED, INVALID_CUSTOMER, EMPLOYEE_NOT_FOUND, EMPLOYEE_UNKNOWN,
        BOT_ASSIGNEE, SUPPRESSED_TAG, SUPPRESSION_WINDOW, ALREADY_SURVEYED,
        TEAM_LEFT_OUT, TOO_FEW_REPLIES, REPLY_TOO_OLD, NOT_SAMPLED, QUIET_HOURS,
        REOPENED, CUSTOMER_REPLIED, SNOOZED, DELETED, SUPERSEDED, ERASED, STOPPED_IN_INTERCOM,
    )
}  # fmt: skip

# Answers matched by their text: what Stella and Intercom say (a verdict's words are Stella's own).
_ANSWERS = [message for message in MESSAGES.values() if message.kind in (Kind.STELLA, Kind.INTERCOM)]
# Each name's first code: Stella's answer before the verdicts that stand for it.
_BY_WORDS = {entry.words: entry.code for entry in reversed(MESSAGES.values())}


def message(code: str) -> Message | None:
    return MESSAGES.get(code)


def code_of(text: str) -> str:
    """The code of an answer from its text (exactly, or its start: a message may carry detail after it, or
    come after a retry's "Gave up after 3 attempts: "); "" for a message nobody knows."""
    text = text.strip()
    if not text:
        return ""
    if text in _BY_WORDS:
        return _BY_WORDS[text]
    for answer in _ANSWERS:
        if text.startswith(answer.words):
            return answer.code
    for answer in _ANSWERS:
        if answer.words in text:
            return answer.code
    return ""


def words_of(code: str, text: str = "") -> str:
    """What a row reads as: its code's words, else the text it stored (an unknown message, verbatim)."""
    found = MESSAGES.get(code)
    return found.words if found else text


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for entry in MESSAGES.values():
        groups.setdefault(entry.words, []).append(entry.code)
    return groups


# Each name once, with every code that reads as it, in registry order: the reason dropdown's options.
REASON_GROUPS = _groups()
REASON_CHOICES = [(codes[0], words) for words, codes in REASON_GROUPS.items()]


def codes_like(code: str) -> list[str]:
    """Every code that reads as `code` does: what filtering by that reason matches."""
    entry = MESSAGES.get(code)
    return REASON_GROUPS[entry.words] if entry else []


# Where each place's fix is made, by admin URL name: (name, takes the account as an argument, query, anchor).
_PLACES: dict[FixPlace, tuple[str, bool, bool, str]] = {
    FixPlace.TEAMMATES: ("admin:surveys_teammate_changelist", False, True, ""),
    FixPlace.INTERCOM: ("admin:surveys_account_connect_intercom", True, False, ""),
    FixPlace.SETTINGS: ("admin:surveys_account_change", True, False, "#integration-group"),
}


def fix_url(entry: Message, account_id: int, *, teammate: str = "") -> str:
    """The page where a CSM fixes `entry` for the account ("" where nothing of ours is to fix): for a
    teammate's problem, the Teammates list narrowed to the account (and to `teammate`, given)."""
    if entry.place not in _PLACES:
        return ""
    name, with_account, with_query, anchor = _PLACES[entry.place]
    url = reverse(name, args=[account_id] if with_account else [])
    if with_query:
        query = {"account__id__exact": str(account_id), **({"q": teammate} if teammate else {})}
        url += "?" + urlencode(query)
    return url + anchor
