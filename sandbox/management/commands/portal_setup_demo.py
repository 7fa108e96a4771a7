from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from sandbox.demo import demo_accounts_create, sandbox_people_create

LOCAL_ADMIN = ("admin", "admin")
# A support user of Demo Company: sees its status page, not the admin.
LOCAL_SUPPORT = ("support", "support")


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
        support_name, support_password = LOCAL_SUPPORT
        if not User.objects.filter(username=support_name).exists():
            support = User.objects.create_user(username=support_name, password=support_password)
            accounts[0].support_users.add(support)
            self.stdout.write(f"Created the local support user {support_name!r} (Demo Company).")
        workspaces = ", ".join(f"{account.name} ({account.intercom_workspace_id})" for account in accounts)
        self.stdout.write(f"Demo accounts: {workspaces}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {settings.PORTAL_URL}/admin/  user {username!r}, password {password!r} (unless you changed it)\n"
                f"Status page: {settings.PORTAL_URL}/status/  user {support_name!r}, password {support_password!r}"
            )
        )
