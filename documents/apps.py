from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_schedules(sender: AppConfig, **kwargs: Any) -> None:
    from documents.queue import ensure_periodic_schedules

    ensure_periodic_schedules()


class DocumentsConfig(AppConfig):
    name = "documents"
    verbose_name = "Collections and documents"

    def ready(self) -> None:
        from documents import checks  # noqa: F401  (registers the embedding settings check)

        post_migrate.connect(_ensure_schedules, sender=self)
