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
