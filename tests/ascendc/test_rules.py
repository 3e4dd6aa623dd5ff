"""Negative tests of the AscendC emulator: each broken kernel fails with its rule named, in-process.

Run-time rules come back from the launch wrapper as AscendCRuleError; chip-availability and dtype
rules fail the g++ build with a static_assert that names the rule (AscendCCompileError).
"""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest
from llmc.codegen.ascendc import kernels as K
from llmc.runtime.ascendc.launch import EMU_DIR, AscendCCompileError, AscendCRuleError, compile_sources, run

ARCH = {"310b": 3002, "310p": 2002, "910b": 2201}

PRELUDE = """
#include "kernel_operator.h"
using namespace AscendC;
"""

HOST = """
#include "{name}.cpp"
extern "C" int llmc_launch_{name}(uint8_t *x, size_t x_bytes, uint8_t *tiling, size_t tiling_bytes,
                                  uint32_t block_dim, char *err, size_t err_len)
{{
    const void *const gm[] = {{x, tiling}};
    const size_t bytes[] = {{x_bytes, tiling_bytes}};
    return ascendc_emu::LaunchOnBuffers("{name}", block_dim, gm, bytes, 2, err, err_len, [&] {{ {name}(x, tiling); }});
}}
"""


def build(name: str, body: str, chip: str = "310b"):
    """Compile `extern "C" __global__ __aicore__ void name(GM_ADDR x, GM_ADDR tiling) { body }` (x: 1024
    floats) with its launch wrapper for `chip`."""
    source = (
        PRELUDE + f'extern "C" __global__ __aicore__ void {name}(GM_ADDR x, GM_ADDR tiling)\n{{\n'
        f"    (void)tiling;\n    GlobalTensor<float> xGm;\n"
        f"    xGm.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), 1024);\n{body}\n}}\n"
    )
    cdef = (
        f"int llmc_launch_{name}(uint8_t *x, size_t x_bytes, uint8_t *tiling, size_t tiling_bytes, "
        "uint32_t block_dim, char *err, size_t err_len);"
    )
    return compile_sources(name, source, HOST.format(name=name), ARCH[chip], cdef, f"llmc_launch_{name}")


def launch(name: str, body: str, chip: str = "310b", block_dim: int = 1) -> None:
    """Build the kernel (see `build`) and run it on a zeroed 1024-float GM buffer."""
    build(name, body, chip).call([np.zeros(1024, dtype=np.float32)], b"\0" * 32, block_dim)


def expect_rule(rule: str, name: str, body: str, chip: str = "310b") -> str:
    with pytest.raises(AscendCRuleError) as info:
        launch(name, body, chip)
    assert info.value.rule == rule, str(info.value)
    assert f"ascendc-emu: kernel {name}: rule {rule}:" in str(info.value)
    return str(info.value)


def expect_compile_rule(rule: str, name: str, body: str, chip: str) -> None:
    with pytest.raises(AscendCCompileError) as info:
        launch(name, body, chip)
    assert info.value.rule == rule, info.value.output[:2000]
    assert f"ascendc-emu: rule {rule}:" in info.value.output


QUEUE = """
    TPipe pipe;
    TQue<TPosition::VECIN, 2> q;
    pipe.InitBuffer(q, 2, 256);
"""


# ---- run-time rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("chip", ["310b", "310p", "910b"])
def test_misaligned_datacopy(chip):
    msg = expect_rule(
        "datacopy-align",
        f"bad_copy_{chip}",
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopy(t, xGm, 7);  // 28 bytes: the hardware would copy 0
    q.FreeTensor(t);
""",
        chip,
    )
    assert "28 bytes" in msg


@pytest.mark.parametrize("chip, kb", [("310b", 249), ("310p", 249), ("910b", 185)])
def test_ub_overflow(chip, kb):
    msg = expect_rule(
        "ub-budget",
        f"bad_ub_{chip}",
        f"""
    TPipe pipe;
    TQue<TPosition::VECIN, 2> q;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(q, 2, 64 * 1024);
    pipe.InitBuffer(b, {kb} * 1024 - 128 * 1024);
""",
        chip,
    )
    assert "Ascend" + chip.upper() in msg


def test_ub_buffer_size_alignment():
    expect_rule(
        "ub-align",
        "bad_ub_len",
        """
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 100);
""",
    )


def test_deque_on_empty_queue():
    expect_rule(
        "deque-empty",
        "bad_deque",
        QUEUE
        + """
    LocalTensor<float> t = q.DeQue<float>();
    q.FreeTensor(t);
