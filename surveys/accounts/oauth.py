"""Connect with Intercom: the OAuth install flow, so CSMs never paste tokens.

The authorize URL carries a `state` bound to the CSM's session and the account; the callback
checks it, exchanges the code at Intercom's token endpoint, asks Intercom which workspace the
token belongs to, and only then stores token and workspace id on the account.

An account that already has a workspace of its own is moved to another only once the CSM
confirms, on a page that shows both ids. Meanwhile the token waits in the session, encrypted
with FIELD_ENCRYPTION_KEYS and for a few minutes only: never in the page or a URL.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomMe,
    intercom_api_url,
    intercom_authorize_url,
    intercom_region_of,
    intercom_token_for_code,
)
from integrations.vocabulary import IntercomRegion
from portal.crypto import SecretUndecryptable, secret_decrypt, secret_encrypt
from portal.history import Source, configuration_changed_by
from surveys.accounts.account import WorkspaceChangeUnconfirmed, account_connect_intercom
from surveys.models import Account, IntegrationSettings

SESSION_KEY = "intercom_oauth"
PENDING_KEY = "intercom_oauth_pending"
# How long a CSM has to confirm a change of workspace before the token waiting for it is dropped.
PENDING_SECONDS = 10 * 60
# Where the callback sends the CSM back to: the page the connection was started from.
BACK_TO = {"account": "admin:surveys_account_change", "checklist": "admin:surveys_account_checklist"}


def account_authorize_url(request: HttpRequest, account: Account, *, back: str = "account") -> str:
    """Where to send a CSM to connect `account`: Intercom's consent page, with a `state` bound to this session.
    `back`: the page to return to once connected ("account" or "checklist")."""
    state = secrets.token_urlsafe(24)
    request.session[SESSION_KEY] = {"state": state, "account": account.pk, "back": back}
    return intercom_authorize_url(
        state=state, redirect_uri=request.build_absolute_uri(reverse("intercom_oauth_callback"))
    )


@staff_member_required
@require_http_methods(["GET", "POST"])
def intercom_oauth_callback(request: HttpRequest) -> HttpResponse:
    """GET: Intercom sends the CSM back here with a code. POST: the CSM confirms (or not) a change of workspace."""
    if request.method == "POST":
        return _confirmed(request)
    expected = request.session.pop(SESSION_KEY, None)
    account = _callback_account(request, expected)
    if isinstance(account, HttpResponse):
        return account
    assert expected is not None  # _callback_account refused the callback otherwise
    if request.GET.get("error") or not request.GET.get("code"):
        return _failed(request, "Intercom did not authorise the connection: nothing was changed.", account=account)
    try:
        token, me = _exchange(account, request.GET["code"])
    except IntercomError as exc:
        return _failed(request, f"{exc}: nothing was changed.", account=account)
    if _owned_by_another(account, me.workspace_id):
        return _taken(request, account, me.workspace_id)
    back = expected.get("back", "account")
    try:
        return _connect(request, account, me=me, token=token, back=back, confirmed=False)
    except WorkspaceChangeUnconfirmed as change:
        request.session[PENDING_KEY] = {
            "account": account.pk,
            "current": change.current,
            "workspace": me.workspace_id,
            "workspace_name": me.workspace_name,
            "region": me.region or "",
            "token": secret_encrypt(token),
            "expires": time.time() + PENDING_SECONDS,
            "back": back,
        }
        context = {"account": account, "current": change.current, "new": change.new}
        return render(request, "surveys/oauth_confirm.html", context)


def _exchange(account: Account, code: str) -> tuple[str, IntercomMe]:
    """The token for `code` and whom it speaks for, each asked at the host of the region the account is in, or that
    Intercom says the workspace is in (the token's answer, then /me). Raises IntercomError."""
    integration = IntegrationSettings.objects.filter(account=account).first()
    region = intercom_region_of(integration.intercom_region if integration else None) or IntercomRegion.US
    grant = intercom_token_for_code(code, base_url=intercom_api_url(region))
    region = grant.region or region
    me = IntercomClient(grant.token, base_url=intercom_api_url(region)).me()
    return grant.token, IntercomMe(me.workspace_id, me.workspace_name, region=me.region or region)


def _callback_account(request: HttpRequest, expected: dict[str, Any] | None) -> Account | HttpResponse:
    """The account a callback with the state we sent connects, or the page saying why it connects none."""
    state = request.GET.get("state", "")
    if not expected or not state or not secrets.compare_digest(state, expected["state"]):
        return _failed(request, "This Intercom connection link is not valid: it expired, was used already, or was "
                       "opened in another browser. Start again from the account's page.")  # fmt: skip
    account = Account.objects.select_related("integration").filter(pk=expected["account"]).first()
    if account is None:
        return _failed(request, "The account to connect no longer exists.")
    if not request.user.has_perm("surveys.change_account"):
        return _failed(request, "You may not change this account.", status=403)
    return account


def _confirmed(request: HttpRequest) -> HttpResponse:
    """The CSM's answer to "connect this account to another workspace?": the waiting token is used once, or dropped."""
    pending: dict[str, Any] | None = request.session.pop(PENDING_KEY, None)
    if not pending or pending["expires"] < time.time():
        return _failed(request, "This confirmation expired or was used already: nothing was changed. Start again "
                       "from the account's page.")  # fmt: skip
    account = Account.objects.select_related("integration").filter(pk=pending["account"]).first()
    if account is None:
        return _failed(request, "The account to connect no longer exists.")
    if not request.user.has_perm("surveys.change_account"):
        return _failed(request, "You may not change this account.", status=403)
    if "confirm" not in request.POST:
        messages.info(request, f"{account} stays connected to Intercom workspace {account.intercom_workspace_id}.")
        return redirect(BACK_TO.get(pending["back"], BACK_TO["account"]), account.pk)
    if account.intercom_workspace_id != pending["current"]:
        return _failed(request, f"{account}'s workspace changed to {account.intercom_workspace_id} meanwhile: "
                       "nothing was changed. Start again from the account's page.", account=account)  # fmt: skip
    workspace_id = pending["workspace"]
    if _owned_by_another(account, workspace_id):
        return _taken(request, account, workspace_id)
    try:
        token = secret_decrypt(pending["token"])
    except SecretUndecryptable:
        return _failed(request, "The connection could not be completed: start again.", account=account)
    me = IntercomMe(
        workspace_id=workspace_id,
        workspace_name=pending.get("workspace_name", ""),
        region=intercom_region_of(pending.get("region")),
    )
    return _connect(request, account, me=me, token=token, back=pending["back"], confirmed=True)


def _connect(
    request: HttpRequest, account: Account, *, me: IntercomMe, token: str, back: str, confirmed: bool
) -> HttpResponse:
    previous, workspace_id = account.intercom_workspace_id, me.workspace_id
    try:
        with configuration_changed_by(Source.CONNECT, user=request.user):
            account_connect_intercom(
                account,
                workspace_id=workspace_id,
                workspace_name=me.workspace_name,
                token=token,
                now=timezone.now(),
                confirmed=confirmed,
                region=me.region,
            )
    except IntegrityError:  # taken by another account since we looked
        return _taken(request, account, workspace_id)
    moved = f" (it was connected to workspace {previous})" if previous and previous != workspace_id else ""
    messages.success(request, f"Connected {account} to Intercom workspace {workspace_id}{moved}.")
    return redirect(BACK_TO.get(back, BACK_TO["account"]), account.pk)


def _owned_by_another(account: Account, workspace_id: str) -> bool:
    return Account.objects.filter(intercom_workspace_id=workspace_id).exclude(pk=account.pk).exists()


def _taken(request: HttpRequest, account: Account, workspace_id: str) -> HttpResponse:
    return _failed(request, f"Intercom workspace {workspace_id} already belongs to another account: nothing was "
                   "changed.", account=account)  # fmt: skip


def _failed(request: HttpRequest, message: str, *, account: Account | None = None, status: int = 400) -> HttpResponse:
    return render(request, "surveys/oauth_failed.html", {"message": message, "account": account}, status=status)
