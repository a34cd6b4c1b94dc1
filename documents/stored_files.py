"""Stored files no row points to: originals left by a rolled-back upload, and upload temp
files left by a killed web process (the daily sweep, documents/tasks.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from documents.models import Document

ORIGINALS_DIR = "originals"


def files_sweep_orphaned(*, min_age: timedelta = timedelta(hours=1)) -> int:
    """Delete stored originals no document points to, and upload temp files left behind
    by a killed web process; only those older than `min_age`, so an upload between
    writing its file and committing its row is never touched. Returns how many went.

    Orphans come from a transaction rolled back after its file was written, or a
    process killed in between.
    """
    storage = Document._meta.get_field("original").storage
    cutoff = timezone.now() - min_age
    try:
        _, names = storage.listdir(ORIGINALS_DIR)
    except FileNotFoundError:
        names = []
    old = [
        f"{ORIGINALS_DIR}/{name}"
        for name in names
        if storage.get_modified_time(f"{ORIGINALS_DIR}/{name}") < cutoff
    ]
    removed = 0
    for start in range(0, len(old), 1000):
        batch = old[start : start + 1000]
        kept = set(Document.objects.filter(original__in=batch).values_list("original", flat=True))
        for name in batch:
            if name not in kept:
                storage.delete(name)
                removed += 1
    return removed + _sweep_upload_temp_dir(cutoff.timestamp())


def _sweep_upload_temp_dir(cutoff: float) -> int:
    folder = settings.FILE_UPLOAD_TEMP_DIR
    if not folder or not Path(folder).is_dir():
        return 0
    removed = 0
    for path in Path(folder).iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # gone meanwhile: the request finished after all
            continue
    return removed
