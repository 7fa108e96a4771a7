"""Secrets appear masked everywhere a person or a log can see them."""

import re
from collections.abc import Mapping

from django.conf import settings

SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "proxy-authorization"}


def mask_secret(value: str | None) -> str:
    """Show only the last 4 characters, and nothing of a short secret."""
    if not value:
        return ""
    if len(value) <= 8:
        return "••••"
    return "••••" + value[-4:]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: mask_secret(value) if name.lower() in SECRET_HEADERS else value for name, value in headers.items()}


def mask_email(email: str) -> str:
    """ada.lovelace@example.com → a•••@example.com: enough to recognise, not to copy."""
    local, at, domain = email.partition("@")
    if not at:
        return mask_secret(email)
    return f"{local[:1]}•••@{domain}"


def mask_name(name: str) -> str:
    """Ada Lovelace → A••• L•••: each word's initial, as an email keeps its first letter."""
    return " ".join(f"{word[:1]}•••" for word in name.split())


# Context fields (a log call's `extra`, an error report's data) whose values are secrets, whatever they hold.
SECRET_FIELD_NAMES = frozenset(
    {"api_key", "x_api_key", "apikey", "authorization", "token", "access_token", "refresh_token", "secret",
     "client_secret", "api_secret", "password", "cookie", "session", "sessionid"}
)  # fmt: skip
# A credential after its scheme (Authorization: Bearer …); a value after a name that says it is a secret (x-api-key:
# …, "api_key": "…", ?access_token=…), running to the next space, quote, comma, brace or &; and a header's value
# quoted in an error (requests' InvalidHeader quotes it: for Stella's, the API key).
_AFTER_SCHEME = re.compile(r"\b(Bearer|Token|Basic)(\s+)([^\s\"',;}&]+)")
_AFTER_NAME = re.compile(
    r"""(?i)\b(x-api-key|api[_-]?key|api[_-]secret|client[_-]secret|access[_-]token|refresh[_-]token|token|"""
    r"""secret|password|authorization)(["']?\s*[:=]\s*["']?)(?!(?:Bearer|Token|Basic)\s)([^\s"',;}&]+)"""
)
_HEADER_VALUE = re.compile(r"(?i)(header value:?\s*)(['\"])(.*?)\2")
# The portal's own secrets, masked wherever they appear; shorter values are too likely to be ordinary words.
_SECRET_SETTINGS = ("SECRET_KEY", "INTERCOM_CLIENT_SECRET", "METRICS_TOKEN", "SENTRY_DSN")
_MIN_KNOWN_SECRET = 8


def redact_text(text: str) -> str:
    """Text for a log line or an error report with the secrets in it masked: the portal's own (SECRET_KEY,
    INTERCOM_CLIENT_SECRET, METRICS_TOKEN, the field encryption keys) and any value in the shape of a credential."""
    text = _AFTER_SCHEME.sub(lambda match: match[1] + match[2] + mask_secret(match[3]), text)
    text = _HEADER_VALUE.sub(lambda match: match[1] + match[2] + mask_secret(match[3]) + match[2], text)
    text = _AFTER_NAME.sub(lambda match: match[1] + match[2] + mask_secret(match[3]), text)
    for secret in _known_secrets():
        text = text.replace(secret, mask_secret(secret))
    return text


def _known_secrets() -> list[str]:
    values = [getattr(settings, name, "") or "" for name in _SECRET_SETTINGS]
    values += list(getattr(settings, "FIELD_ENCRYPTION_KEYS", []))
    return [value for value in values if len(value) >= _MIN_KNOWN_SECRET]
