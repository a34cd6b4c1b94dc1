"""Scheduled evaluation: run a judgment set through search.evaluation's evaluate(), keep
the run (figures per mode, the settings and model in force, the corpus size) and raise an
alert when nDCG@10 drops by more than EVAL_ALERT_DROP against the previous run or the
best of the last 7: a log line at ERROR, the run's `alert` (the admin's banner and the
`ragsite_evaluation_alert` metric read it) and a POST to ALERT_WEBHOOK_URL when set."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from documents.chunk_text import ChunkingConfig
from documents.embedding import active_model_name
from documents.models import Chunk, Collection, Document
from insights.judgments import judgment_set_load
from insights.models import EvaluationRun, JudgmentSet
from search.evaluation import Variant, default_variants, evaluate

logger = logging.getLogger(__name__)

MODES = ("keyword", "semantic", "hybrid")
COMPARED_RUNS = 7  # the alert compares with the best of this many previous runs
WEBHOOK_TIMEOUT_SECONDS = 5.0


def evaluation_variants(names: list[str] | None = None) -> list[Variant]:
    """The three search modes (or the named variants of search.evaluation)."""
    wanted = names or list(MODES)
    return [v for v in default_variants() if v.name in wanted]


def _config(collection: Collection) -> dict[str, Any]:
    return {
        "search_defaults": dict(settings.SEARCH_DEFAULTS),
        # Its own fusion alpha (null: the default's), which its hybrid searches use.
        "collection_alpha": collection.search_alpha,
        "chunking": dataclasses.asdict(ChunkingConfig.from_settings()),
        "embedding_model": active_model_name(),
        "embedding_backend": settings.EMBEDDING_BACKEND,
    }


def evaluation_run(
    *,
    judgment_set: JudgmentSet,
    variants: list[Variant] | None = None,
    progress: Callable[[int], object] | None = None,
) -> EvaluationRun:
    """Evaluate the set now and keep the run; a run that fails is kept as `failed` with
    its reason (never raised: the schedule runs the other sets)."""
    run = EvaluationRun.objects.create(judgment_set=judgment_set, started=timezone.now())
    collection = judgment_set.collection
    try:
        loaded = judgment_set_load(name=judgment_set.name)
        report = evaluate(
            collection=loaded.collection,
            queries=loaded.queries,
            qrels=loaded.qrels,
            variants=variants or evaluation_variants(),
            progress=progress,
        )
    except Exception as exc:  # a bad set or a broken search: recorded, the next set runs
        logger.exception("evaluation of judgment set %r failed", judgment_set.name)
        run.status, run.error, run.finished = EvaluationRun.Status.FAILED, str(exc), timezone.now()
        run.save()
        return run
    run.metrics = report
    run.config = _config(loaded.collection)
    run.model = run.config["embedding_model"]
    run.queries = len(loaded.qrels)
    run.documents = Document.objects.filter(collection=collection).count()
    run.chunks = Chunk.objects.filter(collection=collection).count()
    run.status, run.finished = EvaluationRun.Status.DONE, timezone.now()
    run.alert = _drops(run)
    run.save()
    if run.alert:
        evaluation_alert_raise(run)
    return run


def _drops(run: EvaluationRun) -> str:
    """What dropped by more than EVAL_ALERT_DROP nDCG@10, per mode, or ""."""
    earlier = list(
        EvaluationRun.objects.filter(
            judgment_set_id=run.judgment_set_id, status=EvaluationRun.Status.DONE
        )
        .exclude(pk=run.pk)
        .order_by("-started")[:COMPARED_RUNS]
    )
    if not earlier:
        return ""
    limit = float(settings.EVAL_ALERT_DROP)
    found = []
    for mode in run.metrics:
        now = run.ndcg(mode)
        if now is None:
            continue
        previous = earlier[0].ndcg(mode)
        best = max((v for v in (r.ndcg(mode) for r in earlier) if v is not None), default=None)
        if previous is not None and previous - now > limit:
            found.append(f"{mode} nDCG@10 {now:.4f}, was {previous:.4f} on the previous run")
        elif best is not None and best - now > limit:
            found.append(f"{mode} nDCG@10 {now:.4f}, best of the last {len(earlier)} {best:.4f}")
    return "; ".join(found)


def evaluation_alert_raise(run: EvaluationRun) -> None:
    logger.error("search quality dropped on judgment set %r: %s", run.judgment_set.name, run.alert)
    url = settings.ALERT_WEBHOOK_URL
    if not url:
        return
    payload = {
        "alert": "search quality dropped",
        "judgment_set": run.judgment_set.name,
        "collection": run.judgment_set.collection.slug,
        "run": run.pk,
        "finished": run.finished.isoformat() if run.finished else None,
        "detail": run.alert,
        "ndcg@10": {mode: run.ndcg(mode) for mode in run.metrics},
        "threshold": float(settings.EVAL_ALERT_DROP),
    }
    try:
        httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS).raise_for_status()
    except Exception as exc:  # an alert channel that is down must not fail the run
        logger.error("alert webhook %s failed: %s", url, exc)


def evaluation_run_scheduled() -> list[int]:
    """Every set with `scheduled` on, one after the other; the runs' ids."""
    return [
        evaluation_run(judgment_set=judgment_set).pk
        for judgment_set in JudgmentSet.objects.filter(scheduled=True).select_related("collection")
    ]
