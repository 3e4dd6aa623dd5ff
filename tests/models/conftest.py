"""Random-weight files of the architectures added after llama, qwen2 and gpt-oss (tests/fixtures/qwen3.py,
gemma.py, phi3.py) and of llama variants, written once per session; shared by the agreement tests in this
folder."""
from __future__ import annotations

import pytest

from tests.fixtures.gemma import write_gemma2, write_gemma3
from tests.fixtures.models import write_llama
from tests.fixtures.phi3 import write_phi3
from tests.fixtures.qwen3 import write_qwen3


def _write(tmp_path_factory, name: str, writer, **kwargs) -> str:
    return writer(tmp_path_factory.mktemp("models") / f"{name}.gguf", **kwargs)


@pytest.fixture(scope="session")
def qwen3_f32_path(tmp_path_factory) -> str:
    """qwen3, every tensor F32: no activation quantization in llama.cpp, compared at 0.01 x std."""
    return _write(tmp_path_factory, "qwen3-f32", write_qwen3, weight_type="F32")


@pytest.fixture(scope="session")
def qwen3_q8_path(tmp_path_factory) -> str:
    """qwen3, 2-D weights Q8_0, untied output.weight."""
    return _write(tmp_path_factory, "qwen3-q8_0", write_qwen3, weight_type="Q8_0")


@pytest.fixture(scope="session")
def qwen3_q4_0_tied_path(tmp_path_factory) -> str:
    """qwen3, 2-D weights Q4_0, no output.weight (the head is token_embd, as in Qwen3-0.6B)."""
    return _write(tmp_path_factory, "qwen3-q4_0-tied", write_qwen3, weight_type="Q4_0", tied=True)


@pytest.fixture(scope="session")
def gemma3_f32_path(tmp_path_factory) -> str:
    """gemma3, every tensor F32, three layers: two local (window 8, rope base 10000), one global."""
    return _write(tmp_path_factory, "gemma3-f32", write_gemma3, weight_type="F32")


@pytest.fixture(scope="session")
def gemma3_q8_path(tmp_path_factory) -> str:
    return _write(tmp_path_factory, "gemma3-q8_0", write_gemma3, weight_type="Q8_0")


@pytest.fixture(scope="session")
def gemma3_softcap_f32_path(tmp_path_factory) -> str:
    """gemma3 with final_logit_softcapping = 2 (Gemma 3 files have none; the arch takes it when present)."""
    return _write(tmp_path_factory, "gemma3-softcap-f32", write_gemma3, weight_type="F32", final_softcap=2.0)


@pytest.fixture(scope="session")
def gemma3_swa_flags_f32_path(tmp_path_factory) -> str:
    """gemma3 whose sliding_window_pattern is one bool per layer (newer converters): SWA, SWA, SWA, global
    (period 4, where the default period 6 would make layer 3 SWA too)."""
    return _write(tmp_path_factory, "gemma3-swa-flags-f32", write_gemma3, weight_type="F32", n_layer=4,
                  swa_pattern=[True, True, True, False])


@pytest.fixture(scope="session")
def gemma2_f32_path(tmp_path_factory) -> str:
    """gemma2, every tensor F32: attention logits capped at 2, final logits at 3."""
    return _write(tmp_path_factory, "gemma2-f32", write_gemma2, weight_type="F32")


@pytest.fixture(scope="session")
def gemma2_q8_path(tmp_path_factory) -> str:
    return _write(tmp_path_factory, "gemma2-q8_0", write_gemma2, weight_type="Q8_0")


@pytest.fixture(scope="session")
def phi3_f32_path(tmp_path_factory) -> str:
    """phi3 (fused qkv and gate/up), every tensor F32."""
    return _write(tmp_path_factory, "phi3-f32", write_phi3, weight_type="F32")


@pytest.fixture(scope="session")
def phi3_q8_path(tmp_path_factory) -> str:
    return _write(tmp_path_factory, "phi3-q8_0", write_phi3, weight_type="Q8_0")


@pytest.fixture(scope="session")
def phi3_long_rope_f32_path(tmp_path_factory) -> str:
    """phi3 as a 128k file (rope_factors_short/long, attn_factor 1.19), every tensor F32; llama.cpp takes the
    short factors at the contexts compared (<= the original 4096)."""
    return _write(tmp_path_factory, "phi3-long-rope-f32", write_phi3, weight_type="F32", long_rope=True)


@pytest.fixture(scope="session")
def llama_rope_freqs_f32_path(tmp_path_factory) -> str:
    """llama with Llama 3.x's rope_freqs.weight (factors 1..8 dividing each pair's angle), every tensor F32."""
    return _write(tmp_path_factory, "llama-rope-freqs-f32", write_llama, weight_type="F32", rope_freqs=True)
