"""The inbox app's two Canvas Kit endpoints (README, "Inside Intercom: the inbox app"): Intercom POSTs initialize
when a teammate opens a conversation and submit when they press a button. Both are checked as a webhook is
(integrations/views.py: length and header before the body is read; integrations/intercom/signature.py: the
X-Body-Signature, compared in constant time), and read by integrations/intercom/canvas.py."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.intercom.canvas import CanvasRequest
from integrations.intercom.json_fields import PayloadError
from integrations.intercom.signature import body_signature_is_valid
from integrations.views import error_response, refused_unread
from surveys.inbox_app.canvas import inbox_canvas

SIGNATURE_HEADER = "X-Body-Signature"


@csrf_exempt
@require_POST
def canvas_initialize(request: HttpRequest) -> JsonResponse:
    return _answer(request)


@csrf_exempt
@require_POST
def canvas_submit(request: HttpRequest) -> JsonResponse:
    return _answer(request)


def _answer(request: HttpRequest) -> JsonResponse:
    if refused := refused_unread(request, signature_header=SIGNATURE_HEADER):
        return refused
    signature = request.headers[SIGNATURE_HEADER]
    if not body_signature_is_valid(request.body, signature, settings.INTERCOM_CLIENT_SECRET):
        return error_response(401, f"{SIGNATURE_HEADER} does not match the body")
    try:
        canvas_request = CanvasRequest.from_json(request.body)
    except PayloadError as exc:
        return error_response(400, str(exc))
    return JsonResponse(inbox_canvas(canvas_request))
