"""The emulator is as strict as a chip: each kernel here breaks exactly one rule a chip would punish
(a missing pipe sync, a tensor used outside the queue discipline, two cores writing the same GM, a GM
access past the real buffer, a UB budget above the vector-local limit) and is refused with that rule
named; the same kernel with the rule kept runs. Runs in-process through tests/ascendc/test_rules.py's
harness: `x` is a GM buffer of 1024 floats."""

from __future__ import annotations

import pytest

from llmc.runtime.ascendc.launch import AscendCRuleError
from tests.ascendc.test_rules import expect_rule, launch

BUF = """
    TPipe pipe;
    TBuf<TPosition::VECCALC> a, b;
    pipe.InitBuffer(a, 256);
    pipe.InitBuffer(b, 256);
    LocalTensor<float> ta = a.Get<float>();
    LocalTensor<float> tb = b.Get<float>();
"""

QUEUES = """
    TPipe pipe;
    TQue<TPosition::VECIN, 1> in;
    TQue<TPosition::VECOUT, 1> out;
    pipe.InitBuffer(in, 1, 256);
    pipe.InitBuffer(out, 1, 256);
"""


def _pair(name: str, broken: str, fixed: str, rule: str, prelude: str = BUF) -> str:
    """The broken kernel fails with `rule`; the fixed one (the same with the rule kept) runs."""
    msg = expect_rule(rule, f"{name}_broken", prelude + broken)
    launch(f"{name}_fixed", prelude + fixed)
    return msg


# ---- pipe synchronisation ------------------------------------------------------------------------


def test_copy_in_then_compute_needs_mte2_to_v():
    msg = _pair(
        "mte2_v",
        "    DataCopy(ta, xGm, 64);\n    Adds(tb, ta, 1.0f, 64);\n",
        "    DataCopy(ta, xGm, 64);\n    SetFlag<HardEvent::MTE2_V>(EVENT_ID0);\n"
        "    WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);\n    Adds(tb, ta, 1.0f, 64);\n",
        "pipe-sync",
    )
    assert "Adds on pipe V reads UB offset 0, written by DataCopy(GM->UB) on pipe MTE2" in msg
    assert "MTE2_V" in msg


def test_compute_then_copy_out_needs_v_to_mte3():
    msg = _pair(
        "v_mte3",
        "    Duplicate(ta, 1.0f, 64);\n    DataCopy(xGm, ta, 64);\n",
        "    Duplicate(ta, 1.0f, 64);\n    SetFlag<HardEvent::V_MTE3>(EVENT_ID1);\n"
        "    WaitFlag<HardEvent::V_MTE3>(EVENT_ID1);\n    DataCopy(xGm, ta, 64);\n",
        "pipe-sync",
    )
    assert "pipe MTE3" in msg and "written by Duplicate on pipe V" in msg


def test_scalar_write_then_vector_read_needs_s_to_v():
    set_one = ("    Duplicate(ta, 0.0f, 64);\n    SetFlag<HardEvent::V_S>(EVENT_ID0);\n"
               "    WaitFlag<HardEvent::V_S>(EVENT_ID0);\n    ta.SetValue(3, 2.0f);\n")
    _pair(
        "s_v",
        set_one + "    Adds(tb, ta, 1.0f, 64);\n",
        set_one + "    SetFlag<HardEvent::S_V>(EVENT_ID0);\n    WaitFlag<HardEvent::S_V>(EVENT_ID0);\n"
        "    Adds(tb, ta, 1.0f, 64);\n",
        "pipe-sync",
    )


def test_copy_in_over_a_buffer_the_vector_still_reads_needs_v_to_mte2():
    """Write after read: the next tile's copy-in may not overwrite what a vector op has not finished
    reading."""
    first = ("    DataCopy(ta, xGm, 64);\n    SetFlag<HardEvent::MTE2_V>(EVENT_ID0);\n"
             "    WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);\n    Adds(tb, ta, 1.0f, 64);\n")
    msg = _pair(
        "v_mte2",
        first + "    DataCopy(ta, xGm[64], 64);\n",
        first + "    SetFlag<HardEvent::V_MTE2>(EVENT_ID0);\n    WaitFlag<HardEvent::V_MTE2>(EVENT_ID0);\n"
        "    DataCopy(ta, xGm[64], 64);\n",
        "pipe-sync",
    )
    assert "while pipe V may still read it" in msg


