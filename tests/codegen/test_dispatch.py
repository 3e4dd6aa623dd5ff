"""Dispatch is one table per backend (Emitter.KERNELS: op -> the method that emits it): every op a device
profile can place natively has a row in its backend's table, and a node whose op has no row is a compile
error that names the op and its DSL line."""
import importlib

import pytest

from llmc.codegen.c.emit_c import CEmitter
from llmc.codegen.core.schedule import EMITTER_KINDS, NO_CODE, MissingKernel
from llmc.compiler.devices import UNPLACED, list_profiles
from llmc.compiler.driver import load_arch, pipeline, run_pipeline
from llmc.compiler.plan_memory import plan_memory
from llmc.ir.ops import Op
from llmc import arch_path

PROFILES = list_profiles()


def emitter_class(kind: str):
    module, name = EMITTER_KINDS[kind]
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("device", sorted(PROFILES))
def test_every_op_a_profile_places_has_a_row_in_its_backends_table(device):
    profile = PROFILES[device]
    table = emitter_class(profile.codegen).KERNELS
    claimed = {op for op, rule in profile.ops.items() if rule.native}
    missing = sorted(op.value for op in claimed - set(table))
    assert not missing, f"{device} ({profile.codegen}) claims {missing} but its emitter's KERNELS has no row"


def test_the_cpu_table_covers_every_op():
    """The CPU is every device's fallback, so its backend must emit every op that needs code."""
    assert set(CEmitter.KERNELS) | NO_CODE == set(Op), set(Op) - set(CEmitter.KERNELS) - NO_CODE
    assert NO_CODE <= UNPLACED                     # ops without code are never placed by a profile


class _NoRope(CEmitter):
    KERNELS = {op: f for op, f in CEmitter.KERNELS.items() if op is not Op.ROPE}


def test_a_missing_row_is_a_compile_error_at_the_dsl_line():
    from llmc.codegen.c.schedule import render_model_c
    arch = arch_path("llama")
    graph = run_pipeline(load_arch(arch), None, pipeline(PROFILES["cpu"], PROFILES))
    rope = next(n for n in graph.nodes() if n.op is Op.ROPE)
    with pytest.raises(MissingKernel) as info:
        render_model_c(graph, {"cpu": plan_memory(graph, "cpu", 64)}, None, {"cpu": _NoRope("cpu")})
    message = str(info.value)
    assert message.startswith(f"{rope.loc.file}:{rope.loc.line}:"), message    # the DSL place, with a caret
    assert "rope" in message and "no kernel" in message and "^" in message, message


# ---- profiles claim only what their backends generate -------------------------------------------------

def _plan(name: str):
    """The kernel plan of one pointwise op over a (rows, n) view: every input per element (split reads a
    slice of a wider row, as it does in a model)."""
    from llmc.codegen.core.pointwise import lower
    from llmc.ir import pointwise as P
    p = P.OPS[name]
    layout = "slice" if name in P.SLICING else "elem"
    return lower(f"claim_{name}", p.expr, {i: layout for i in P.inputs_of(p.expr)})


def _generate_c(device, profile, plan):
    from llmc.codegen.c import pointwise
    return pointwise.function(plan)


def _generate_opencl(device, profile, plan):
    from llmc.codegen.opencl import pointwise
    return pointwise.kernel(plan) + pointwise.launch(plan)


def _generate_ascendc(device, profile, plan):
    from llmc.codegen.ascendc import pointwise as AP
    from llmc.codegen.ascendc.emit import chip_of
    why = AP.supports(plan)
    if why:
        raise AssertionError(why)
    # as AscendCEmitter._generated builds it: the source does not depend on the shape
    return AP.kernel(plan, chip_of(device, profile), 1, AP.MAX_TILE, scalars={a: 0.0 for a in plan.scalars},
                     slices={o.name: (AP.MAX_TILE, 0) for o in plan.slices}).source


POINTWISE_GENERATOR = {"c": _generate_c, "opencl": _generate_opencl, "ascendc": _generate_ascendc}


def _weight_types(kind: str, op: Op) -> set[str]:
    """The weight types the backend has kernels for, for a typed op (embed, matmul, moe_matmul)."""
    from llmc.codegen.c.matmul import MATMUL_TYPES
    if kind == "c":
        return set(MATMUL_TYPES)
    if kind == "opencl":
        from llmc.codegen.opencl import kernels
        return set(kernels.WEIGHT_TYPES)
    # AscendC: the kernels the op's row needs, one per weight type (matmul_q4_0, ...); a weight of another
    # type is run by the CPU through host staging, which the profile's claim does not cover
    from llmc.codegen.ascendc.emit import AscendCEmitter
    keys = [key for key, _ in AscendCEmitter.KERNELS[op].needs(None, None, None)]
    return {key.removeprefix(f"{op.value}_").upper() for key in keys if key.startswith(f"{op.value}_")}


def _backend(device: str):
    """The codegen kind whose code runs a device's nodes: its own, or C when its emitter refuses whole
    models on this chip (compiler/driver.py _render: the C stand-in, which the manifest and the report
    name)."""
    from llmc.codegen.ascendc.kernels import AscendCodegenError
    profile = PROFILES[device]
    try:
        emitter_class(profile.codegen)(device, profile)
    except AscendCodegenError as exc:
        return "c", str(exc)
    return profile.codegen, ""


@pytest.mark.parametrize("device", sorted(PROFILES))
def test_a_profile_claims_only_what_its_backend_generates(device):
    """Every op the profile runs natively: a pointwise op's kernel is generated for this device (its chip,
    for AscendC); any other op has a row in the backend's table; a typed op's claimed weight types have
    kernels. A failure lists every claim the backend cannot serve."""
    from llmc.compiler.devices import WEIGHT_INPUT
    from llmc.ir.bind import SUPPORTED_WEIGHT_TYPES
    from llmc.ir.ops import POINTWISE
    profile = PROFILES[device]
    kind, stand_in = _backend(device)
    table = emitter_class(kind).KERNELS
    wrong = []
    for op, rule in sorted(profile.ops.items(), key=lambda item: item[0].value):
        if not rule.native:
            continue
        if op not in table:
            wrong.append(f"{op.value}: no row in the {kind} emitter's KERNELS")
            continue
        if op in POINTWISE:
            try:
                POINTWISE_GENERATOR[kind](device, profile, _plan(op.value))
            except Exception as exc:           # the generator's refusal, whatever its type
                wrong.append(f"{op.value}: the {kind} pointwise generator refuses it: {exc}")
        if op in WEIGHT_INPUT:
            claimed = set(rule.weights or SUPPORTED_WEIGHT_TYPES)
            missing = claimed - _weight_types(kind, op)
            if missing:
                wrong.append(f"{op.value}: no {kind} kernel for claimed weight types {sorted(missing)}")
    where = f" (run as the C stand-in: {stand_in})" if stand_in else ""
    assert not wrong, f"{device}{where} claims what its backend cannot generate:\n" + "\n".join(wrong)


def test_the_claims_check_can_fail():
    """A profile that claimed gelu_erf on 310B (no Erf API) would fail the check above."""
    from llmc.ir import pointwise as P
    with pytest.raises(AssertionError, match="erf"):
        _generate_ascendc("ascend310b", PROFILES["ascend310b"], _plan("gelu_erf"))
    assert "gelu_erf" in P.OPS and not PROFILES["ascend310b"].ops[Op.GELU_ERF].native