""",
    )


def test_leaked_tensor():
    msg = expect_rule(
        "queue-leak",
        "bad_leak",
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopy(t, xGm, 64);
    q.EnQue(t);  // never dequeued nor freed
""",
    )
    assert "still enqueued" in msg


def test_double_free():
    expect_rule(
        "double-free",
        "bad_double_free",
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    q.FreeTensor(t);
    q.FreeTensor(t);
""",
    )


def test_enque_past_depth():
    expect_rule(
        "enque-depth",
        "bad_depth",
        """
    TPipe pipe;
    TQue<TPosition::VECIN, 1> q;
    pipe.InitBuffer(q, 2, 256);
    LocalTensor<float> a = q.AllocTensor<float>();
    LocalTensor<float> b = q.AllocTensor<float>();
    q.EnQue(a);
    q.EnQue(b);
""",
    )


def test_alloc_exhausted():
    expect_rule(
        "alloc-exhausted",
        "bad_alloc",
        QUEUE
        + """
    LocalTensor<float> a = q.AllocTensor<float>();
    LocalTensor<float> b = q.AllocTensor<float>();
    LocalTensor<float> c = q.AllocTensor<float>();
""",
    )


def test_vector_op_out_of_bounds():
    expect_rule(
        "ub-bounds",
        "bad_bounds",
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    Duplicate(t, 0.0f, 64);
    Adds(t, t, 1.0f, 65);  // the buffer holds 64 floats
    q.FreeTensor(t);
""",
    )


def test_a_good_kernel_passes():
    """Copy in, compute, copy out through two queues, each block on its own slice: no rule fires."""
    launch(
        "good",
        QUEUE
        + """
    TQue<TPosition::VECOUT, 1> out;
    pipe.InitBuffer(out, 1, 256);
    GlobalTensor<float> mine = xGm[GetBlockIdx() * 64];
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopy(t, mine, 64);
    q.EnQue(t);
    LocalTensor<float> u = q.DeQue<float>();
    LocalTensor<float> o = out.AllocTensor<float>();
    Muls(o, u, 2.0f, 64);
    q.FreeTensor(u);
    out.EnQue(o);
    LocalTensor<float> v = out.DeQue<float>();
    DataCopy(mine, v, 64);
    out.FreeTensor(v);
""",
        block_dim=3,
    )


def test_generated_kernel_over_the_real_ub():
    """A chip description that overstates the UB makes tiles the emulated 910B refuses."""
    liar = K.AscendChip("910b-liar", 2201, 248 * 1024, 1, True, True)
    kernel = K.rms_norm(liar, 1, 10000)  # ~240 KB of buffers: fits 248 KB, not the 910B's 184 KB
    with pytest.raises(AscendCRuleError, match="rule ub-budget"):
        run(kernel, np.ones((1, 10000), np.float32), np.ones(10000, np.float32))


def test_missing_datacopy_pad_on_310p_is_caught_at_run_time():
    """A 310B-style tiling with a ragged row fed to the 310P kernel trips the DataCopy rule."""
    pad_tiling = K.rms_norm(K.ASCEND_310B, 2, 70)  # rowStride = 70: expects DataCopyPad
    kernel = K.rms_norm(K.ASCEND_310P, 2, 70)
    rogue = dataclasses.replace(kernel, tiling=pad_tiling.tiling, args=pad_tiling.args)
    with pytest.raises(AscendCRuleError, match="rule (datacopy-align|gm-bounds)"):
        run(rogue, np.ones((2, 70), np.float32), np.ones(70, np.float32))


# ---- compile-time rules: chip availability, dtypes, no std library -------------------------------