def test_syncs_are_transitive():
    """MTE2 -> V then V -> MTE3 orders the copy-in before the copy-out too (no MTE2_MTE3 flag needed)."""
    launch(
        "transitive",
        BUF
        + "    DataCopy(ta, xGm, 64);\n    SetFlag<HardEvent::MTE2_V>(EVENT_ID0);\n"
        "    WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);\n    Adds(tb, ta, 1.0f, 64);\n"
        "    SetFlag<HardEvent::V_MTE3>(EVENT_ID0);\n    WaitFlag<HardEvent::V_MTE3>(EVENT_ID0);\n"
        "    DataCopy(xGm, tb, 64);\n    DataCopy(xGm[64], ta, 64);\n",
    )


def test_pipe_barrier_all_orders_everything():
    launch("barrier", BUF + "    DataCopy(ta, xGm, 64);\n    PipeBarrier<PIPE_ALL>();\n"
           "    Adds(tb, ta, 1.0f, 64);\n")


def test_wait_without_set_would_hang():
    msg = expect_rule("flag-unset", "hang", BUF + "    WaitFlag<HardEvent::V_S>(EVENT_ID2);\n")
    assert "WaitFlag" in msg and "V_S" in msg


def test_queues_carry_their_syncs():
    """EnQue/DeQue on VECIN is MTE2 -> V, on VECOUT V -> MTE3: the textbook pipeline needs no flags."""
    launch(
        "queues",
        QUEUES
        + """
    LocalTensor<float> t = in.AllocTensor<float>();
    DataCopy(t, xGm, 64);
    in.EnQue(t);
    LocalTensor<float> u = in.DeQue<float>();
    LocalTensor<float> o = out.AllocTensor<float>();
    Adds(o, u, 1.0f, 64);
    in.FreeTensor(u);
    out.EnQue(o);
    LocalTensor<float> v = out.DeQue<float>();
    DataCopy(xGm, v, 64);
    out.FreeTensor(v);
    LocalTensor<float> t2 = in.AllocTensor<float>();   // waits for the vector read of the last use
    DataCopy(t2, xGm[64], 64);
    in.EnQue(t2);
    LocalTensor<float> u2 = in.DeQue<float>();
    in.FreeTensor(u2);
""",
    )


def test_vecin_queue_does_not_sync_the_scalar_unit():
    """A VECIN DeQue orders MTE2 before V only: a scalar read of the tile still needs MTE2_S."""
    expect_rule(
        "pipe-sync",
        "deque_scalar",
        QUEUES
        + """
    LocalTensor<float> t = in.AllocTensor<float>();
    DataCopy(t, xGm, 64);
    in.EnQue(t);
    LocalTensor<float> u = in.DeQue<float>();
    float first = u.GetValue(0);
    (void)first;
    in.FreeTensor(u);
""",
    )


# ---- tensor state --------------------------------------------------------------------------------


def test_tensor_used_without_deque():
    msg = expect_rule(
        "tensor-state",
        "no_deque",
        QUEUES
        + """
    LocalTensor<float> t = in.AllocTensor<float>();
    DataCopy(t, xGm, 64);
    in.EnQue(t);
    LocalTensor<float> o = out.AllocTensor<float>();
    Adds(o, t, 1.0f, 64);        // t is still in the queue: the kernel must use what DeQue returns
    out.FreeTensor(o);
    LocalTensor<float> u = in.DeQue<float>();
    in.FreeTensor(u);
""",
    )
    assert "while it is enqueued: use the tensor DeQue returns" in msg


def test_tensor_used_after_free():
    msg = expect_rule(
        "tensor-state",
        "after_free",
        QUEUES
        + """
    LocalTensor<float> t = in.AllocTensor<float>();
    in.FreeTensor(t);
    Duplicate(t, 1.0f, 64);
""",
    )
    assert "after its FreeTensor" in msg


