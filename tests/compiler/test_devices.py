"""Device profiles: every shipped profile loads; malformed ones name the file and key; supports() is data."""

import shutil

import pytest
from llmc.compiler.devices import ProfileError, get_profile, list_profiles, load_profile, parse_size
from llmc.ir import expr as X
from llmc.ir.graph import Node
from llmc.ir.ops import Op

GOOD = """name = "npu"
codegen = "ascendc"
fallback = "cpu"
[memory]
bytes = "1GiB"
alignment = 64
[ops.add]
"""


def _node(op, last=8):
    return Node(0, op, (X.Name("T"), X.Num(last)), "f32", {}, None, "layer")


def test_shipped_profiles():
    profiles = list_profiles()
    assert set(profiles) == {"cpu", "opencl", "adreno", "ascend310b", "ascend310p", "ascend910b"}
    assert get_profile("c") is not None and get_profile("c").name == "cpu"
    assert profiles["ascend310b"].memory_bytes == 8 * 2**30 and not profiles["ascend310b"].memory_verified
    assert profiles["ascend910b"].memory_bytes == 32 * 2**30
    assert profiles["ascend310b"].extra["npu_arch"] == 3002
    for p in profiles.values():  # every fact has its source
        assert p.fallback in ("", "cpu") and set(p.sources) >= {"memory"}, p.name
        assert all(r.source or r.reason or p.name == "cpu" for r in p.ops.values()), p.name


def test_supports_reads_the_table():
    b, n = get_profile("ascend310b"), get_profile("ascend910b")
    assert b.supports(_node(Op.RMS_NORM))[0] is False and n.supports(_node(Op.RMS_NORM)) == (True, "")
    ok, why = b.supports(_node(Op.MATMUL), ["MXFP4"])
    assert not ok and "Q4_0/Q8_0" in why
    assert b.supports(_node(Op.MATMUL), ["Q4_0", "Q8_0"]) == (True, "")
    assert n.supports(_node(Op.ATTENTION), inputs=["q", "k", "v", "sinks"]) == (True, "")   # AscendC kernel
    ok, why = get_profile("adreno").supports(_node(Op.ATTENTION), inputs=["q", "k", "v", "sinks"])
    assert not ok and "sinks" in why
    ok, why = get_profile("adreno").supports(_node(Op.MATMUL), ["Q8_0"])
    assert not ok and "llama-quantize --pure" in why


@pytest.mark.parametrize(
    "text, key",
    [
        (GOOD.replace('codegen = "ascendc"', 'codegen = "cuda"'), "codegen: unknown codegen target 'cuda'"),
        ("colour = 1\n" + GOOD, "unknown key 'colour'"),
        (GOOD + "colour = 1\n", "unknown key 'ops.add.colour'"),
        (GOOD.replace("[ops.add]", "[ops.addd]"), "ops.addd: unknown op"),
        (GOOD + '[ops.matmul]\nweights = ["Q5_X"]\n', "ops.matmul.weights: unknown weight type 'Q5_X'"),
        (
            GOOD + '[ops.attention]\nrefuse_inputs = ["sink"]\n',
            "ops.attention.refuse_inputs: attention has no input",
        ),
        (GOOD.replace("alignment = 64", "alignment = 48"), "memory.alignment: 48 is not a power of two"),
        (GOOD.replace('"1GiB"', '"lots"'), "memory.bytes: 'lots' is not a size"),
        (GOOD.replace("alignment = 64", 'alignment = "64"'), "memory.alignment: expected an integer"),
        (GOOD.replace('name = "npu"', 'name = "gpu"'), "name: 'gpu' must match the file name 'npu'"),
        (GOOD + "[ops.add\n", "not valid TOML"),
    ],
    ids=lambda v: "" if "\n" in v else v.split(":")[0],
)
def test_malformed_profile_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "npu.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and key in str(info.value)


def test_unknown_fallback_and_unknown_target(tmp_path):
    (tmp_path / "npu.toml").write_text(GOOD.replace('fallback = "cpu"', 'fallback = "host"'))
    shutil.copy(get_profile("cpu").path, tmp_path / "cpu.toml")
    with pytest.raises(ProfileError, match="npu.toml: fallback: no profile named 'host'"):
        list_profiles(tmp_path)
    with pytest.raises(ProfileError, match="unknown target 'tpu'; known targets: adreno"):
        get_profile("tpu")


def test_parse_size():
    assert (
        parse_size("8GiB") == 8 * 2**30 and parse_size("512 MB") == 512 * 10**6 and parse_size(4096) == 4096
    )


def test_a_profile_claims_pointwise_only_where_its_backend_generates_it():
    """`pointwise = true` needs a generator of pointwise kernels (codegen/<kind>/pointwise.py); without the
    claim every pointwise op native on the device needs its own table (a hand-written kernel)."""
    import importlib.util

    from llmc.ir.ops import POINTWISE
    for profile in list_profiles().values():
        generator = importlib.util.find_spec(f"llmc.codegen.{profile.codegen}.pointwise") is not None
        if profile.pointwise:
            assert generator, f"{profile.name} claims pointwise, {profile.codegen} generates no pointwise kernels"
            assert all(op in profile.ops for op in POINTWISE)
        else:
            claimed = {op.value for op in POINTWISE if op in profile.ops and profile.ops[op].native}
            assert claimed <= {"add", "mul", "scale", "sqr", "mean", "rsqrt", "silu", "softmax", "rms_norm",
                               "rms_norm_mul", "swiglu", "swiglu_oai"}, (profile.name, claimed)
    assert list_profiles()["cpu"].pointwise and list_profiles()["opencl"].pointwise
