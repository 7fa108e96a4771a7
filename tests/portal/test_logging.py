"""Log lines: JSON with LOG_FORMAT=json (plain text by default), each with its event, its context (the request's id,
the account, the task) and never a secret in full."""

import copy
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
from pathlib import Path

import pytest
import responses
from django.conf import settings as django_settings
from django.utils import timezone
from django_q.tasks import async_task

from surveys.delivery.sending import survey_request_send
from surveys.models import SurveyRequest
from tests.factories import SurveyRequestFactory
from tests.helpers import load_fixture, post_webhook

ROOT = Path(__file__).resolve().parents[2]
STELLA_KEY = "sk_live_9f8e7d6c5b4a3210"

logger = logging.getLogger("tests.portal.test_logging")


@pytest.fixture
def json_lines():
    """The portal's own logging configuration with LOG_FORMAT=json, its console handler writing to a buffer; returns
    a function that gives the JSON lines written since it was last called. The configuration is put back after."""
    config = copy.deepcopy(django_settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    logging.config.dictConfig(config)
    [console] = [handler for handler in logging.getLogger().handlers if handler.name == "console"]
    buffer = io.StringIO()
    console.setStream(buffer)

    def lines() -> list[dict]:
        written = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in written.splitlines()]

    yield lines
    logging.config.dictConfig(django_settings.LOGGING)


@pytest.mark.django_db
def test_a_requests_log_lines_carry_its_id_and_the_answer_returns_it(client, account, json_lines):
    payload = load_fixture("conversation_admin_closed")
    post_webhook(client, payload)
    json_lines()  # what the first delivery logged
    response = post_webhook(client, payload, process=False, **{"X-Request-ID": "lb-7f3a9c"})
    assert response["X-Request-ID"] == "lb-7f3a9c"
    [duplicate] = [line for line in json_lines() if line["event"] == "intercom.webhook.duplicate"]
    assert duplicate["request_id"] == "lb-7f3a9c"
    assert duplicate["notification_id"] == payload["id"]
    assert (duplicate["level"], duplicate["logger"]) == ("INFO", "integrations.webhooks")
    assert duplicate["time"].startswith("20")


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["", "has spaces\r\nand a forged: line", "x" * 129])
def test_a_request_id_that_isnt_one_is_replaced_by_a_new_one(client, given):
    response = client.get("/healthz", headers={"X-Request-ID": given} if given else {})
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"] != given


@pytest.mark.django_db
def test_a_4xx_answer_logged_by_django_carries_the_request_id_and_no_query_string(client, json_lines):
    client.get("/no-such-page?access_code=abc123", headers={"X-Request-ID": "lb-404"})
    [not_found] = [line for line in json_lines() if line["event"].startswith("Not Found")]
    assert (not_found["request_id"], not_found["status_code"]) == ("lb-404", 404)
    assert not_found["request"] == "GET /no-such-page"


def log_in_a_task() -> None:
    logger.info("tests.task_ran", extra={"account": 7})


@pytest.mark.django_db
def test_a_tasks_log_lines_say_which_task_and_account(json_lines):
    async_task("tests.portal.test_logging.log_in_a_task", task_name="log-in-a-task", sync=True)
    [line] = [line for line in json_lines() if line["event"] == "tests.task_ran"]
    assert (line["task_name"], line["task_func"], line["account"]) == (
        "log-in-a-task",
        "tests.portal.test_logging.log_in_a_task",
        7,
    )
    assert len(line["task_id"]) == 32
    logger.info("tests.after_the_task")
    [after] = [line for line in json_lines() if line["event"] == "tests.after_the_task"]
    assert "task_id" not in after


def test_secrets_in_a_log_line_leave_masked(json_lines, settings):
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    logger.warning(
        "stella.call_failed headers=%s", {"x-api-key": STELLA_KEY}, extra={"api_key": STELLA_KEY, "account": 3}
    )
    logger.warning("metrics.scraped with %s", f"Authorization: Bearer {settings.METRICS_TOKEN}")
    try:
        raise ValueError(f"Invalid header value: {STELLA_KEY!r} for x-api-key={STELLA_KEY}")
    except ValueError:
        logger.exception("stella.request_not_made")
    lines = json_lines()
    text = json.dumps(lines)
    assert STELLA_KEY not in text and settings.METRICS_TOKEN not in text
    assert lines[0]["api_key"] == "••••3210" and lines[0]["account"] == 3
    assert "'x-api-key': '••••3210'" in lines[0]["event"]
    assert lines[1]["event"] == "metrics.scraped with Authorization: Bearer ••••6789"
    assert lines[2]["exc_info"].startswith("Traceback") and "ValueError" in lines[2]["exc_info"]


@pytest.mark.slow
def test_log_format_json_makes_the_portal_log_json_lines():
    """The setting end to end: a portal process started with LOG_FORMAT=json writes JSON lines on stderr."""
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('surveys.delivery.sending').warning('account.sending_paused', extra={'account': 12, 'reason': 'x'})"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert {key: line[key] for key in ("event", "level", "logger", "account", "reason")} == {
        "event": "account.sending_paused",
        "level": "WARNING",
        "logger": "surveys.delivery.sending",
        "account": 12,
        "reason": "x",
    }


@pytest.mark.slow
def test_plain_text_stays_the_default():
    script = "import django, logging; django.setup(); logging.getLogger('x').warning('account.sending_paused')"
    env = {key: value for key, value in os.environ.items() if key != "LOG_FORMAT"}
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stderr.strip().endswith("WARNING x account.sending_paused")


@pytest.mark.django_db
@responses.activate
def test_a_sends_log_lines_carry_its_account(account, json_lines, settings):
    responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={}, status=201)
    now = timezone.now()
    survey_request = SurveyRequestFactory(account=account, send_after=now)
    assert survey_request_send(survey_request.pk, now=now).status == SurveyRequest.Status.SENT
    [sent] = [line for line in json_lines() if line["event"] == "stella.request.sent"]
    assert (sent["account"], sent["survey_request"], sent["outcome"]) == (account.pk, survey_request.pk, "sent")
