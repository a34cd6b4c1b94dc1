"""Numbers of bench/load.py: locust's final statistics summarised, and the summary table."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any


def percentile(histogram: dict[int, int], q: float) -> int | None:
    """The q-quantile of locust's response-time histogram (ms -> count)."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for milliseconds in sorted(histogram):
        seen += histogram[milliseconds]
        if seen >= rank:
            return milliseconds
    return max(histogram)


def read_locust_stats(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per request name and overall: requests, errors, req/s, mean and p50/p95/p99 ms.

    From locust's final JSON (its CSV files may miss the last second). Throughput is
    over the whole run's window, the same for every row.
    """
    entries = json.loads(path.read_text())
    if not entries:
        raise RuntimeError("locust recorded no requests")
    window = max(e["last_request_timestamp"] or e["start_time"] for e in entries) - min(
        e["start_time"] for e in entries
    )

    def summary(group: list[dict[str, Any]]) -> dict[str, Any]:
        histogram: Counter[int] = Counter()
        for entry in group:
            histogram.update({int(ms): count for ms, count in entry["response_times"].items()})
        requests = sum(e["num_requests"] for e in group)
        return {
            "requests": requests,
            "errors": sum(e["num_failures"] for e in group),
            "requests_per_s": round(requests / window, 2) if window > 0 else None,
            "mean_ms": round(sum(e["total_response_time"] for e in group) / requests, 1)
            if requests
            else None,
            **{f"p{q}_ms": percentile(histogram, q / 100) for q in (50, 95, 99)},
        }

    return {e["name"]: summary([e]) for e in entries}, summary(entries)


def print_summary(report: dict[str, Any]) -> None:
    print(
        f"\n{'':<16}{'requests':>9}{'errors':>8}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    )
    for name, row in [("all", report["total"]), *report["per_name"].items()]:
        cells = "".join(
            f"{row[key]:>8}" if row[key] is not None else f"{'-':>8}"
            for key in ("p50_ms", "p95_ms", "p99_ms")
        )
        print(f"{name:<16}{row['requests']:>9}{row['errors']:>8}{row['requests_per_s']:>8}{cells}")
    uploads = report["uploads"]
    print(
        f"uploads: {uploads['uploaded']} posted, {uploads['ready_during_run']} processed to "
        f"ready during the run (median {uploads['upload_to_ready_p50_s']} s from upload), "
        f"{uploads['failed']} failed, {uploads['not_ready_at_end']} not ready at the end"
    )
