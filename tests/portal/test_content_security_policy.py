"""Every page says what it may load and do (Content-Security-Policy): the portal's own files only, no inline script
or style, never framed. The browser tests check that no page breaks it (tests/browser/test_content_security_policy.py)."""

import ast

import pytest
from django.contrib.auth.models import User

from tests.portal.test_settings import DEPLOYED, settings_values

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
}


def directives(response) -> set[str]:
    return {part.strip() for part in response["Content-Security-Policy"].split(";")}


@pytest.mark.parametrize(
    ("url", "signed_in"),
    [("/login/", False), ("/admin/login/", False), ("/healthz", False), ("/status/", True), ("/admin/", True),
     ("/api/survey-requests/", True), ("/api/docs/", True)],
)  # fmt: skip
def test_every_answer_carries_the_policy(client, url, signed_in):
    if signed_in:
        client.force_login(User.objects.create_superuser("csm", "csm@stella.example", "pw-csm-12345"))
    response = client.get(url)
    assert response.status_code == 200
    assert POLICY <= directives(response)
    assert not any("unsafe" in directive for directive in directives(response))


@pytest.mark.slow
def test_forms_go_to_the_portal_or_to_intercoms_consent_page():
    """Connecting an account posts to the portal, which redirects to Intercom: a browser holds that redirect to
    form-action too."""
    [policy] = settings_values("CONTENT_SECURITY_POLICY", **DEPLOYED)
    assert ast.literal_eval(policy)["DIRECTIVES"]["form-action"] == ["'self'", "https://app.intercom.com"]
    [eu] = settings_values(
        "CONTENT_SECURITY_POLICY", **DEPLOYED, INTERCOM_OAUTH_URL="https://app.eu.intercom.com/oauth"
    )
    assert ast.literal_eval(eu)["DIRECTIVES"]["form-action"] == ["'self'", "https://app.eu.intercom.com"]
