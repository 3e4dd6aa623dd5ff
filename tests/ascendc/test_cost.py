"""The emulator's cost log counts what a launch does (GM bytes, vector repeats, waits, blocks), the cost
model turns it into seconds as documented, and `llmc bench` on an Ascend artifact prints the estimate
with its bound and assumptions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from llmc.runtime.ascendc import cost as C
from tests.ascendc.test_rules import build

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")
CHIP = C.ChipCost("test", cores=2, clock_mhz=1000, gm_bytes_per_cycle=4, memory_gbps=6, launch_us=3,
                  blocking_call_us=10, sync_cycles=50)


def _kernel_log(block_dim: int) -> C.Log:
    """Each block: copy 64 floats in (256 B), Adds over them (one 256-byte repeat), copy out; two queue
    waits (DeQue of VECIN and of VECOUT)."""
    name = "costed"
    body = """
    TPipe pipe;
    TQue<TPosition::VECIN, 1> in;
    TQue<TPosition::VECOUT, 1> out;
    pipe.InitBuffer(in, 1, 256);
    pipe.InitBuffer(out, 1, 256);
    GlobalTensor<float> mine = xGm[GetBlockIdx() * 64];
    LocalTensor<float> t = in.AllocTensor<float>();
    DataCopy(t, mine, 64);
    in.EnQue(t);
    LocalTensor<float> u = in.DeQue<float>();
    LocalTensor<float> o = out.AllocTensor<float>();
    Adds(o, u, 1.0f, 64);
    in.FreeTensor(u);
    out.EnQue(o);
    LocalTensor<float> v = out.DeQue<float>();
    DataCopy(mine, v, 64);
    out.FreeTensor(v);
"""
    compiled = build(name, body, "910b")
    log = C.CostLog(str(compiled.path.parent), compiled.path.name)
    log.take()
    x = np.arange(1024, dtype=np.float32)
    compiled.call([x], b"\0" * 32, block_dim)
    assert x[64 * (block_dim - 1) + 5] == 64 * (block_dim - 1) + 6
    return log.take()


def test_the_log_counts_what_each_launch_does():
    log = _kernel_log(3)
    assert log.blocking_calls == 0 and log.dropped == 0
    (launch,) = log.launches
    assert launch.kernel == "costed" and launch.blocks == 3
    assert launch.gm_bytes == 3 * 512 and launch.max_block_gm == 512
    assert launch.max_block_repeats == 1
    assert launch.max_block_waits == 2


def test_launch_seconds_follow_the_documented_model():
    # 3 blocks on 2 cores: 2 waves. DMA: 512 B at min(4 GB/s, 6 / 2 GB/s) = 3 GB/s; compute: (1 + 2*50) cycles
    launch = C.Launch("k", 3, 1536, 512, 1, 0, 2)
    dma, compute = 512 / 3e9, 101 / 1e9
    assert C.launch_seconds(launch, CHIP) == pytest.approx(3e-6 + 2 * max(dma, compute), rel=1e-12)
    est = C.estimate(C.Log([launch, launch], blocking_calls=4), CHIP)
    assert est.seconds == pytest.approx(2 * C.launch_seconds(launch, CHIP) + 4 * 10e-6, rel=1e-12)
    assert CHIP.bandwidth_gbps == 6   # 2 cores x 4 GB/s capped by the chip's 6 GB/s


def test_layer_period_finds_the_repeated_layer():
    names = ["embed", "norm", "mm", "rope", "mm", "add", "norm", "mm", "rope", "mm", "add", "head"]
    launches = [C.Launch(n, 1, 0, 0, 0, 0, 0) for n in names]
    assert C.layer_period(launches, 2) == (1, 5)
    assert C.layer_period(launches, 1) is None


def test_bench_prints_the_estimate_for_an_ascend_artifact(qwen2_q8_path, tmp_path, capsys):
    import llmc
    from llmc import bench_ascend
    from llmc.compiler.driver import compile_model

    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "ascend310b", str(tmp_path), gguf=qwen2_q8_path)
    model = llmc.load(str(tmp_path), qwen2_q8_path, n_ctx=32, n_batch=8)
    assert bench_ascend.has_cost_model(model.target) and not bench_ascend.has_cost_model("cpu")
    bench_ascend.report(model, str(tmp_path), qwen2_q8_path, n_prompt=8, n_gen=2, depth=0, layers=24, chunk=8)
    out = capsys.readouterr().out
    assert "estimated on ascend310b by the cost model" in out and "24 layers (the file has 2)" in out
    for line in ("prefill", "decode", "memory-bandwidth bound of the whole model", "assumptions:"):
        assert f"  {line}" in out, out
    decode = float(out.split("  decode ")[1].split(" tok/s")[0])
    bound = float(out.split("whole model: decode ")[1].split(" tok/s")[0])
    assert 0 < decode <= bound


@pytest.mark.parametrize("target, clock, per_core", [("ascend310b", 500, 4.0), ("ascend910b", 1500, 48.0)])
def test_profiles_carry_the_cost_facts(target, clock, per_core):
    from llmc import bench_ascend

    chip, source = bench_ascend.chip_cost(target)
    assert chip.clock_mhz == clock and chip.core_gbps == per_core
    assert ".ini" in source and "Assumed, no source" in source


def test_a_bad_cost_table_names_the_key(tmp_path):
    from llmc.compiler.devices import ProfileError, load_profile

    devices = os.path.join(os.path.dirname(C.__file__), "..", "..", "compiler", "devices")
    text = open(os.path.join(devices, "ascend310b.toml")).read()
    bad = tmp_path / "ascend310b.toml"
    bad.write_text(text.replace("clock_mhz = 500", "clock_mhz = -1"))
    with pytest.raises(ProfileError, match=r"cost\.clock_mhz: expected a positive number"):
        load_profile(bad)
