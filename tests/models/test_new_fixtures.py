"""The qwen3, gemma2, gemma3 and phi3 fixtures are what they claim, by tests/test_fixtures.py's checks:
llama.cpp loads each one, its logits have std ~1 and a varying argmax, and attention reads the past;
each writer is deterministic and fast."""
from __future__ import annotations

import pytest

from tests import test_fixtures as checks
from tests.fixtures.gemma import write_gemma2, write_gemma3
from tests.fixtures.phi3 import write_phi3
from tests.fixtures.qwen3 import write_qwen3

FIXTURES = ["qwen3_f32_path", "qwen3_q8_path", "qwen3_q4_0_tied_path", "gemma3_f32_path", "gemma3_q8_path",
            "gemma3_softcap_f32_path", "gemma2_f32_path", "gemma2_q8_path", "phi3_f32_path", "phi3_q8_path"]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_llama_cpp_loads_fixture(fixture, request, oracle):
    checks.test_llama_cpp_loads_fixture(fixture, request, oracle)


@pytest.mark.parametrize("writer", [write_qwen3, write_gemma2, write_gemma3, write_phi3])
def test_fixture_is_deterministic_and_fast(writer, tmp_path):
    checks.test_fixture_is_deterministic_and_fast(writer, tmp_path)
