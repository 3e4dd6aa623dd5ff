"""C kernels of pointwise ops and fused chains: prints a plan of codegen/core/pointwise.py.

One static function per plan, written into the model's own C file; a row's reductions run in double or
float as the plan says, then one loop writes the row. Kernels are single-threaded: they read and write
each activation once, which costs little next to the matmuls.
"""
from __future__ import annotations

from llmc.codegen.core.pointwise import KernelPlan, Operand, Printer, literal

_READ = {"elem": "{p}[r * n + c]", "col": "{p}[c]", "row": "{p}[r]", "scalar": "{p}[0]",
         "slice": "{p}[r * {p}_stride + {p}_offset + c]"}


def _read(o: Operand) -> str:
    value = _READ[o.layout].format(p=o.name)
    if o.absent is not None:
        return f"({o.name} ? {value} : {literal(o.absent)})"
    return value


def parameters(plan: KernelPlan) -> list[str]:
    params = ["float *y"] + [f"const float *{o.name}" for o in plan.operands] + ["long rows", "long n"]
    params += [f"long {o.name}_stride, long {o.name}_offset" for o in plan.slices]
    return params + [f"float {a}" for a in plan.scalars]


def function(plan: KernelPlan) -> str:
    """The C definition of the kernel."""
    pr = Printer(plan, _read)
    pr.round_f16 = "llmc_round_f16"
    body = ["    for (long r = 0; r < rows; r++) {"]
    for st in plan.stages:
        ctype = "double" if st.dtype == "f64" else "float"
        if st.kind == "let":
            body.append(f"        const {ctype} {st.tmp} = {pr(st.expr)};")
        elif st.kind == "sum":
            body += [f"        double {st.tmp} = 0.0;",
                     f"        for (long c = 0; c < n; c++) {st.tmp} += {pr(st.expr)};"]
        else:
            body += [f"        float {st.tmp} = -INFINITY;",
                     f"        for (long c = 0; c < n; c++) {st.tmp} = fmaxf({st.tmp}, {pr(st.expr)});"]
    if plan.per_row_out:
        body.append(f"        y[r] = {pr(plan.out)};")
    else:
        body.append(f"        for (long c = 0; c < n; c++) y[r * n + c] = {pr(plan.out)};")
    body.append("    }")
    doc = ["/* " + plan.doc[0]] + [" * " + line for line in plan.doc[1:]] if plan.doc else ["/*"]
    doc[-1] += " */"
    return "\n".join(doc + [f"static void {plan.name}({', '.join(parameters(plan))})", "{", *body, "}", ""])


def call(plan: KernelPlan, out: str, operands: dict[str, str], rows: str, n: str,
         slices: dict[str, tuple[str, str]], scalars: dict[str, str]) -> str:
    """One call of the kernel: C expressions of the output, each operand, the view and the parameters."""
    args = [out] + [operands[o.name] for o in plan.operands] + [rows, n]
    for o in plan.slices:
        args += list(slices[o.name])
    args += [f"(float)({scalars[a]})" for a in plan.scalars]
    return f"{plan.name}({', '.join(args)});"


ROUND_F16 = """/* round to IEEE half (nearest even) and back, as ggml's f16 tables read their input */
static inline float llmc_round_f16(float x) { return llmc_f16_to_f32(llmc_f32_to_f16(x)); }
"""
