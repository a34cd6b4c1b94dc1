"""IR metrics from trec_eval (pytrec-eval-terrier), not hand-written code."""

from __future__ import annotations

import statistics

import pytrec_eval


def compute_metrics(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]
) -> dict[str, float]:
    """Mean nDCG@10 (graded), Recall@10, Recall@100 and MRR@10 over the judged queries.

    A judged query the run has no results for counts as zero.
    """
    # MRR@10: trec_eval's recip_rank looks at the whole list, so cut the run at 10.
    cut = {
        qid: dict(sorted(docs.items(), key=lambda item: -item[1])[:10]) for qid, docs in run.items()
    }
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"})
    top = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    scores = full.evaluate({qid: run.get(qid, {}) for qid in qrels})
    mrr = top.evaluate({qid: cut.get(qid, {}) for qid in qrels})

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else 0.0

    return {
        "ndcg@10": mean([scores[q]["ndcg_cut_10"] if q in scores else 0.0 for q in qrels]),
        "recall@10": mean([scores[q]["recall_10"] if q in scores else 0.0 for q in qrels]),
        "recall@100": mean([scores[q]["recall_100"] if q in scores else 0.0 for q in qrels]),
        "mrr@10": mean([mrr[q]["recip_rank"] if q in mrr else 0.0 for q in qrels]),
    }
