"""Background work of the insights app (django-q2 runs these by dotted path)."""

from __future__ import annotations

import logging

from insights.evaluation import evaluation_run_scheduled as evaluation_run_all
from insights.services import query_log_delete_expired

logger = logging.getLogger(__name__)


def query_log_sweep() -> int:
    """Delete expired query log rows; idempotent."""
    deleted = query_log_delete_expired()
    if deleted:
        logger.info("query log: deleted %d rows past retention", deleted)
    return deleted


def evaluation_run_scheduled() -> list[int]:
    """Evaluate every judgment set with its schedule on (daily, documents/queue.py)."""
    return evaluation_run_all()
