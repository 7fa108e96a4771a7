"""Error reports to Sentry, when SENTRY_DSN is set (off by default).

What leaves is the error and where it happened, never personal data, keys or tokens: no request bodies, query
strings, cookies or users (send_default_pii off, its default), no local variables (a frame's `api_key` would go with them),
and every string of the event, its breadcrumbs (the log lines before it) included, passes through the redaction
the logs use (portal.redaction.redact_text); fields named like a secret are masked whatever they hold.
"""

from __future__ import annotations

from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

from portal.redaction import SECRET_FIELD_NAMES, mask_secret, redact_text


def sentry_init(dsn: str, *, environment: str, **options: Any) -> None:
    """Report errors (unhandled exceptions, and log lines at ERROR, e.g. a failed task) to Sentry."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration()],
        # send_default_pii is left unset, which is off (no users, cookies, addresses): this SDK deprecates setting it.
        include_local_variables=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *SECRET_FIELD_NAMES], recursive=True),
        before_send=sentry_event_scrub,
        before_breadcrumb=sentry_breadcrumb_scrub,
        **options,
    )


def sentry_event_scrub(event: Event, hint: Hint) -> Event:
    """The event as it may leave: query strings and bodies dropped, secrets masked everywhere in it."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        request.pop("data", None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = url.split("?", 1)[0]
    return cast(Event, _scrubbed(event))


def sentry_breadcrumb_scrub(breadcrumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb:
    """A log line or request recorded before the error, as it may leave with it."""
    return cast(Breadcrumb, _scrubbed(breadcrumb))


def _scrubbed(value: Any, key: str = "") -> Any:
    if key.lower().replace("-", "_") in SECRET_FIELD_NAMES and isinstance(value, str):
        return mask_secret(value)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {name: _scrubbed(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value
