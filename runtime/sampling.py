"""Choosing the next token from a logits vector.

Order as in llama.cpp's default chain: top-k, then top-p and min-p (on the untempered softmax), then
softmax at the temperature and a draw. Temperature 0 is greedy argmax and ignores the other settings.
"""
from __future__ import annotations

import numpy as np


class Sampler:
    """temperature 0 -> argmax; else top_k (0 = off), top_p (1.0 = off), min_p (0 = off), then a seeded draw."""

    def __init__(self, temperature: float = 0.0, top_k: int = 40, top_p: float = 0.95,
                 seed: int | None = None, min_p: float = 0.0):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not 0.0 <= min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {min_p}")
        self.min_p = float(min_p)
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.rng = np.random.default_rng(seed)

    def sample(self, logits: np.ndarray) -> int:
        """One token id from logits of shape (n_vocab,)."""
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 1 or logits.size == 0:
            raise ValueError(f"logits must have shape (n_vocab,), got {logits.shape}")
        if self.temperature == 0.0:
            return int(np.argmax(logits))
        ids, kept = self.candidates(logits)
        z = kept / self.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        return int(ids[self.rng.choice(len(ids), p=p)])

    def candidates(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, logits) that survive top-k and top-p, sorted by descending logit."""
        logits = np.asarray(logits, dtype=np.float64)
        n = logits.size
        if 0 < self.top_k < n:
            ids = np.argpartition(-logits, self.top_k - 1)[: self.top_k]
        else:
            ids = np.arange(n)
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        kept = logits[ids]
        if self.top_p < 1.0:
            # Smallest prefix whose probability mass reaches top_p (the crossing token is kept).
            p = np.exp(kept - kept[0])
            cum = np.cumsum(p / p.sum())
            last = int(np.searchsorted(cum, self.top_p)) + 1
            ids, kept = ids[:last], kept[:last]
        if self.min_p > 0.0:
            # tokens whose probability is at least min_p times the most likely one's
            last = int(np.searchsorted(-kept, -(kept[0] + np.log(self.min_p)), side="right"))
            ids, kept = ids[:max(last, 1)], kept[:max(last, 1)]
        return ids, kept
