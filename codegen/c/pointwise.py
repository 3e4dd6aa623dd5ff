"""C kernels of pointwise ops and fused chains: prints a plan of codegen/core/pointwise.py.

One static function per plan, written into the model's own C file; a row's reductions run in double or
float as the plan says, then one loop writes the row. Kernels are single-threaded: they read and write
each activation once, which costs little next to the matmuls.
"""
from __future__ import annotations

from llmc.codegen.core.pointwise import KernelPlan, Operand, Printer, literal, lower
from llmc.ir import pointwise as P
from llmc.ir.pointwise import E

_READ = {"elem": "{p}[r * n + c]", "col": "{p}[c]", "row": "{p}[r]", "scalar": "{p}[0]",
         "slice": "{p}[r * {p}_stride + {p}_offset + c]"}


def _read(o: Operand) -> str:
    value = _READ[o.layout].format(p=o.name)
    if o.absent is not None:
        return f"({o.name} ? {value} : {literal(o.absent)})"
    return value


def parameters(plan: KernelPlan) -> list[str]:
    params = [f"float *{y}" for y in plan.outputs] + [f"const float *{o.name}" for o in plan.operands]
    params += ["long rows", "long n"]
    params += [f"long {o.name}_stride, long {o.name}_offset" for o in plan.slices]
    return params + [f"float {a}" for a in plan.scalars]


class _TablePrinter(Printer):
    """C's printer: an f16_table node is a look-up, indexed by the f16 bits of its argument."""
    def __call__(self, e: E) -> str:
        if e.kind == "f16_table":
            return f"{table_name(e)}[llmc_f32_to_f16({self(e.args[0])})]"
        return super().__call__(e)


def table_name(e: E) -> str:
    return f"llmc_{e.value[0]}_f16_table"


def tables_of(plan: KernelPlan) -> list[E]:
    """The f16_table nodes a kernel looks up, one per table."""
    found = {table_name(n): n for e in (*plan.outs, *(st.expr for st in plan.stages))
             for n in P.walk(e) if n.kind == "f16_table"}
    return list(found.values())


def table(node: E) -> str:
    """The C source of one table: its entry function, printed from the body of the f16_table node (the
    same tree the reference evaluates), the 65536 values it takes on every f16, and the once-guarded
    fill (threads may run the first model, or two models, at once)."""
    name, body = node.value
    t = table_name(node)
    entry = Printer(lower(f"{t}_entry", body, {P.TABLE_ARG.value: "elem"}), lambda o: o.name)
    entry.round_f16 = "llmc_round_f16"
    return "\n".join([
        "#include <pthread.h>",
        f"/* {name} of every f16 value h, indexed by h's bits; generated from its definition in ir/pointwise.py */",
        f"static float {t}[65536];",
        f"static pthread_once_t {t}_once = PTHREAD_ONCE_INIT;",
        f"static float {t}_entry(float h) {{ return {entry(body)}; }}",
        f"static void {t}_fill(void) {{ for (int i = 0; i < 65536; i++) {t}[i] = {t}_entry(llmc_f16_to_f32((uint16_t)i)); }}",
        ""])


def function(plan: KernelPlan) -> str:
    """The C definition of the kernel (the tables it looks up, `table`, are defined before it)."""
    pr = _TablePrinter(plan, _read)
    pr.round_f16 = "llmc_round_f16"
    body = [f"    pthread_once(&{table_name(t)}_once, {table_name(t)}_fill);" for t in tables_of(plan)]
    body += ["    for (long r = 0; r < rows; r++) {"]
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
    body += stores(plan, pr, "        ", "r" if plan.per_row_out else "r * n + c",
                   None if plan.per_row_out else "for (long c = 0; c < n; c++)")
    body.append("    }")
    doc = ["/* " + plan.doc[0]] + [" * " + line for line in plan.doc[1:]] if plan.doc else ["/*"]
    doc[-1] += " */"
    return "\n".join(doc + [f"static void {plan.name}({', '.join(parameters(plan))})", "{", *body, "}", ""])


def stores(plan: KernelPlan, pr, indent: str, index: str, loop: str | None) -> list[str]:
    """Write every output; several outputs are all computed before any is stored, so an output may share
    its buffer with an input read at the same index. C and OpenCL C alike (codegen/opencl/pointwise.py)."""
    if len(plan.outs) == 1:
        store = f"{plan.outputs[0]}[{index}] = {pr(plan.outs[0])};"
        return [indent + (f"{loop} {store}" if loop else store)]
    inner = [f"const float v{k} = {pr(e)};" for k, e in enumerate(plan.outs)]
    inner += [f"{y}[{index}] = v{k};" for k, y in enumerate(plan.outputs)]
    if not loop:
        return [indent + line for line in inner]
    return [indent + loop + " {", *[indent + "    " + line for line in inner], indent + "}"]


def call(plan: KernelPlan, out: str | list[str], operands: dict[str, str], rows: str, n: str,
         slices: dict[str, tuple[str, str]], scalars: dict[str, str]) -> str:
    """One call of the kernel: C expressions of the output, each operand, the view and the parameters."""
    args = ([out] if isinstance(out, str) else list(out)) + [operands[o.name] for o in plan.operands] + [rows, n]
    for o in plan.slices:
        args += list(slices[o.name])
    args += [f"(float)({scalars[a]})" for a in plan.scalars]
    return f"{plan.name}({', '.join(args)});"


ROUND_F16 = """/* round to IEEE half (nearest even) and back, as ggml's f16 tables read their input */
static inline float llmc_round_f16(float x) { return llmc_f16_to_f32(llmc_f32_to_f16(x)); }
"""
