"""Every reason a request didn't simply go out, in plain words for support teams."""

from surveys.suppression import STELLA_MESSAGES, SuppressionReason

# Stella's own messages (its API Status page) and ours, explained.
EXPLANATIONS = {
    "Employee not found": "Stella has no employee with the teammate's email. Add them in Stella, or give the "
    "teammate their Stella custom id under Teammates.",
    "Employee profile not complete": "The teammate's Stella profile is incomplete or not yet approved.",
    "Deactivated employee": "The teammate is deactivated in Stella; reactivate them to survey on their behalf.",
    "Invalid customer": "The customer's email is missing or malformed, so there is nobody to send the survey to.",
    "Channel not enabled for company": "The conversation began in a channel Stella doesn't survey for this company "
    "(or the account has it turned off).",
    "Channel is in manual mode": "The channel is still in manual mode in Stella; switch it to integrated to go live.",
    "Brand signifier not provided": "The company has several brands in Stella: set the account's brand.",
    "Invalid/inactive brand signifier": "The account's brand matches no active brand in Stella.",
    "Language not specified": "The company has several languages in Stella: set the account's language.",
    "API key rejected": "Stella refused the API key. Check the account's test or production key; sending is "
    "paused until it changes.",
    "Intercom access token rejected": "Intercom refused the account's access token: connect with Intercom again.",
    "Conversation not found in Intercom": "The conversation was deleted in Intercom before it could be looked up.",
}
KNOWN_MESSAGES = list(EXPLANATIONS)

REASON_EXPLANATIONS = {
    SuppressionReason.BOT_ASSIGNEE: "A bot handled it, so Stella records it without surveying anyone.",
    SuppressionReason.SUPPRESSED_TAG: "The first message carries a do-not-send tag (fraud, dupe, do_not_send_stella…).",
    SuppressionReason.SUPPRESSION_WINDOW: "This customer was surveyed recently, within the account's suppression window.",
    SuppressionReason.ALREADY_SURVEYED: "This conversation was already surveyed after an earlier close.",
    **{reason: EXPLANATIONS[message] for reason, message in STELLA_MESSAGES.items()},
}


def explain(message: str) -> str:
    if message in EXPLANATIONS:
        return EXPLANATIONS[message]
    for known, explanation in EXPLANATIONS.items():
        if message.startswith(known):
            return explanation
    return message
