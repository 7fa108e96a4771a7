from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.fields import encrypted_fields_rotate
from surveys.accounts.account import integrations_resume_decryptable


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (Stella API keys, Intercom tokens) with the newest of FIELD_ENCRYPTION_KEYS, "
        "so older keys can be removed. Safe to run again: what the newest key encrypted is left alone. "
        "Lifts the pauses an undecryptable secret caused once its key is back."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotation = encrypted_fields_rotate()
        self.stdout.write(f"Rotated {rotation.rotated} secrets to the newest key; {rotation.current} already used it.")
        if resumed := integrations_resume_decryptable():
            self.stdout.write(f"Resumed sending for {resumed} accounts whose secrets decrypt again.")
        if rotation.undecryptable:
            where = ", ".join(f"{label} {pk} {name}" for label, pk, name in rotation.undecryptable)
            raise CommandError(
                f"{len(rotation.undecryptable)} secrets can't be decrypted with any of FIELD_ENCRYPTION_KEYS "
                f"({where}): put back the key that encrypted them, or enter them again. Keep the old keys until then."
            )
