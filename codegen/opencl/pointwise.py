"""OpenCL kernels of pointwise ops and fused chains: prints a plan of codegen/core/pointwise.py.

A kernel without row stages runs one work-item per output element; one with reductions runs one
work-item per row (the plain row kernels of rows.cl.j2 do the same: decode has one row per token). Sums
that ggml takes in double use `acc_t` (double where the device has cl_khr_fp64). Each kernel gets a launch
function in llmc_ocl.c (`launch`), declared in llmc_ocl.h (`declaration`).
"""
from __future__ import annotations

from llmc.codegen.c.pointwise import stores
from llmc.codegen.core.pointwise import KernelPlan, Operand, Printer, literal

_READ = {"elem": "{p}[r * n + c]", "col": "{p}[c]", "row": "{p}[r]", "scalar": "{p}[0]",
         "slice": "{p}[r * {p}_stride + {p}_offset + c]"}
# round to IEEE half (nearest even) and back, as ggml's f16 tables read their input: the preamble's
# round_f16 (templates/_common.cl.j2), under the name the shared pointwise lowering prints
ROUND_F16 = """static float llmc_round_f16(float x) {
    return round_f16(x);
}
"""


class _OpenCLPrinter(Printer):
    unary_f32 = {"exp": "exp", "tanh": "tanh", "sqrt": "sqrt", "erf": "erf"}
    unary_f64 = unary_f32

    def __call__(self, e):
        if e.kind == "to_f64":
            return f"(acc_t)({self(e.args[0])})"
        if e.kind in ("max", "min"):
            return f"{'fmax' if e.kind == 'max' else 'fmin'}({self(e.args[0])}, {self(e.args[1])})"
        return super().__call__(e)


def _read(o: Operand) -> str:
    value = _READ[o.layout].format(p=o.name)
    if o.absent is not None:
        return f"({o.name} ? {value} : {literal(o.absent)})"
    return value


def per_element(plan: KernelPlan) -> bool:
    return not plan.stages and not plan.per_row_out


def _params(plan: KernelPlan, kernel: bool) -> list[tuple[str, str, str]]:
    """(kernel parameter, host parameter, llmc_cl_run code) of each argument."""
    out = [(f"__global float *{y}", f"cl_mem {y}", "m") for y in plan.outputs]
    out += [(f"__global const float *{o.name}", f"cl_mem {o.name}", "m") for o in plan.operands]
    out += [("int rows", "int rows", "i"), ("int n", "int n", "i")]
    for o in plan.slices:
        out += [(f"int {o.name}_stride", f"int {o.name}_stride", "i"),
                (f"int {o.name}_offset", f"int {o.name}_offset", "i")]
    out += [(f"float {a}", f"float {a}", "f") for a in plan.scalars]
    return out


def kernel(plan: KernelPlan) -> str:
    """The OpenCL C kernel."""
    pr = _OpenCLPrinter(plan, _read)
    params = ", ".join(p for p, _h, _c in _params(plan, True))
    if per_element(plan):
        body = ["    const size_t i = get_global_id(0);",
                "    const size_t r = i / n, c = i % n;",
                *stores(plan, pr, "    ", "i", None)]
    else:
        body = ["    const size_t r = get_global_id(0);"]
        for st in plan.stages:
            ctype = "acc_t" if st.dtype == "f64" else "float"
            if st.kind == "let":
                body.append(f"    const {ctype} {st.tmp} = {pr(st.expr)};")
            elif st.kind == "sum":
                body += [f"    acc_t {st.tmp} = 0;",
                         f"    for (int c = 0; c < n; c++) {st.tmp} += {pr(st.expr)};"]
            else:
                body += [f"    float {st.tmp} = -INFINITY;",
                         f"    for (int c = 0; c < n; c++) {st.tmp} = fmax({st.tmp}, {pr(st.expr)});"]
        body += stores(plan, pr, "    ", "r" if plan.per_row_out else "r * n + c",
                       None if plan.per_row_out else "for (int c = 0; c < n; c++)")
    doc = [f"/* {line} */" for line in plan.doc]
    return "\n".join(doc + [f"__kernel void {plan.name}({params}) {{", *body, "}", ""])


def declaration(plan: KernelPlan) -> str:
    host = ", ".join(["llmc_ocl *o"] + [h for _p, h, _c in _params(plan, False)])
    return f"void llmc_ocl_{plan.name}({host})"


def launch(plan: KernelPlan) -> str:
    """The host function that queues the kernel: one work-item per element or per row."""
    params = _params(plan, False)
    names = [h.split()[-1] for _p, h, _c in params]
    args = ", ".join(f"(double){n}" if c == "f" else n for n, (_p, _h, c) in zip(names, params))
    items = "(size_t)rows * (size_t)n" if per_element(plan) else "(size_t)rows"
    fmt = "".join(c for _p, _h, c in params)
    return "\n".join([declaration(plan), "{",
                      f"    RUN1(o->k[K_{plan.name.upper()}], {items}, \"{fmt}\", {args});", "}", ""])
