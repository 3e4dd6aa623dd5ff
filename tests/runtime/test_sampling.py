"""runtime/sampling.py: greedy, determinism, top-k, top-p."""
from __future__ import annotations

import numpy as np
import pytest
from llmc.runtime.sampling import Sampler


def _logits(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 3.0, size=n).astype(np.float32)


def test_greedy_is_argmax():
    for seed in range(5):
        logits = _logits(seed=seed)
        assert Sampler(temperature=0.0).sample(logits) == int(np.argmax(logits))


def test_same_seed_same_draws():
    logits = _logits()
    a = Sampler(temperature=1.0, top_k=100, top_p=0.99, seed=42)
    b = Sampler(temperature=1.0, top_k=100, top_p=0.99, seed=42)
    draws_a = [a.sample(logits) for _ in range(50)]
    assert draws_a == [b.sample(logits) for _ in range(50)]
    assert len(set(draws_a)) > 1, "a flat-ish distribution should not always give the same token"


def test_top_k_1_is_greedy():
    for seed in range(5):
        logits = _logits(seed=seed)
        sampler = Sampler(temperature=2.0, top_k=1, top_p=1.0, seed=seed)
        assert sampler.sample(logits) == int(np.argmax(logits))


def test_top_k_keeps_only_the_k_largest():
    logits = _logits()
    sampler = Sampler(temperature=5.0, top_k=5, top_p=1.0, seed=0)
    allowed = set(np.argsort(-logits)[:5].tolist())
    assert {sampler.sample(logits) for _ in range(300)} <= allowed


def test_top_p_mass_and_renormalised_frequencies():
    # Probabilities 0.5, 0.3, 0.1, 0.05, 0.05: top_p = 0.75 keeps the first two (0.5 < 0.75 <= 0.8),
    # which at temperature 1 are drawn with 0.625 / 0.375.
    probs = np.array([0.05, 0.5, 0.1, 0.3, 0.05])
    logits = np.log(probs)
    sampler = Sampler(temperature=1.0, top_k=0, top_p=0.75, seed=123)
    n = 4000
    draws = np.array([sampler.sample(logits) for _ in range(n)])
    assert set(draws.tolist()) <= {1, 3}
    frac = float(np.mean(draws == 1))
    # std of the fraction is sqrt(0.625 * 0.375 / 4000) = 0.0077; allow 5 sigma.
    assert abs(frac - 0.625) < 0.04, frac


def test_temperature_sharpens():
    logits = np.log(np.array([0.6, 0.4]))
    cold = Sampler(temperature=0.25, top_k=0, top_p=1.0, seed=1)
    n = 2000
    frac = np.mean([cold.sample(logits) == 0 for _ in range(n)])
    # p0 = 0.6^4 / (0.6^4 + 0.4^4) = 0.835; std 0.0083, allow 5 sigma.
    assert abs(frac - 0.835) < 0.042, frac


@pytest.mark.parametrize("kwargs", [{"temperature": -1.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        Sampler(**kwargs)


def test_min_p_keeps_tokens_at_least_min_p_times_the_best():
    logits = np.log(np.array([0.5, 0.3, 0.12, 0.08]))
    ids, _ = Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.2).candidates(logits)
    assert list(ids) == [0, 1, 2]                 # 0.08 < 0.2 * 0.5 <= 0.12
    ids, _ = Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=1.0).candidates(logits)
    assert list(ids) == [0]
    with pytest.raises(ValueError, match="min_p"):
        Sampler(min_p=1.5)
