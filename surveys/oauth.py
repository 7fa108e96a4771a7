"""Connect with Intercom: the OAuth install flow, so CSMs never paste tokens.

The authorize URL carries a `state` bound to the CSM's session and the account; the callback
checks it, exchanges the code at Intercom's token endpoint, asks Intercom which workspace the
token belongs to, and only then stores token and workspace id on the account.
"""

import secrets

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    intercom_authorize_url,
    intercom_token_for_code,
)
from surveys.accounts import account_connect_intercom
from surveys.models import Account

SESSION_KEY = "intercom_oauth"


def account_authorize_url(request: HttpRequest, account: Account) -> str:
    """Where to send a CSM to connect `account`: Intercom's consent page, with a `state` bound to this session."""
    state = secrets.token_urlsafe(24)
    request.session[SESSION_KEY] = {"state": state, "account": account.pk}
    return intercom_authorize_url(
        state=state, redirect_uri=request.build_absolute_uri(reverse("intercom_oauth_callback"))
    )


@staff_member_required
def intercom_oauth_callback(request: HttpRequest) -> HttpResponse:
    expected = request.session.pop(SESSION_KEY, None)
    state = request.GET.get("state", "")
    if not expected or not state or not secrets.compare_digest(state, expected["state"]):
        return _failed(request, "This Intercom connection link is not valid: it expired, was used already, or was "
                       "opened in another browser. Start again from the account's page.")  # fmt: skip
    account = Account.objects.select_related("integration").filter(pk=expected["account"]).first()
    if account is None:
        return _failed(request, "The account to connect no longer exists.")
    if not request.user.has_perm("surveys.change_account"):
        return _failed(request, "You may not change this account.", status=403)
    if request.GET.get("error") or not request.GET.get("code"):
        return _failed(request, "Intercom did not authorise the connection: nothing was changed.", account=account)
    try:
        token = intercom_token_for_code(request.GET["code"])
        workspace_id = IntercomClient(token).workspace_id()
    except IntercomError as exc:
        return _failed(request, f"{exc}: nothing was changed.", account=account)
    try:
        account_connect_intercom(account, workspace_id=workspace_id, token=token)
    except IntegrityError:
        return _failed(request, f"Intercom workspace {workspace_id} already belongs to another account: nothing was "
                       "changed.", account=account)  # fmt: skip
    messages.success(request, f"Connected {account} to Intercom workspace {workspace_id}.")
    return redirect("admin:surveys_account_change", account.pk)


def _failed(request: HttpRequest, message: str, *, account: Account | None = None, status: int = 400) -> HttpResponse:
    return render(request, "surveys/oauth_failed.html", {"message": message, "account": account}, status=status)
