"""Error reports to Sentry (SENTRY_DSN, off by default) carry the error, never personal data, keys or tokens. The
events are caught by a transport of the test's own: nothing leaves the machine."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from portal.sentry import sentry_init

ROOT = Path(__file__).resolve().parents[2]
STELLA_KEY = "sk_live_9f8e7d6c5b4a3210"


class Kept(Transport):
    def __init__(self, options: dict | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [item.payload.json for envelope in self.envelopes for item in envelope.items if item.type == "event"]


def dsn(url: str) -> str:
    """A DSN for a Sentry at `url` (http://host:port)."""
    return url.replace("http://", "http://public-key@", 1) + "/1"


@pytest.fixture
def sentry(refused_url, monkeypatch):
    monkeypatch.setenv("SENTRY_RELEASE", "test")  # else sentry-sdk asks git for one
    kept = Kept()
    sentry_init(dsn(refused_url), environment="test", transport=kept)
    yield kept
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)  # off again


def call_stella(api_key: str) -> None:
    headers = {"x-api-key": api_key}  # a local a report with local variables would carry
    raise ValueError(f"Invalid header value: {headers['x-api-key']!r}")


def test_an_error_reaches_sentry_without_the_key_it_held(sentry):
    logger = logging.getLogger("surveys.delivery.sending")
    logger.info("stella.request.sending", extra={"api_key": STELLA_KEY})  # a breadcrumb
    try:
        call_stella(STELLA_KEY)
    except ValueError:
        logger.exception("stella.request_not_made", extra={"account": 3, "authorization": f"Bearer {STELLA_KEY}"})
    sentry_sdk.flush()
    [event] = sentry.events()
    assert STELLA_KEY not in json.dumps(event)
    assert event["exception"]["values"][0]["value"] == "Invalid header value: '••••3210'"
    assert event["environment"] == "test"
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames and not any("vars" in frame for frame in frames)


def test_no_personal_data_is_sent(sentry):
    assert not sentry_sdk.get_client().options["send_default_pii"]
    assert not sentry_sdk.get_client().options["include_local_variables"]


@pytest.mark.slow
@pytest.mark.parametrize(("set_dsn", "active"), [(False, "False"), (True, "True")])
def test_off_unless_a_dsn_is_set(set_dsn, active, refused_url):
    script = "import django, sentry_sdk; django.setup(); print(sentry_sdk.get_client().is_active())"
    env = {**os.environ, "SENTRY_DSN": dsn(refused_url) if set_dsn else "", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == active, result.stderr
