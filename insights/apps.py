from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


def _worker_metrics_start() -> None:
    """A qcluster with METRICS_WORKER_PORT serves its own /metrics there, so workers on
    other hosts are scraped too. Its worker processes are forked children: their counters
    reach the server through PROMETHEUS_MULTIPROC_DIR (a fresh directory when unset),
    which must be chosen before prometheus_client is first imported."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ragsite-qcluster-")
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous run's counts are not this one's
        if not stale.stem.endswith(f"_{os.getpid()}"):  # this process's own are live
            stale.unlink()
    from django_q.signals import post_execute

    from insights.metrics import task_finished, worker_metrics_serve

    post_execute.connect(task_finished, dispatch_uid="insights-task-metrics")
    worker_metrics_serve(port=settings.METRICS_WORKER_PORT)


class InsightsConfig(AppConfig):
    # The retention sweep's schedule is made with the others (documents/queue.py).
    name = "insights"
    verbose_name = "Search quality"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from insights.request_id import install_record_factory, request_id_clear

        install_record_factory()  # every log line carries its request's id
        request_finished.connect(request_id_clear, dispatch_uid="insights-request-id")
        if "qcluster" in sys.argv[1:2] and settings.METRICS_WORKER_PORT:
            _worker_metrics_start()
