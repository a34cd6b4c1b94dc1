"""Writes: query log rows, feedback votes, the retention sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import IntegrityError, transaction
from django.utils import timezone

from documents.selectors import User, collection_list_readable
from insights import log_writer
from insights.models import Feedback, QueryLog


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: int
    score: float
    # Cosine similarity to the query when the semantic leg found it (drift: how close
    # queries come to what the collection holds); None otherwise.
    similarity: float | None = None


def _signed_in(user: User | None) -> bool:
    return user is not None and bool(user.is_authenticated)


def _user_id(user: User | None) -> int | None:
    """The signed-in user's id; None for anonymous callers."""
    if user is None or not _signed_in(user):
        return None
    return int(user.pk)  # type: ignore[arg-type]  # signed in: pk is set


def query_log_create(
    *,
    user: User | None,
    endpoint: str,
    query: str,
    mode: str,
    params: dict[str, Any],
    collection_slugs: list[str] | None,
    timing_ms: dict[str, float],
    total_ms: float,
    hits: list[Hit],
    result_count: int | None = None,
    llm_model: str = "",
    answer: str = "",
    reranked: bool = False,
    request_id: str = "",
    model: str = "",
) -> int | None:
    """The row's id, or None with QUERY_LOG=off. The row is written off the request path
    (insights/log_writer.py), or at once inside a transaction. The collections searched
    are the filter's readable ones, else every collection `user` may read."""
    if not settings.QUERY_LOG:
        return None
    keep_text = _signed_in(user) or settings.QUERY_LOG_ANONYMOUS_TEXT
    top = hits[: settings.QUERY_LOG_TOP_RESULTS]
    row = QueryLog(
        user_id=_user_id(user),
        endpoint=endpoint,
        mode=mode,
        params=params,
        query=query if keep_text else "",
        timing_ms={k: round(float(v), 3) for k, v in timing_ms.items() if v is not None},
        total_ms=round(total_ms, 3),
        result_count=len(hits) if result_count is None else result_count,
        results=[_result(h) for h in top],
        model=model[:200],
        llm_model=llm_model,
        reranked=reranked,
        answer=answer if settings.QUERY_LOG_ANSWERS else "",
        request_id=request_id,
    )
    if not log_writer.inline():
        row.pk = log_writer.reserve_id()
        log_writer.enqueue(row, user=user, collection_slugs=collection_slugs)
        return int(row.pk)
    readable = collection_list_readable(user=user)
    if collection_slugs:
        readable = readable.filter(slug__in=collection_slugs)
    # Resolved inside the INSERT itself: one statement.
    row.collection_ids = ArraySubquery(readable.order_by("pk").values("pk"))
    row.save(using="default", force_insert=True)
    return int(row.pk)


def _result(hit: Hit) -> dict[str, Any]:
    result: dict[str, Any] = {
        "chunk": hit.chunk_id,
        "document": hit.document_id,
        "score": round(hit.score, 6),
    }
    if hit.similarity is not None:
        result["similarity"] = round(hit.similarity, 6)
    return result


class FeedbackError(ValueError):
    """A vote that cannot be recorded; the message says why (a 400 / form error)."""


def _voter_may_use(row: QueryLog, user: User | None) -> bool:
    """Signed-in users vote on their own searches, anonymous visitors on anonymous ones."""
    return row.user_id == _user_id(user)


def feedback_record(
    *,
    user: User | None,
    query_log_id: int,
    useful: bool,
    document_id: int | None = None,
    chunk_id: int | None = None,
    answer: bool = False,
    comment: str = "",
) -> Feedback:
    """Record a vote on one of the row's results (named by document or by chunk) or on its
    answer. A signed-in user's second vote on the same thing replaces the first."""
    log_writer.flush()  # the row may still be queued in this process
    # The primary: a vote may follow its search sooner than a replica catches up.
    row = QueryLog.objects.using("default").filter(pk=query_log_id).first()
    if row is None or not _voter_may_use(row, user):
        raise FeedbackError("no such search in your history")
    if answer:
        if row.endpoint not in (QueryLog.Endpoint.ASK, QueryLog.Endpoint.PAGE) or not (
            row.llm_model
        ):
            raise FeedbackError("this search has no answer to rate")
        document_id = None
        chunk_id = None
    else:
        document_id = _result_document(row, document_id=document_id, chunk_id=chunk_id)
    target = Feedback.Target.ANSWER if answer else Feedback.Target.RESULT
    values: dict[str, Any] = {"useful": useful, "comment": comment, "chunk_id": chunk_id}
    # One vote per signed-in user and thing voted on (document None: the answer).
    lookup: dict[str, Any] = {
        "query_log": row,
        "user_id": _user_id(user),
        "target": target,
        "document_id": document_id,
    }
    if lookup["user_id"] is None:  # anonymous votes are counted apart, each on its own
        return Feedback.objects.using("default").create(**lookup, **values)
    try:
        with transaction.atomic(using="default"):
            vote, _ = Feedback.objects.using("default").update_or_create(defaults=values, **lookup)
    except IntegrityError:  # two votes at once: the other one won, take it over
        vote = Feedback.objects.using("default").get(**lookup)
        Feedback.objects.using("default").filter(pk=vote.pk).update(**values)
        vote.refresh_from_db()
    return vote


def _result_document(row: QueryLog, *, document_id: int | None, chunk_id: int | None) -> int:
    """The document of the voted result; it must be one the search returned."""
    if document_id is None and chunk_id is None:
        raise FeedbackError("name the result: its document or its chunk")
    for result in row.results:
        if document_id is not None and result.get("document") == document_id:
            return document_id
        if document_id is None and result.get("chunk") == chunk_id:
            return int(result["document"])
    raise FeedbackError("that result was not among this search's results")


def query_log_delete_expired(*, now: Any = None) -> int:
    """Delete rows older than QUERY_LOG_RETENTION_DAYS (their feedback goes with them)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.QUERY_LOG_RETENTION_DAYS)
    deleted, by_model = QueryLog.objects.filter(created__lt=cutoff).delete()
    return int(by_model.get(QueryLog._meta.label, 0))


def query_log_delete_for_user(*, user: User, pk: int | None = None) -> int:
    """A user deletes one row of their history, or all of it."""
    rows = QueryLog.objects.filter(user_id=_user_id(user) or 0)  # anonymous: none
    if pk is not None:
        rows = rows.filter(pk=pk)
    _, by_model = rows.delete()
    return int(by_model.get(QueryLog._meta.label, 0))
