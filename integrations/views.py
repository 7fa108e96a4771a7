import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from integrations.intercom.json_fields import PayloadError
from integrations.metrics import webhook_answers_counted
from integrations.webhooks import DuplicateNotification, InvalidSignature, intercom_webhook_receive

logger = logging.getLogger(__name__)


@csrf_exempt
@webhook_answers_counted
@require_http_methods(["POST", "HEAD"])
def intercom_webhook(request: HttpRequest) -> JsonResponse:
    """One endpoint for every workspace; Intercom checks the URL with HEAD."""
    if request.method == "HEAD":
        return JsonResponse({})
    if refused := refused_unread(request, signature_header="X-Hub-Signature"):
        return refused
    signature = request.headers["X-Hub-Signature"]
    try:
        webhook = intercom_webhook_receive(headers=request.headers, body=request.body, signature=signature)
    except InvalidSignature:
        return error_response(401, "X-Hub-Signature does not match the body")
    except PayloadError as exc:
        return error_response(400, str(exc))
    except DuplicateNotification:
        return JsonResponse({"status": "duplicate"})
    except DatabaseError:
        logger.exception("intercom.webhook.database_error")
        return error_response(503, "could not store the webhook; please retry")
    return JsonResponse({"status": webhook.status})


def refused_unread(request: HttpRequest, *, signature_header: str) -> JsonResponse | None:
    """The answer to a request from Intercom refused before its body is read: a length that isn't one or too large,
    no signature. Webhooks and the inbox app's Canvas Kit requests (surveys/inbox_app/views.py) alike."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0:
        return error_response(400, "Content-Length is not a number of bytes")
    if length > settings.INTERCOM_WEBHOOK_MAX_BYTES:
        return error_response(413, f"body is larger than {settings.INTERCOM_WEBHOOK_MAX_BYTES} bytes")
    if not request.headers.get(signature_header):
        return error_response(400, f"{signature_header} header is missing")
    return None


def error_response(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