def test_stale_tensor_after_the_buffer_is_handed_out_again():
    msg = expect_rule(
        "tensor-state",
        "stale",
        QUEUES
        + """
    LocalTensor<float> t = in.AllocTensor<float>();
    in.FreeTensor(t);
    LocalTensor<float> t2 = in.AllocTensor<float>();
    Duplicate(t, 1.0f, 64);      // same UB as t2, but t is the earlier allocation's handle
    in.FreeTensor(t2);
""",
    )
    assert "stale" in msg


def test_tensor_from_no_buffer():
    expect_rule("tensor-state", "no_buffer", "    TPipe pipe;\n    LocalTensor<float> t(0, 64);\n"
                "    Duplicate(t, 1.0f, 64);\n")


# ---- blocks and GM -------------------------------------------------------------------------------

WRITE_OUT = """
    DataCopy(ta, xGm[{offset}], 64);
    PipeBarrier<PIPE_ALL>();
    Adds(tb, ta, 1.0f, 64);
    PipeBarrier<PIPE_ALL>();
    DataCopy(xGm[{offset}], tb, 64);
"""


def test_two_blocks_writing_the_same_gm():
    with pytest.raises(AscendCRuleError) as info:
        launch("overlap", BUF + WRITE_OUT.format(offset="GetBlockIdx() * 32"), block_dim=2)
    assert ("rule gm-overlap: blocks 0 (DataCopy(UB->GM)) and 1 (DataCopy(UB->GM)) both write"
            in str(info.value))
    launch("disjoint", BUF + WRITE_OUT.format(offset="GetBlockIdx() * 64"), block_dim=4)


def test_a_block_reading_what_another_block_writes():
    """Block b reads the slice block b + 1 writes: on a chip it sees old or new data by timing."""
    race = WRITE_OUT.replace("DataCopy(ta, xGm[{offset}], 64);", "DataCopy(ta, xGm[{offset} + 64], 64);")
    with pytest.raises(AscendCRuleError) as info:
        launch("read_race", BUF + race.format(offset="GetBlockIdx() * 64"), block_dim=2)
    assert "rule gm-race: block 0 reads GM bytes" in str(info.value)
    assert "that block 1 writes (DataCopy(UB->GM))" in str(info.value)


def test_gm_bounds_are_the_real_buffer_not_the_declared_size():
    """The kernel declares 4096 floats over a 1024-float buffer (which aclrtMalloc would round up by 32
    bytes, 8 floats): an access past those 1032 floats is refused."""
    msg = expect_rule(
        "gm-bounds",
        "declared_too_big",
        BUF + "    GlobalTensor<float> big;\n"
        "    big.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), 4096);\n"
        "    DataCopy(ta, big[1000], 64);\n",
    )
    assert "the device buffer has 32 left (the kernel declared 3096)" in msg


def test_gm_pointer_outside_every_buffer():
    msg = expect_rule(
        "gm-unknown",
        "wild_pointer",
        "    GlobalTensor<float> wild;\n"
        "    wild.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x) + 4096, 64);\n",
    )
    assert "in no device buffer" in msg


# ---- chip limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chip, kb, fits", [("310b", 184, True), ("310b", 185, False), ("310p", 248, True),
                                            ("910b", 184, True), ("910b", 185, False)])
def test_ub_budget_is_the_vector_local_limit(chip, kb, fits):
    """asc-devkit's TOTAL_VEC_LOCAL_SIZE: 184 KB on 310B (of 248 KB UB), 248 KB on 310P, 184 KB on 910B."""
    body = f"    TPipe pipe;\n    TBuf<TPosition::VECCALC> b;\n    pipe.InitBuffer(b, {kb} * 1024);\n"
    if fits:
        launch(f"ub_{chip}_{kb}", body, chip)
    else:
        assert "has 188416" in expect_rule("ub-budget", f"ub_{chip}_{kb}", body, chip)
