from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from sandbox.demo import demo_accounts_create, sandbox_people_create

LOCAL_ADMIN = ("admin", "admin")


class Command(BaseCommand):
    help = "For make run: the demo accounts, the sandbox's people and a local admin user, each only if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = demo_accounts_create()
        if settings.SANDBOX:
            sandbox_people_create()
        username, password = LOCAL_ADMIN
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username=username, email="admin@localhost", password=password)
            self.stdout.write(f"Created the local admin user {username!r}.")
        workspaces = ", ".join(f"{account.name} ({account.intercom_workspace_id})" for account in accounts)
        self.stdout.write(f"Demo accounts: {workspaces}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {settings.PORTAL_URL}/admin/  user {username!r}, password {password!r} (unless you changed it)"
            )
        )
