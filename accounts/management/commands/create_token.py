"""`manage.py create_token USERNAME --name NAME [--expires-days N]`: an API token
without a browser (the first one, or for a service account). Prints the secret once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.services import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires (default: never)."
        )

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1")
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters")
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        expires = timezone.now() + timedelta(days=days) if days is not None else None
        token, secret = token_create(user=user, name=name, expires=expires)
        # Only the secret on stdout, so `TOKEN=$(manage.py create_token ...)` works.
        self.stdout.write(secret)
        when = f"expires {token.expires:%Y-%m-%d %H:%M} UTC" if token.expires else "never expires"
        self.stderr.write(f"Token {token.name!r} ({token.prefix}…) for {username}, {when}.")
