"""The OpenCL profiles claim only what codegen/opencl generates, and `opencl` claims all of it.

A profile that claims an op or weight type without a kernel would place nodes the generated code cannot
run; one that claims less sends work to the CPU for nothing. Each op's kernel is tested against
ir/reference.py in test_kernels.py (named below)."""
from __future__ import annotations

import pathlib

import pytest
from llmc.codegen.opencl import kernels
from llmc.codegen.opencl.emit import OpenCLEmitter
from llmc.compiler.driver import compile_model
from llmc.compiler.devices import list_profiles
from llmc.ir.ops import POINTWISE, Op

from tests.opencl import test_kernels

PROFILES = {name: p for name, p in list_profiles().items() if p.codegen == "opencl"}
# each hand-written kernel's test (the pointwise ops' are in test_pointwise.py)
KERNEL_TESTS = {Op.EMBED: "test_embed", Op.MATMUL: "test_matmul", Op.MOE_MATMUL: "test_moe_matmul",
                Op.ROPE: "test_rope", Op.ATTENTION: "test_attention", Op.TOPK: "test_router_ops",
                Op.GATHER: "test_router_ops", Op.WEIGHTED_SUM: "test_router_ops"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_claims_only_generated_ops_and_types(name):
    profile = PROFILES[name]
    for op, rule in profile.ops.items():
        if not rule.native:
            continue
        assert op in OpenCLEmitter.KERNELS, f"{name} claims {op.value}, which codegen/opencl does not generate"
        extra = set(rule.weights or ()) - set(kernels.WEIGHT_TYPES)
        assert not extra, f"{name} claims {op.value} with {sorted(extra)} weights, which have no OpenCL kernels"


def test_opencl_profile_claims_every_kernel():
    """Every hand-written kernel is claimed with all weight types, all optional inputs, any row length."""
    profile = PROFILES["opencl"]
    assert profile.pointwise
    for op in set(OpenCLEmitter.KERNELS) - POINTWISE:
        rule = profile.ops.get(op)
        assert rule is not None and rule.native, f"opencl does not claim {op.value}, which has a kernel"
        assert rule.weights is None and not rule.refuse_inputs and rule.dim_multiple_of <= 1, (op, rule)
        assert hasattr(test_kernels, KERNEL_TESTS[op]), f"{op.value}: no kernel test {KERNEL_TESTS[op]}"


ARCH_FILES = sorted(pathlib.Path(__file__).resolve().parents[2].joinpath("archs").glob("*.llmc"))


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("arch", ARCH_FILES, ids=lambda p: p.stem)
def test_every_arch_compiles_and_builds(arch, profile, tmp_path):
    """Every arch's generic artifact builds for every OpenCL profile, whose host code guards weight
    uploads with load-time placement flags (gemma2 on adreno once mixed || and && there, which
    -Werror=parentheses refused)."""
    compile_model(str(arch), profile, str(tmp_path / "art"))