def test_data_copy_pad_forbidden_on_310p():
    body = (
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopyExtParams params{1, 28, 0, 0, 0};
    DataCopyPadExtParams<float> pad{false, 0, 0, 0.0f};
    DataCopyPad(t, xGm, params, pad);
    q.FreeTensor(t);
"""
    )
    expect_compile_rule("api-availability", "pad_310p", body, "310p")
    launch("pad_310b", body, "310b")  # the same kernel is fine where the API exists


def test_shift_right_forbidden_on_310p():
    body = """
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    LocalTensor<uint16_t> t = b.Get<uint16_t>();
    Duplicate(t, static_cast<uint16_t>(0xF0), 128);
    ShiftRight(t, t, static_cast<uint16_t>(4), 128);
"""
    expect_compile_rule("api-availability", "shift_310p", body, "310p")
    launch("shift_910b", body, "910b")


@pytest.mark.parametrize("api", ["RmsNorm", "SwiGLU"])
def test_high_level_norm_and_activation_forbidden_on_310b(api):
    call = {
        "RmsNorm": "RmsNormTiling rmsTiling{1, 1, 64, 64};\n"
        "    RmsNorm(t, t, t, b.Get<uint8_t>(), 1e-6f, rmsTiling);",
        "SwiGLU": "SwiGLU(t, t, t, 1.0f, 64);",
    }[api]
    body = f"""
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    LocalTensor<float> t = b.Get<float>();
    Duplicate(t, 1.0f, 64);
    {call}
"""
    expect_compile_rule("api-availability", f"{api.lower()}_310b", body, "310b")
    launch(f"{api.lower()}_910b", body, "910b")


def test_bf16_math_forbidden():
    expect_compile_rule(
        "bf16-math",
        "bf16_add",
        """
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    LocalTensor<bfloat16_t> t = b.Get<bfloat16_t>();
    Add(t, t, t, 16);
""",
        "910b",
    )


def test_bf16_cast_forbidden_on_310p():
    expect_compile_rule(
        "cast-pair",
        "bf16_cast",
        """
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    Cast(b.Get<float>(64), b.Get<bfloat16_t>(64), RoundMode::CAST_NONE, 32);
""",
        "310p",
    )


@pytest.mark.parametrize(
    "name, call",
    [
        ("printf", 'printf("%d", 1);'),
        ("malloc", "float *p = (float *)malloc(4);\n    (void)p;"),
        ("std", "std::size_t n = 0;\n    (void)n;"),
    ],
)
def test_std_library_forbidden_in_kernels(name, call):
    expect_compile_rule("no-stdlib", f"stdlib_{name}", f"    {call}", "310b")


def test_get_value_without_sync_is_refused():
    msg = expect_rule(
        "pipe-sync",
        "unsynced",
        QUEUE
        + """
    LocalTensor<float> t = q.AllocTensor<float>();
    Duplicate(t, 2.0f, 64);
    float v = t.GetValue(0);  // no SetFlag/WaitFlag<HardEvent::V_S> in between
    t.SetValue(1, v);
    q.FreeTensor(t);
""",
    )
    assert "GetValue on pipe S reads UB offset 0, written by Duplicate on pipe V" in msg


def test_cpu_twin_entry_points(tmp_path):
    """ICPU_RUN_KF, GmAlloc and GmFree work as in the CANN CPU debug flow; a violation aborts there."""
    main = tmp_path / "main.cpp"
    main.write_text(
        PRELUDE
        + """
extern "C" __global__ __aicore__ void twin(GM_ADDR x, uint32_t n)
{
    GlobalTensor<float> xGm;
    xGm.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), 64);
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    LocalTensor<float> t = b.Get<float>();
    GlobalTensor<float> mine = xGm[GetBlockIdx() * 16];
    DataCopy(t, mine, n / 4);
    PipeBarrier<PIPE_ALL>();
    Adds(t, t, 1.0f, 16);
    PipeBarrier<PIPE_ALL>();
    DataCopy(mine, t, n / 4);
}
int main(int argc, char **)
{
    uint8_t *x = AscendC::GmAlloc(64 * sizeof(float));
    for (int i = 0; i < 64; ++i) {
        reinterpret_cast<float *>(x)[i] = static_cast<float>(i);
    }
    AscendC::SetKernelMode(AscendC::KernelMode::AIV_MODE);
    ICPU_RUN_KF(twin, 4, x, argc > 1 ? 63u : 64u);
    const int ok = reinterpret_cast<float *>(x)[5] == 6.0f && reinterpret_cast<float *>(x)[53] == 54.0f;
    AscendC::GmFree(x);
    return ok ? 0 : 1;
}
"""
    )
    exe = tmp_path / "twin"
    build = ["g++", "-std=c++17", "-O2", "-D__NPU_ARCH__=3002", f"-I{EMU_DIR}", str(main), "-o", str(exe)]
    subprocess.run(build, check=True, capture_output=True)
    assert subprocess.run([str(exe)], check=False, capture_output=True).returncode == 0
    failed = subprocess.run([str(exe), "misaligned"], check=False, capture_output=True, text=True)
    assert failed.returncode != 0 and "rule datacopy-align" in failed.stderr
