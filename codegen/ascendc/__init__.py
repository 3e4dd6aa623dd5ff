"""AscendC target (Ascend 310B / 310P / 910B): kernel sources and host wrappers from templates.

The runtime half (emulation header, launcher, host-side repacking) lives in ``llmc.runtime.ascendc``.
"""

from llmc.codegen.ascendc.kernels import (
    ASCEND_310B,
    ASCEND_310P,
    ASCEND_910B,
    CHIPS,
    KERNELS,
    AscendChip,
    AscendCodegenError,
    AscendKernel,
    KernelArg,
    TilingField,
    add,
    rms_norm,
    rope,
)

__all__ = [
    "ASCEND_310B",
    "ASCEND_310P",
    "ASCEND_910B",
    "CHIPS",
    "KERNELS",
    "AscendChip",
    "AscendCodegenError",
    "AscendKernel",
    "KernelArg",
    "TilingField",
    "add",
    "rms_norm",
    "rope",
]
