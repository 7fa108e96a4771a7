from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from integrations.models import Account
from integrations.services import account_upsert

DEMO_WORKSPACE_ID = "demo"
LOCAL_ADMIN = ("admin", "admin")


class Command(BaseCommand):
    help = "For make run: a demo account and a local admin user, each only if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        if not Account.objects.filter(intercom_workspace_id=DEMO_WORKSPACE_ID).exists():
            account_upsert(
                workspace_id=DEMO_WORKSPACE_ID,
                name="Demo Company",
                test_api_key="sandbox-test-key-demo",
                production_api_key="sandbox-live-key-demo",
                intercom_access_token="sandbox-intercom-token-demo",
            )
            self.stdout.write(f"Created the demo account (Intercom workspace id {DEMO_WORKSPACE_ID!r}).")
        username, password = LOCAL_ADMIN
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username=username, email="admin@localhost", password=password)
            self.stdout.write(f"Created the local admin user {username!r}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {settings.PORTAL_URL}/admin/  user {username!r}, password {password!r} (unless you changed it)"
            )
        )
