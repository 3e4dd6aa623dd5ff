"""The C artifact: generic and specialized builds, the build cache, and GGUF files that don't fit.

Bad files are loaded in a subprocess so that a crash fails the test instead of killing the runner."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest

import llmc
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


@pytest.fixture(scope="module")
def qwen2_generic(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen2-generic")
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(out))
    return str(out)


def test_specialized_equals_generic_and_bakes_constants(qwen2_generic, qwen2_q8_path, tmp_path):
    spec = tmp_path / "spec"
    result = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(spec), specialize=qwen2_q8_path)
    source = (spec / "src" / "model.c").read_text()
    assert "#define HP_n_embd ((double)128)" in source and "llmc_matmul_q8_0(" in source
    assert "llmc_matmul_any(" not in source
    assert result.manifest["specialized"]["params"]["n_embd"] == 128
    ids = fixture_tokens(400, 20, seed=2)
    a = llmc.load(qwen2_generic, qwen2_q8_path, n_ctx=64).logits(ids)
    b = llmc.load(str(spec), qwen2_q8_path, n_ctx=64).logits(ids)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_specialized_artifact_refuses_another_file(tmp_path, qwen2_q8_path, qwen2_q4_0_tied_path):
    spec = tmp_path / "spec"
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(spec), specialize=qwen2_q8_path)
    with pytest.raises(llmc.LlmcError, match="specialized for Q8_0|specialized for"):
        llmc.load(str(spec), qwen2_q4_0_tied_path, n_ctx=64)


def test_second_compile_comes_from_the_build_cache(tmp_path):
    first = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(tmp_path / "a"))
    second = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(tmp_path / "b"))
    assert second.cached and second.seconds < 5
    assert first.manifest["sources_sha256"] == second.manifest["sources_sha256"]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["arch"] == "qwen2" and manifest["memory_plan"]["slots"]


def test_a_new_arch_compiles_only_its_schedule(tmp_path, monkeypatch, llama_f32_path):
    """Kernel and runtime objects come from the per-unit cache; only the model's own units are compiled:
    its schedule (model.c) and its hyperparameters (llmc_params.c)."""
    from llmc.codegen.c import build
    compile_model(os.path.join(ARCHS, "llama.llmc"), "c", str(tmp_path / "warm"))      # kernels cached
    arch = tmp_path / f"llama_{uuid.uuid4().hex}.llmc"     # a name no cache has seen: model.c differs
    shutil.copy(os.path.join(ARCHS, "llama.llmc"), arch)
    compiled = []
    run_parallel = build._run_parallel

    def recording(commands, outputs):
        compiled.extend(os.path.basename(c[c.index("-c") + 1]) for c in commands if "-c" in c)
        run_parallel(commands, outputs)

    monkeypatch.setattr(build, "_run_parallel", recording)
    result = compile_model(str(arch), "c", str(tmp_path / "new"))
    assert not result.cached and sorted(compiled) == ["llmc_params.c", "model.c"]
    model = llmc.load(str(tmp_path / "new"), llama_f32_path, n_ctx=32)
    assert model.logits([1, 2, 3]).shape == (3, model.n_vocab)


def _load_in_subprocess(artifact, gguf):
    code = ("import sys, llmc\n"
            "try:\n"
            f"    m = llmc.load({artifact!r}, {gguf!r}, n_ctx=32)\n"
            "    m.logits([1, 2, 3])\n"
            "except llmc.LlmcError as e:\n"
            "    print('ERROR', e); sys.exit(3)\n"
            "print('LOADED')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _rewrite(src, dst, edit):
    data = bytearray(open(src, "rb").read())
    edit(data)
    open(dst, "wb").write(bytes(data))
    return str(dst)


def test_bad_files_are_rejected_with_the_tensor_named(qwen2_generic, qwen2_q8_path, gpt_oss_path, tmp_path):
    from llmc.runtime.gguf_file import GGUFFile
    g = GGUFFile(qwen2_q8_path)
    wq = g.tensors["blk.1.attn_q.weight"]
    cases = {
        "other arch": (gpt_oss_path, "holds a 'gpt-oss' model"),
        "truncated": (_rewrite(qwen2_q8_path, tmp_path / "trunc.gguf", lambda d: d.__delitem__(slice(wq.offset + 10, None))),
                      "blk.1.attn_q.weight"),
        "unsupported type": (_rewrite(qwen2_q8_path, tmp_path / "type.gguf",      # 16: IQ2_XXS, not read
                                      lambda d: d.__setitem__(slice(*_type_field(d, "blk.0.ffn_up.weight")), (16).to_bytes(4, "little"))),
                             "blk.0.ffn_up.weight"),
        "offset past the end": (_rewrite(qwen2_q8_path, tmp_path / "offset.gguf",
                                         lambda d: d.__setitem__(slice(_type_field(d, "blk.1.ffn_down.weight")[1],
                                                                       _type_field(d, "blk.1.ffn_down.weight")[1] + 8),
                                                                 (1 << 40).to_bytes(8, "little"))),
                                "blk.1.ffn_down.weight"),
    }
    shutil.copy(qwen2_q8_path, tmp_path / "ok.gguf")
    for name, (path, expected) in cases.items():
        proc = _load_in_subprocess(qwen2_generic, path)
        assert proc.returncode == 3, f"{name}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr[-2000:]}"
        assert expected in proc.stdout, f"{name}: {proc.stdout}"
    assert _load_in_subprocess(qwen2_generic, str(tmp_path / "ok.gguf")).returncode == 0


def _type_field(data: bytearray, tensor: str) -> tuple[int, int]:
    """Byte range of the type id in a tensor's info record (name, n_dims, ne[n_dims], type, offset)."""
    at = bytes(data).index(tensor.encode()) + len(tensor)
    n_dims = int.from_bytes(data[at:at + 4], "little")
    start = at + 4 + 8 * n_dims
    return start, start + 4


def test_wrong_shape_is_rejected_by_the_c_runtime(qwen2_generic, tmp_path):
    """A file whose ffn is narrower than its metadata says: caught when binding, naming the tensor."""
    from tests.fixtures.models import write_qwen2
    path = tmp_path / "q.gguf"
    write_qwen2(str(path), weight_type="Q8_0")
    data = bytearray(path.read_bytes())
    key = b"qwen2.feed_forward_length"
    at = bytes(data).index(key) + len(key) + 4          # skip the value type
    data[at:at + 4] = (512).to_bytes(4, "little")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    proc = _load_in_subprocess(qwen2_generic, str(bad))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "blk.0.ffn_gate.weight" in proc.stdout and "512" in proc.stdout


def test_kv_cache_becomes_resident_only_where_used(tmp_path, smollm2_path):
    """A 16k-token KV cache (377 MB for SmolLM2) costs resident memory only for the positions written."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("resident memory is read from /proc/self/status (Linux)")
    art = tmp_path / "llama"
    compile_model(os.path.join(ARCHS, "llama.llmc"), "c", str(art))
    code = ("import sys, llmc\n"
            "def rss():\n"
            "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) << 10\n"
            "before = rss()\n"
            "model = llmc.load(sys.argv[1], sys.argv[2], n_ctx=16384, n_threads=1)\n"
            "loaded = rss()\n"
            "model.logits(list(range(1, 9)))\n"
            "print(loaded - before, rss() - before)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(art), smollm2_path], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded, used = map(int, proc.stdout.split())
    kv_bytes = 30 * 16384 * 3 * 64 * 2 * 2          # layers x positions x kv heads x head dim x f16 x (K, V)
    assert loaded < kv_bytes / 4 and used < kv_bytes / 2, (loaded, used, kv_bytes)
