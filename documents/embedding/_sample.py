"""A fixed sample on which every export is compared with the fp32 model (the manifest's
agreement): single sentences like queries, and runs of them up to and past the model's
256-token window, so that truncation and padding are compared too."""

from __future__ import annotations

_SENTENCES = [
    "What causes the side effects of statins in older patients?",
    "Glycolysis converts glucose into pyruvate and yields two molecules of ATP.",
    "The court held that the contract was void because one party lacked capacity.",
    "Mitochondria regulate apoptosis by releasing cytochrome c into the cytosol.",
    "Invoices are due thirty days after delivery unless agreed otherwise in writing.",
    "A randomized controlled trial found no benefit of vitamin D on fracture risk.",
    "The HNSW index trades a little recall for much faster nearest-neighbour search.",
    "Reset your password from the sign-in page; the link expires after one hour.",
    "Tumour necrosis factor alpha is a cytokine involved in systemic inflammation.",
    "The quarterly report shows revenue up 12 percent, driven by subscriptions.",
    "In 1848 revolutions spread across Europe, from Paris to Vienna and Berlin.",
    "Beta-blockers reduce mortality after myocardial infarction in most patients.",
    "PostgreSQL vacuums dead tuples so that their space can be reused.",
    "The enzyme's activity fell sharply when the temperature exceeded 45 degrees.",
    "Employees may carry over at most five days of unused leave into the next year.",
    "Is there an association between air pollution and childhood asthma?",
    "CRISPR-Cas9 introduces double-strand breaks at sites chosen by a guide RNA.",
    "The tenant must give two months' notice before ending the lease.",
    "Neural networks with attention weigh every token against every other token.",
    "Smoking cessation lowers the risk of lung cancer within ten years.",
    "Insulin resistance precedes type 2 diabetes by many years.",
    "The bridge was closed for repairs after cracks were found in two girders.",
    "How do T cells recognise antigens presented by MHC class I molecules?",
    "Backups are encrypted at rest and kept for ninety days.",
]


def sample_texts() -> list[str]:
    """48 texts: the 24 sentences alone, 16 runs of three, 6 of twelve, and 2 long ones."""
    n = len(_SENTENCES)
    texts = list(_SENTENCES)
    texts += [" ".join(_SENTENCES[i : i + 3]) for i in range(0, 2 * n // 3, 1)][:16]
    texts += [" ".join((_SENTENCES * 2)[i : i + 12]) for i in range(0, n, 4)]
    texts += [" ".join(_SENTENCES * 2), " ".join(reversed(_SENTENCES * 2))]
    return texts
