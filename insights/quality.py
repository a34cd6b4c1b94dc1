"""What the admin's "Search quality" page shows: figures per day from the query log and
the feedback, read as the staff member may see them (insights/selectors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from documents.selectors import User
from insights.models import Feedback, QueryLog
from insights.selectors import query_log_list_visible, query_text_visible


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


@dataclass(frozen=True)
class Day:
    day: date
    queries: int
    zero: int
    votes: int
    useful: int


@dataclass(frozen=True)
class Quality:
    days: list[Day]
    latency: dict[str, list[tuple[date, float, float]]]  # mode: (day, p50, p95) in ms
    top_queries: list[dict[str, Any]]
    zero_queries: list[dict[str, Any]]
    downvoted: list[dict[str, Any]]
    totals: dict[str, Any]


def _per_day(rows: QuerySet[QueryLog], since: date, until: date) -> list[Day]:
    counts = {
        r["day"]: r
        for r in rows.annotate(day=TruncDate("created"))
        .values("day")
        .annotate(queries=Count("id"), zero=Count("id", filter=Q(result_count=0)))
    }
    votes = {
        r["day"]: r
        for r in Feedback.objects.filter(query_log__in=rows)
        .annotate(day=TruncDate("created"))
        .values("day")
        .annotate(votes=Count("id"), useful=Count("id", filter=Q(useful=True)))
    }
    days = []
    day = since
    while day <= until:
        c, v = counts.get(day, {}), votes.get(day, {})
        days.append(
            Day(day, c.get("queries", 0), c.get("zero", 0), v.get("votes", 0), v.get("useful", 0))
        )
        day += timedelta(days=1)
    return days


def quality_summary(*, user: User, days: int = 30) -> Quality:
    until = timezone.localdate()
    since = until - timedelta(days=days - 1)
    rows = query_log_list_visible(user=user).filter(created__date__gte=since)
    per_day = _per_day(rows, since, until)
    latency: dict[str, list[tuple[date, float, float]]] = {}
    for r in (
        rows.annotate(day=TruncDate("created"))
        .values("mode", "day")
        .annotate(p50=Percentile(F("total_ms"), 0.5), p95=Percentile(F("total_ms"), 0.95))
        .order_by("mode", "day")
    ):
        latency.setdefault(r["mode"], []).append((r["day"], r["p50"], r["p95"]))
    # Query text only where the viewer may read it (their own, anonymous; all: superusers).
    texts = rows.filter(query_text_visible(viewer=user)).exclude(query="")
    top = list(texts.values("query").annotate(n=Count("id")).order_by("-n")[:15])
    for entry in top:
        entry["row"] = texts.filter(query=entry["query"]).order_by("-created").values("pk")[0]["pk"]
    zero = list(
        texts.filter(result_count=0).values("query").annotate(n=Count("id")).order_by("-n")[:15]
    )
    for entry in zero:
        entry["row"] = (
            texts.filter(query=entry["query"], result_count=0)
            .order_by("-created")
            .values("pk")[0]["pk"]
        )
    downvoted = list(
        Feedback.objects.filter(query_log__in=rows, target=Feedback.Target.RESULT)
        .values("document", "document__title")
        .annotate(down=Count("id", filter=Q(useful=False)), up=Count("id", filter=Q(useful=True)))
        .filter(down__gt=0)
        .order_by("-down", "up")[:15]
    )
    queries = sum(d.queries for d in per_day)
    votes = sum(d.votes for d in per_day)
    voted_rows = Feedback.objects.filter(query_log__in=rows).values("query_log").distinct()
    totals = {
        "queries": queries,
        "zero_rate": (sum(d.zero for d in per_day) / queries) if queries else None,
        "feedback_rate": (voted_rows.count() / queries) if queries else None,
        "useful_share": (sum(d.useful for d in per_day) / votes) if votes else None,
        "votes": votes,
        "days": days,
    }
    return Quality(per_day, latency, top, zero, downvoted, totals)
