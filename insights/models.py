"""The query log (one row per search, context, answer or similar call) and the feedback
people give on results and answers."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class QueryLog(models.Model):
    class Endpoint(models.TextChoices):
        SEARCH = "search", "API search"
        PAGE = "page", "Search page"
        CONTEXT = "context", "API context"
        ASK = "ask", "API ask"
        SIMILAR = "similar", "API similar"

    # When the search ran (set in the request; the row may be written later).
    created = models.DateTimeField(default=timezone.now, db_index=True)
    # Deleting a user deletes their history with them.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="query_logs",
    )
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices)
    # Ids, not slugs: what the caller could read when they searched (the filter, or every
    # readable collection), so the admin can tell who may see the row.
    collection_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    mode = models.CharField(max_length=16)
    params = models.JSONField(default=dict, encoder=DjangoJSONEncoder, blank=True)
    # Empty for anonymous callers when QUERY_LOG_ANONYMOUS_TEXT is off.
    query = models.TextField(blank=True)
    timing_ms = models.JSONField(default=dict, blank=True)  # per leg
    total_ms = models.FloatField()
    result_count = models.PositiveIntegerField()
    # [{"chunk": id, "document": id, "score": s}, ...] best first, at most QUERY_LOG_TOP_RESULTS.
    results = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=200, blank=True)  # the embedding model
    llm_model = models.CharField(max_length=200, blank=True)
    reranked = models.BooleanField(default=False)
    answer = models.TextField(blank=True)  # only with QUERY_LOG_ANSWERS=on
    # The request's X-Request-ID (given or made by insights.request_id), as in the logs.
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "logged query"
        verbose_name_plural = "logged queries"
        indexes = [models.Index(fields=["user", "-created"])]

    def __str__(self) -> str:
        return f"{self.get_endpoint_display()} at {self.created:%Y-%m-%d %H:%M}"

    def document_ids(self) -> set[int]:
        return {int(r["document"]) for r in self.results if r.get("document") is not None}


class Feedback(models.Model):
    """A "useful / not useful" vote on a result (by document: chunk ids change when a
    document is re-processed) or on an answer."""

    class Target(models.TextChoices):
        RESULT = "result"
        ANSWER = "answer"

    created = models.DateTimeField(auto_now_add=True)
    query_log = models.ForeignKey(QueryLog, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="search_feedback",
    )
    target = models.CharField(max_length=8, choices=Target.choices)
    document = models.ForeignKey(
        "documents.Document",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="search_feedback",
    )
    chunk_id = models.BigIntegerField(null=True, blank=True)  # as voted on; informative only
    useful = models.BooleanField()
    comment = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "feedback"
        constraints = [
            # One vote per signed-in user per result (by document) and per answer; a new
            # vote replaces the old one. Anonymous votes are counted apart (user is null).
            models.UniqueConstraint(
                fields=["query_log", "user", "document"],
                condition=models.Q(user__isnull=False, target="result"),
                name="insights_feedback_one_vote_per_result",
            ),
            models.UniqueConstraint(
                fields=["query_log", "user"],
                condition=models.Q(user__isnull=False, target="answer"),
                name="insights_feedback_one_vote_per_answer",
            ),
            models.CheckConstraint(
                condition=models.Q(target="answer") | models.Q(document__isnull=False),
                name="insights_feedback_result_has_document",
            ),
        ]

    def __str__(self) -> str:
        return f"{'useful' if self.useful else 'not useful'} ({self.target})"


class JudgmentSet(models.Model):
    """A named list of (query, relevant document, grade) for one collection, evaluated by
    `manage.py evaluate --judgments NAME` and, with `scheduled` on, every day."""

    name = models.CharField(max_length=100, unique=True)
    collection = models.ForeignKey(
        "documents.Collection", on_delete=models.CASCADE, related_name="judgment_sets"
    )
    scheduled = models.BooleanField(
        default=True, help_text="Evaluate this set every day and keep each run."
    )
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="judgment_sets",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Judgment(models.Model):
    """One relevant document for one query. By document, never by chunk: chunk ids change
    when a document is re-processed. A deleted document leaves its judgment behind with
    no document (still relevant, now never found), so deleting what answered a query
    shows up as a drop in quality instead of silently shrinking the set."""

    class Grade(models.IntegerChoices):
        RELEVANT = 1
        HIGHLY_RELEVANT = 2

    judgment_set = models.ForeignKey(
        JudgmentSet, on_delete=models.CASCADE, related_name="judgments"
    )
    query = models.TextField()
    document = models.ForeignKey(
        "documents.Document",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="judgments",
    )
    grade = models.PositiveSmallIntegerField(choices=Grade.choices, default=Grade.RELEVANT)

    class Meta:
        ordering = ["judgment_set", "query", "-grade"]
        constraints = [
            models.UniqueConstraint(
                fields=["judgment_set", "query", "document"],
                name="insights_judgment_one_grade_per_document",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.query[:60]} -> {self.document_id} ({self.grade})"


class EvaluationRun(models.Model):
    """One evaluation of a judgment set: figures per mode and what was in force."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    judgment_set = models.ForeignKey(
        JudgmentSet, on_delete=models.CASCADE, related_name="runs"
    )
    started = models.DateTimeField(db_index=True)
    finished = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)  # why a failed run failed
    # {"hybrid": {"ndcg@10": .., "recall@10": .., "recall@100": .., "mrr@10": ..}, ...}
    metrics = models.JSONField(default=dict, blank=True)
    # The search defaults, chunking and embedding model the run was made with.
    config = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    model = models.CharField(max_length=200, blank=True)
    queries = models.PositiveIntegerField(default=0)
    documents = models.PositiveIntegerField(default=0)  # the collection's, at the run
    chunks = models.PositiveIntegerField(default=0)
    # Empty, or what dropped by more than EVAL_ALERT_DROP and against what.
    alert = models.TextField(blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"{self.judgment_set} at {self.started:%Y-%m-%d %H:%M}"

    def ndcg(self, mode: str) -> float | None:
        value = (self.metrics.get(mode) or {}).get("ndcg@10")
        return None if value is None else float(value)
