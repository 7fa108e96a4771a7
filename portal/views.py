import hashlib
import hmac
from dataclasses import asdict

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from portal.metrics import metrics_exposition
from portal.readiness import readiness_checks


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: the process answers. Touches no database."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """For monitoring and deploys: 200 when the database, the task broker, a task cluster and the migrations are all
    as they should be; 503 naming what isn't."""
    checks = readiness_checks(now=timezone.now())
    failing = [name for name, check in checks.items() if not check.ok]
    body = {
        "status": "failing" if failing else "ready",
        "failing": failing,
        "checks": {name: asdict(check) for name, check in checks.items()},
    }
    response = JsonResponse(body, status=503 if failing else 200)
    # An answer, not an error of the portal's: Django would log every probe's 503 as one (readiness.check_failed
    # already logs each failing check once per probe, as a warning).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """For Prometheus, with `Authorization: Bearer <METRICS_TOKEN>`. Without the token (or with none set) the
    answer is the portal's ordinary 404, so nobody learns the endpoint is there."""
    if not _bearer_token_matches(request, settings.METRICS_TOKEN):
        raise Http404
    return HttpResponse(metrics_exposition(now=timezone.now()), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _bearer_token_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Digests of equal length, compared in constant time: neither the token nor its length leaks through timing.
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), hashlib.sha256(token.encode()).digest())
