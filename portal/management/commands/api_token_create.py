from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.models import ApiToken


class Command(BaseCommand):
    help = (
        "Make an API token for a user and print its key, once: only its hash is stored. "
        "With --replace, the user's other tokens stop working."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="Delete the user's other tokens.")

    def handle(self, *args: Any, username: str, replace: bool, **options: Any) -> None:
        try:
            user = get_user_model()._default_manager.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        if replace:
            ApiToken.objects.filter(user=user).delete()
        token = ApiToken.objects.create(user=user)
        self.stderr.write(f"API token for {username} ({token.masked_key}); copy it now: it is never shown again.")
        self.stdout.write(token.key)
