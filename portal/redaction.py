"""Secrets appear masked everywhere a person or a log can see them."""

from collections.abc import Mapping

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
