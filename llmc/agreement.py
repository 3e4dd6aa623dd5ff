"""How closely two runs of a model agree: our logits against llama.cpp's, position by position.

The measure is scale-free: at each position the largest |difference| over the vocabulary is divided by the
standard deviation of the reference (llama.cpp) logits at that position, and the median over positions is
reported. On F32-weight files a correct forward pass stays near 0.001-0.003 (see
docs/numerics.md); quantized files, where llama.cpp also quantizes activations, reach ~0.05-0.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    top1: float                      # fraction of positions whose argmax token is the same
    median_max_abs_over_std: float   # median over positions of max|ours - theirs| / std(theirs over all positions)
    max_abs: float                   # largest |ours - theirs| anywhere
    n_positions: int
    worst_position: int              # position with the largest max|diff| / std

    def __str__(self) -> str:
        return (f"top-1 {self.top1:.3f} over {self.n_positions} positions, median max|diff|/std "
                f"{self.median_max_abs_over_std:.4f}, max|diff| {self.max_abs:.4g} "
                f"(worst position {self.worst_position})")


def _as_2d(logits: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} logits must be (n_positions, n_vocab), got shape {arr.shape}")
    return arr


def compare_logits(ours: np.ndarray, theirs: np.ndarray) -> Agreement:
    """Compare (n_positions, n_vocab) logits; `theirs` is the reference whose std sets the scale."""
    a = _as_2d(ours, "our")
    b = _as_2d(theirs, "reference")
    if a.shape != b.shape:
        raise ValueError(f"logit shapes differ: ours {a.shape}, reference {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        bad = "ours" if not np.isfinite(a).all() else "reference"
        raise ValueError(f"non-finite values in the {bad} logits")
    max_abs = np.abs(a - b).max(axis=1)                     # (n_positions,)
    # The scale is the standard deviation of llama.cpp's logits over the whole run, as the acceptance
    # criterion words it; per-position stds of a confident small model are narrower than its own
    # flash/non-flash attention modes differ by (measured on SmolLM2: 0.17 per-position, 0.10 global).
    std = np.maximum(b.std(), np.finfo(np.float32).tiny)
    ratio = max_abs / std
    return Agreement(
        top1=float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))),
        median_max_abs_over_std=float(np.median(ratio)),
        max_abs=float(max_abs.max()),
        n_positions=a.shape[0],
        worst_position=int(ratio.argmax()),
    )


def assert_agrees(ours: np.ndarray, theirs: np.ndarray, top1_min: float = 0.95,
                  ratio_max: float = 0.15) -> Agreement:
    """Raise AssertionError unless top-1 agreement >= top1_min and the median max|diff|/std <= ratio_max.

    Returns the Agreement so callers can log it.
    """
    agreement = compare_logits(ours, theirs)
    problems = []
    if agreement.top1 < top1_min:
        problems.append(f"top-1 agreement {agreement.top1:.3f} < {top1_min}")
    if agreement.median_max_abs_over_std > ratio_max:
        problems.append(f"median max|diff|/std {agreement.median_max_abs_over_std:.4f} > {ratio_max}")
    if problems:
        raise AssertionError(f"logits disagree with the reference: {'; '.join(problems)}\n  {agreement}")
    return agreement


def greedy_divergence(model_a, model_b, prompt_ids, n: int, judge=None):
    """Greedy-decode n tokens with both models; return None if they agree on all n, else
    (step, margin) at the first step they differ, where margin is the judge's (default model_a's) gap
    between its top two logits after the same prefix. Callers accept a divergence only at a near-tie:
    the targets then differ by summation order, not by meaning."""
    a = model_a.generate_ids(prompt_ids, n, stop_at_eos=False)
    b = model_b.generate_ids(prompt_ids, n, stop_at_eos=False)
    if a == b:
        return None
    step = next(k for k in range(min(len(a), len(b))) if a[k] != b[k])
    logits = (judge or model_a).logits(list(prompt_ids) + a[:step])[-1]
    top2 = np.sort(logits)[-2:]
    return step, float(top2[1] - top2[0])


def assert_same_greedy(model_a, model_b, prompt_ids, n: int = 32, tie_margin: float = 0.1, judge=None) -> None:
    """The two models' greedy tokens are equal for n steps, or first differ where the judge (the numpy
    reference, ideally) sees a near-tie: its top-2 logits less than tie_margin apart."""
    found = greedy_divergence(model_a, model_b, prompt_ids, n, judge)
    if found is not None:
        step, margin = found
        assert margin < tie_margin, (f"greedy tokens differ at step {step} of {n}, where the judge's "
                                     f"top-2 margin is {margin:.3f} (>= {tie_margin}: not a near-tie)")
