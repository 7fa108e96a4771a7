"""The portal's own middleware: every request gets a name for its log lines (RequestIdMiddleware), and every page
shows times in the signed-in user's zone: their UserPreference, else the portal's (TIME_ZONE, UTC unless set)."""

import re
import uuid
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portal.logging import log_context_set
from portal.models import UserPreference, time_zone_or_utc

# The user's zone, kept in their session so that a page costs no query for it: read once per session, and
# written when the user changes it (user_time_zone_save). Signing out ends the session, and the copy with it.
SESSION_KEY = "portal_time_zone"


def user_time_zone_name(request: HttpRequest) -> str:
    """The zone the user chose, from the session (the database the first time in a session), else the portal's."""
    name = request.session.get(SESSION_KEY)
    if name is None and request.user.is_authenticated:
        chosen = UserPreference.objects.filter(user_id=request.user.pk).values_list("time_zone", flat=True).first()
        name = request.session[SESSION_KEY] = chosen or settings.TIME_ZONE
    return name or settings.TIME_ZONE


def user_time_zone_save(request: HttpRequest, name: str) -> None:
    """The signed-in user's choice, for every page from now on: saved, and put in the session."""
    UserPreference.objects.update_or_create(user_id=cast(int, request.user.pk), defaults={"time_zone": name})
    request.session[SESSION_KEY] = name
    timezone.activate(time_zone_or_utc(name))


class UserTimeZoneMiddleware:
    """After authentication: activates the user's zone for the request, so templates and forms (the admin's too)
    show times in it. The portal's own days (the daily counts) stay in settings.TIME_ZONE."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        timezone.activate(time_zone_or_utc(user_time_zone_name(request)))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


# An X-Request-ID from the proxy is kept when it looks like one (a UUID, a hex or base64 id: at most 128 of these
# characters); anything else is replaced, so a header can't put arbitrary text into every log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


class RequestIdMiddleware:
    """First of all: names the request (its X-Request-ID when well formed, else a new one), answers with that name
    in X-Request-ID, and puts it on every line logged while the request is handled (portal.logging)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        # Set for the rest of the request, not only this block: Django logs a 4xx or 5xx answer after the middleware
        # has returned it. The request_finished signal clears it (portal.logging.request_context_end).
        log_context_set(request_id=request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
