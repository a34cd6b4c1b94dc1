"""Grid search over the fusion parameters, the contextual chunk header and MMR lambda.

The fusion parameters are per-request options, so each combination only re-runs the
queries. The contextual header decides what was embedded, so each header setting is a
collection of its own, ingested once (`ingest_corpus(..., context_header=...)`); the
caller passes one `SweepTarget` per setting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from documents.models import Collection
from search.evaluation._run import Variant, evaluate

HEADER = "context_header"
ALPHA = "alpha"
HEADER_VALUES = {"on": True, "off": False}
# Each combination runs every query through the real search; keep the grid small.
SWEEP_GRID: dict[str, list[Any]] = {
    "rrf_k": [10, 30, 60, 100],
    "weights": [(1.0, 1.0), (1.5, 1.0), (1.0, 1.5), (2.0, 1.0)],  # keyword, semantic
    "depth": [100, 200],  # candidates per leg
    # Score fusion (min-max per leg, alpha * semantic + (1 - alpha) * keyword), per depth;
    # rrf_k and the weights do not apply to it.
    ALPHA: [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    HEADER: ["on", "off"],  # needs one ingestion per value
}
MMR_LAMBDAS = [None, 0.5, 0.7, 0.9]


@dataclass(frozen=True)
class SweepTarget:
    """The queries' judgments resolved against one ingested collection."""

    collection: Collection
    qrels: dict[str, dict[str, int]]
    context_header: str | None = None  # "on"/"off"; None: as ingested, not varied


def header_values(values: list[Any]) -> list[str]:
    """Grid values for the header as "on"/"off" (JSON true/false accepted too)."""
    names = []
    for value in values:
        name = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
        if not isinstance(name, str) or name not in HEADER_VALUES:
            raise ValueError(f"{HEADER} values are on/off (or true/false), not {value!r}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"{HEADER} needs at least one value")
    return names


def fusion_options(combo: dict[str, Any]) -> dict[str, Any]:
    keyword_weight, semantic_weight = combo["weights"]
    return {
        "rrf_k": combo["rrf_k"],
        "keyword_weight": keyword_weight,
        "semantic_weight": semantic_weight,
        "keyword_depth": combo["depth"],
        "semantic_depth": combo["depth"],
    }


def _combos(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every RRF combination of the grid, then every score-fusion one (alpha x depth)."""
    rrf = {key: values for key, values in grid.items() if key not in (HEADER, ALPHA)}
    combos = [
        {"fusion": "rrf", **fusion_options(dict(zip(rrf, values, strict=True)))}
        for values in itertools.product(*rrf.values())
    ]
    for alpha in grid.get(ALPHA, []):
        for depth in grid.get("depth", [200]):
            combos.append(
                {"fusion": "score", "alpha": alpha, "keyword_depth": depth, "semantic_depth": depth}
            )
    return combos


def sweep_size(grid: dict[str, list[Any]], targets: int) -> int:
    """How many evaluations `sweep` runs (for a progress bar)."""
    return targets * len(_combos(grid)) + len(MMR_LAMBDAS)


def sweep(
    *,
    targets: list[SweepTarget],
    queries: dict[str, str],
    grid: dict[str, list[Any]],
    progress: Callable[[int], object] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    """(hybrid nDCG@10, setting) for every combination, best first.

    The header is a setting of the target, not a key of `grid` here. MMR lambda is
    then tried on the best setting only.
    """
    combos = _combos(grid)

    def score(target: SweepTarget, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        report = evaluate(
            collection=target.collection,
            queries=queries,
            qrels=target.qrels,
            variants=[Variant("hybrid", "hybrid", options)],
        )
        if progress is not None:
            progress(1)
        setting = {HEADER: target.context_header} if target.context_header else {}
        return report["hybrid"]["ndcg@10"], {**setting, **options}

    results = [score(target, combo) for target in targets for combo in combos]
    best_index = max(range(len(results)), key=lambda i: results[i][0])
    best_target = targets[best_index // len(combos)]
    best_options = combos[best_index % len(combos)]
    for lambda_ in MMR_LAMBDAS:
        results.append(score(best_target, {**best_options, "mmr_lambda": lambda_}))
    results.sort(key=lambda item: -item[0])
    return results


def best_alpha(
    results: list[tuple[float, dict[str, Any]]], *, header: str | None = None
) -> tuple[float, float] | None:
    """(nDCG@10, alpha) of the best score-fusion setting at the search's default depths
    (the depths a saved alpha will be used with), on the target of ``header`` (None: the
    only one); None when the sweep tried no such setting."""
    depths = (settings.SEARCH_DEFAULTS["keyword_depth"], settings.SEARCH_DEFAULTS["semantic_depth"])
    candidates = [
        (score, float(setting[ALPHA]))
        for score, setting in results
        if setting.get("fusion") == "score"
        and setting.get("mmr_lambda") is None
        and (setting["keyword_depth"], setting["semantic_depth"]) == depths
        and setting.get(HEADER) == header
    ]
    return max(candidates, default=None)
