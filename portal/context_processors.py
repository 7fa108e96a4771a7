from django.conf import settings
from django.http import HttpRequest


def sandbox(request: HttpRequest) -> dict[str, bool]:
    """Pages show a banner while the built-in sandbox stands in for Stella and Intercom."""
    return {"sandbox": settings.SANDBOX}
