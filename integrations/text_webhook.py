"""A Slack-compatible webhook: `{"text": …}` POSTed as JSON, which Slack's incoming webhooks, Microsoft Teams'
workflows, Zapier and most automations take. The URL is a secret (Slack's holds its token): no error or log
line here names it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import requests

from integrations.intercom.client import TIMEOUT

logger = logging.getLogger(__name__)


class TextWebhookError(Exception):
    """The webhook didn't take the message; the words never include its URL."""


class TextWebhookRateLimited(TextWebhookError):
    def __init__(self, reset_at: datetime) -> None:
        super().__init__(f"The webhook asked to wait until {reset_at:%H:%M:%S} UTC")
        self.reset_at = reset_at


class TextWebhookUnanswered(TextWebhookError):
    """No answer came back: the message may have arrived."""


def text_webhook_post(url: str, text: str) -> None:
    """POST the message; any 2xx is taken. Raises TextWebhookRateLimited on 429 (Retry-After honoured),
    TextWebhookUnanswered when it may have arrived, TextWebhookError otherwise."""
    if not url.startswith(("https://", "http://")):
        raise TextWebhookError("The webhook URL is not an http(s) URL")
    try:
        response = requests.post(url, json={"text": text}, timeout=TIMEOUT, allow_redirects=False)
    except requests.ConnectionError as exc:
        raise TextWebhookError(f"The webhook could not be reached: {type(exc).__name__}") from None
    except requests.RequestException as exc:
        raise TextWebhookUnanswered(f"The webhook didn't answer: {type(exc).__name__}") from None
    logger.info("text_webhook.posted", extra={"status": response.status_code})
    if response.status_code == 429:
        raise TextWebhookRateLimited(_retry_at(response))
    if not 200 <= response.status_code < 300:
        raise TextWebhookError(f"The webhook answered {response.status_code}")


def _retry_at(response: requests.Response) -> datetime:
    try:
        seconds = max(0, min(int(response.headers["Retry-After"]), 3600))
    except (KeyError, ValueError):
        seconds = 30
    return datetime.now(tz=UTC) + timedelta(seconds=seconds)
