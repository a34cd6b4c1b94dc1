"""Reads: a user's own history, and what the admin may show a staff member."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from documents.selectors import User, collection_list_readable
from insights.models import EvaluationRun, Feedback, JudgmentSet, QueryLog


def _owner(user: User | None) -> Q:
    """The rows of a signed-in user, or the anonymous rows."""
    if user is not None and user.is_authenticated:
        return Q(user_id=user.pk)
    return Q(user__isnull=True)


def query_log_list_own(*, user: User) -> QuerySet[QueryLog]:
    if not user.is_authenticated:
        return QueryLog.objects.none()
    return QueryLog.objects.filter(_owner(user)).order_by("-created")


def query_log_list_visible(*, user: User) -> QuerySet[QueryLog]:
    """Rows whose searched collections the staff member may all read (superusers: all).
    A row that searched nothing (no readable collection) is shown only to superusers."""
    if getattr(user, "is_superuser", False):
        return QueryLog.objects.all()
    readable = list(collection_list_readable(user=user).values_list("pk", flat=True))
    # `<@` (is contained by) on the arrays: every searched collection is readable.
    return QueryLog.objects.exclude(collection_ids=[]).filter(
        pk__in=RawSQL(
            "SELECT id FROM insights_querylog WHERE collection_ids <@ %s::bigint[]", (readable,)
        )
    )


def query_text_visible(*, viewer: User) -> Q:
    """The rows whose query text (and answer) `viewer` may read: another user's are for
    superusers only; staff read their own and anonymous ones."""
    if getattr(viewer, "is_superuser", False):
        return Q(pk__isnull=False)  # every row (an empty Q cannot be a When condition)
    return Q(user__isnull=True) | Q(user_id=viewer.pk)


def feedback_votes(*, query_log_id: int | None, user: User) -> dict[Any, bool]:
    """The signed-in user's votes on a row: {document_id: useful, "answer": useful}."""
    if query_log_id is None or not user.is_authenticated:
        return {}
    votes: dict[Any, bool] = {}
    for target, document_id, useful in Feedback.objects.filter(
        _owner(user), query_log_id=query_log_id
    ).values_list("target", "document_id", "useful"):
        votes["answer" if target == Feedback.Target.ANSWER else document_id] = useful
    return votes


def query_log_same_search(
    *, pk: str | None, user: User, query: str, params: dict[str, Any]
) -> int | None:
    """The row `pk` if it logged this very search by this caller (the page coming back
    from a vote), else None."""
    if not pk or not pk.isdigit():
        return None
    row = QueryLog.objects.filter(_owner(user), pk=int(pk), endpoint=QueryLog.Endpoint.PAGE)
    found = row.values("query", "mode", "params").first()
    if found is None or found["query"] not in (query, ""):
        return None
    same = all(found["params"].get(key) == params.get(key) for key in ("offset", "mode", "top_k"))
    return int(pk) if same else None


def evaluation_latest_runs(*, user: User | None = None) -> list[EvaluationRun]:
    """The last finished run of each judgment set (of the collections `user` may read;
    None: all, as the metrics see them)."""
    runs = EvaluationRun.objects.filter(status=EvaluationRun.Status.DONE)
    if user is not None and not getattr(user, "is_superuser", False):
        runs = runs.filter(judgment_set__collection__in=collection_list_readable(user=user))
    return list(
        runs.select_related("judgment_set")
        .order_by("judgment_set_id", "-started")
        .distinct("judgment_set_id")
    )


def evaluation_alerts(*, user: User | None = None) -> list[EvaluationRun]:
    """Sets whose last run dropped (the admin's banner); a better run clears it."""
    return [run for run in evaluation_latest_runs(user=user) if run.alert]


def evaluation_history(*, judgment_set: JudgmentSet, limit: int = 90) -> list[EvaluationRun]:
    """The set's finished runs, oldest first (its quality-over-time chart)."""
    runs = EvaluationRun.objects.filter(
        judgment_set=judgment_set, status=EvaluationRun.Status.DONE
    ).order_by("-started")[:limit]
    return list(reversed(runs))
