from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A named bearer token. Only its SHA-256 is stored; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters of the secret, kept so people can tell their tokens apart.
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)


class RateCounter(models.Model):
    """One fixed window of one client in one throttle scope (ragsite/ratelimit.py writes
    it with raw SQL so the increment is atomic; this model exists for the migration)."""

    key = models.CharField(max_length=255, primary_key=True)  # scope:window:client
    count = models.PositiveIntegerField(default=0)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "ratelimit_counter"

    def __str__(self) -> str:
        return f"{self.key} = {self.count}"
