"""AST -> IR graph. Resolves names, checks arity and attributes, infers symbolic shapes.

Every error is a DslError at the DSL location that caused it. Dims that depend on hyperparameters stay
symbolic here; `ir/bind.py` checks them again with a GGUF file's values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from llmc.ir import expr as X
from llmc.ir.errors import DslError, SourceLoc
from llmc.ir.graph import Carry, Graph, Param, verify
from llmc.ir.ops import DSL_OPS, SPECS, Op, ShapeError, Shape, infer_shape

from . import ast
from .parser import parse_file

TOKENS_SYMBOL = "T"            # the number of tokens in this step
LOAD_CONTEXT = "n_ctx"         # in a weight's load-time choice: the context (per sequence) it is loaded with
# names generated code gives its own meaning, so an arch may not define them
RESERVED = {"n_batch": "the most tokens one forward call carries, which the memory plan sizes buffers by"}
_GGUF_NAME = re.compile(r"^[A-Za-z0-9_.\-{}]+$")
_SUGAR = {"linear": "matmul (+ bias): linear(x, w) or linear(x, w, b)"}
ROPE_MODES = {"norm": 0, "neox": 2}
_LIST_ATTRS = {(Op.RESHAPE, "shape"), (Op.SPLIT, "sizes")}       # attributes written as [d0, d1, ...]
# a param's sources: a metadata key, a metadata key of per-layer flags read as their period, a tensor dim
_PARAM_SOURCES = ("meta", "meta_period", "ne")


@dataclass(frozen=True)
class Tensor:
    nid: int
    shape: Shape
    optional: bool = False     # an optional weight: may be absent from the GGUF file


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


class Elaborator:
    def __init__(self, module: ast.Module):
        self.module = module
        self.graph = Graph(arch=module.arch, source=module.file)
        self.scope: dict[str, Tensor | X.Expr] = {TOKENS_SYMBOL: X.Name(TOKENS_SYMBOL)}
        self.region = "pre"
        self.positions: int | None = None
        self.weight_names: dict[str, Tensor] = {}

    # ---- entry ----------------------------------------------------------------------------------------
    def run(self) -> Graph:
        seen_layer = False
        for item in self.module.items:
            if isinstance(item, ast.LayerBlock):
                if seen_layer:
                    raise DslError("only one layer block is allowed", item.loc)
                seen_layer = True
                self.layer(item)
            else:
                self.item(item)
        if "logits" not in self.graph.outputs:
            raise DslError("the architecture must declare `output logits = ...`",
                           SourceLoc(self.module.file, 1, 1))
        verify(self.graph)
        return self.graph

    def item(self, item) -> None:
        if isinstance(item, ast.ParamDecl):
            self.param(item)
        elif isinstance(item, ast.WeightDecl):
            self.weight(item)
        elif isinstance(item, ast.InputDecl):
            if item.name != "tokens":
                raise DslError(f"unknown input {item.name!r}; the only model input is `tokens`", item.loc)
            self._bind(item.name, Tensor(self.graph.add(Op.TOKENS, [], (X.Name(TOKENS_SYMBOL),), "i32",
                                                         loc=item.loc, region=self.region, label="tokens"),
                                         (X.Name(TOKENS_SYMBOL),)), item.loc)
        elif isinstance(item, ast.Assign):
            if not self._is_tensor(item.value):          # a number, e.g. a per-layer choice
                self.scope[item.name] = self.scalar(item.value)
                return
            value = self.tensor(item.value)
            self.scope[item.name] = value
            self._label(value.nid, item.name)
        elif isinstance(item, ast.OutputDecl):
            if self.region == "layer":
                raise DslError("outputs are declared after the layer block", item.loc)
            self.graph.outputs[item.name] = self.tensor(item.value).nid
        elif isinstance(item, ast.LayerBlock):
            raise DslError("layer blocks do not nest", item.loc)

    def _bind(self, name: str, value, loc: SourceLoc) -> None:
        if name in RESERVED:
            raise DslError(f"{name!r} is reserved: {RESERVED[name]}; choose another name", loc)
        if name in self.scope:
            raise DslError(f"{name!r} is already defined", loc)
        self.scope[name] = value

    def _label(self, nid: int, name: str) -> None:
        node = self.graph.node(nid)
        if not node.label:
            self.graph.update(nid, label=name)

    # ---- declarations ---------------------------------------------------------------------------------
    def param(self, decl: ast.ParamDecl) -> None:
        value = decl.value
        if isinstance(value, ast.ECall) and value.func in _PARAM_SOURCES:
            param = self._param_call(decl.name, value)
        else:
            param = Param(decl.name, decl.loc, expr=self.scalar(value))
        self.graph.params[decl.name] = param
        self._bind(decl.name, X.Name(decl.name), decl.loc)

    def _param_call(self, name: str, call: ast.ECall) -> Param:
        if call.kwargs:
            raise DslError(f"{call.func}() takes positional arguments only", call.kwargs[0].loc)
        if call.func in ("meta", "meta_period"):
            if not 1 <= len(call.args) <= 2 or not isinstance(call.args[0], ast.EStr):
                raise DslError(f'{call.func}() takes a GGUF key string and an optional default: '
                               f'{call.func}("key", 1)', call.loc)
            default = self.scalar(call.args[1]) if len(call.args) == 2 else None
            return Param(name, call.loc, meta_key=call.args[0].value, default=default,
                         flags_as_period=call.func == "meta_period")
        if len(call.args) != 2 or not isinstance(call.args[0], ast.EStr) or not isinstance(call.args[1], ast.ENum):
            raise DslError('ne() takes a GGUF tensor name and an axis: ne("token_embd.weight", 1)', call.loc)
        return Param(name, call.loc, tensor_dim=(call.args[0].value, int(call.args[1].value)))

    def weight(self, decl: ast.WeightDecl) -> None:
        self._check_gguf_name(decl.gguf_name, decl.gguf_loc)
        shape = tuple(self.scalar(d) for d in decl.shape)
        attrs = {"gguf": decl.gguf_name, "optional": decl.optional}
        if decl.choice is not None:
            self._check_gguf_name(decl.choice.then, decl.choice.then_loc)
            attrs["gguf_if"] = self._load_time_test(decl.choice.test)
            attrs["gguf_then"] = decl.choice.then
        if decl.fallback is not None:
            fb = self.weight_names.get(decl.fallback)
            if fb is None:
                raise DslError(f"fallback {decl.fallback!r} is not a weight declared earlier", decl.loc)
            if fb.shape != shape:
                raise DslError(f"fallback {decl.fallback!r} has shape {_fmt_shape(fb.shape)}, "
                               f"{decl.name!r} is declared {_fmt_shape(shape)}", decl.loc)
            attrs["fallback"] = fb.nid
        nid = self.graph.add(Op.WEIGHT, [], shape, "weight", attrs, decl.loc, self.region, decl.name)
        tensor = Tensor(nid, shape, optional=decl.optional)
        self._bind(decl.name, tensor, decl.loc)
        self.weight_names[decl.name] = tensor

    def _check_gguf_name(self, name: str, loc: SourceLoc) -> None:
        if not _GGUF_NAME.match(name):
            raise DslError(f"GGUF tensor name {name!r} may hold only letters, digits, '_', '.', "
                           "'-' and {placeholders}", loc)
        allowed = {"arch"} | ({self.graph.layer_var} if self.region == "layer" else set())
        for ph in re.findall(r"{([^}]*)}", name):
            if ph not in allowed:
                raise DslError(f"unknown placeholder {{{ph}}} in tensor name; allowed here: "
                               f"{', '.join('{' + a + '}' for a in sorted(allowed))}", loc)

    def _load_time_test(self, test) -> X.Expr:
        """The condition of a weight's choice: hyperparameters and n_ctx, which only it can read."""
        if LOAD_CONTEXT in self.scope:
            raise DslError(f"a weight's choice reads {LOAD_CONTEXT!r} as the load-time context; a parameter "
                           f"of that name hides it", test.loc)
        self.scope[LOAD_CONTEXT] = X.Name(LOAD_CONTEXT)
        try:
            return self.scalar(test)
        finally:
            del self.scope[LOAD_CONTEXT]

    def layer(self, block: ast.LayerBlock) -> None:
        count = self.scalar(block.count)
        self.graph.layer_count = count
        self.graph.layer_var = block.var
        outer = dict(self.scope)
        self.region = "layer"
        self.scope[block.var] = X.Name(block.var)
        assigned = [it.name for it in block.items if isinstance(it, ast.Assign)]
        loop_ins = {}
        for name in dict.fromkeys(assigned):
            value = outer.get(name)
            if isinstance(value, Tensor) and not value.optional:
                nid = self.graph.add(Op.LOOP_IN, [], value.shape, attrs={"var": name}, loc=block.loc,
                                     region="layer", label=name)
                loop_ins[name] = (nid, value)
                self.scope[name] = Tensor(nid, value.shape)
        for item in block.items:
            self.item(item)
        inner = self.scope
        self.scope = outer
        for name, (nid, init) in loop_ins.items():
            nxt = inner[name]
            if nxt.shape != init.shape:
                raise DslError(f"{name!r} enters the layer block as {_fmt_shape(init.shape)} and leaves it as "
                               f"{_fmt_shape(nxt.shape)}; a carried value must keep its shape", block.loc)
            self.graph.carried.append(Carry(name, nid, init.nid, nxt.nid))
            self.scope[name] = Tensor(nxt.nid, nxt.shape)
        self.region = "post"

    # ---- expressions ----------------------------------------------------------------------------------
    def scalar(self, e) -> X.Expr:
        if isinstance(e, ast.ENum):
            return X.Num(e.value)
        if isinstance(e, ast.EStr):
            return X.Num(e.value)
        if isinstance(e, ast.EName):
            value = self.scope.get(e.id)
            if value is None:
                raise DslError(self._unknown_name(e.id), e.loc)
            if isinstance(value, Tensor):
                raise DslError(f"{e.id!r} is a tensor; a number is needed here", e.loc)
            return value
        if isinstance(e, ast.EBin):
            return X.BinOp(e.op, self.scalar(e.left), self.scalar(e.right))
        if isinstance(e, ast.ENeg):
            return X.Neg(self.scalar(e.operand))
        if isinstance(e, ast.EIf):
            return X.Cond(self.scalar(e.test), self.scalar(e.then), self.scalar(e.otherwise))
        if isinstance(e, ast.ECall):
            if e.func in _PARAM_SOURCES:
                raise DslError(f"{e.func}() may only stand alone on the right of a `param`", e.loc)
            if e.func not in X.FUNCTIONS:
                raise DslError(f"unknown function {e.func!r} in a number; known: "
                               f"{', '.join(sorted(X.FUNCTIONS))}", e.loc)
            return X.Call(e.func, tuple(self.scalar(a) for a in e.args))
        raise DslError("a list is not a number", e.loc)

    def _unknown_name(self, name: str) -> str:
        known = sorted(k for k, v in self.scope.items() if not isinstance(v, Tensor))
        return f"unknown name {name!r}" + (f" (hyperparameters: {', '.join(known)})" if known else "")

    def _is_tensor(self, e) -> bool:
        if isinstance(e, ast.EName):
            return isinstance(self.scope.get(e.id), Tensor)
        if isinstance(e, ast.ECall):        # an unknown function is reported as an unknown op
            return e.func not in X.FUNCTIONS and e.func not in _PARAM_SOURCES
        if isinstance(e, ast.EBin):
            return self._is_tensor(e.left) or self._is_tensor(e.right)
        return False

    def tensor(self, e) -> Tensor:
        if isinstance(e, ast.EName):
            value = self.scope.get(e.id)
            if value is None:
                raise DslError(f"unknown name {e.id!r}", e.loc)
            if not isinstance(value, Tensor):
                raise DslError(f"{e.id!r} is a number; a tensor is needed here", e.loc)
            return value
        if isinstance(e, ast.EBin):
            return self._arith(e)
        if isinstance(e, ast.ECall):
            return self.call(e)
        raise DslError("a tensor is needed here", e.loc)

    def _arith(self, e: ast.EBin) -> Tensor:
        lt, rt = self._is_tensor(e.left), self._is_tensor(e.right)
        if lt and rt and e.op in "+*":
            op = Op.ADD if e.op == "+" else Op.MUL
            return self._node(op, [self.tensor(e.left), self.tensor(e.right)], {}, e.loc)
        if lt and not rt and e.op in "+-*/":
            s = self.scalar(e.right)
            attrs = {"+": {"bias": s}, "-": {"bias": X.Neg(s)}, "*": {"scale": s},
                     "/": {"scale": X.BinOp("/", X.Num(1.0), s)}}[e.op]
            return self._node(Op.SCALE, [self.tensor(e.left)], self._scale_attrs(attrs), e.loc)
        if rt and not lt and e.op in "+*":
            s = self.scalar(e.left)
            attrs = {"bias" if e.op == "+" else "scale": s}
            return self._node(Op.SCALE, [self.tensor(e.right)], self._scale_attrs(attrs), e.loc)
        raise DslError(f"operator {e.op!r} is not defined between these operands", e.loc)

    @staticmethod
    def _scale_attrs(attrs: dict) -> dict:
        """A scale node carries both attributes (x * scale + bias), as kernels read both."""
        return {"scale": X.Num(1.0), "bias": X.Num(0.0), **attrs}

    def call(self, e: ast.ECall) -> Tensor:
        if e.func == "linear":
            if not 2 <= len(e.args) <= 3 or e.kwargs:
                raise DslError(f"linear takes 2 or 3 tensors (x, w[, bias]), got {len(e.args)}", e.loc)
            x, w = self.tensor(e.args[0]), self.tensor(e.args[1])
            y = self._node(Op.MATMUL, [x, w, None], {}, e.loc)
            if len(e.args) == 3:
                y = self._node(Op.ADD, [y, self.tensor(e.args[2])], {}, e.loc)
            return y
        op = DSL_OPS.get(e.func)
        if op is None:
            if e.func in X.FUNCTIONS:
                raise DslError(f"{e.func}() computes a number, not a tensor", e.loc)
            known = ", ".join(sorted(list(DSL_OPS) + list(_SUGAR)))
            raise DslError(f"unknown op {e.func!r}; known ops: {known}", e.loc)
        spec = SPECS[op]
        input_names = [n.rstrip("?") for n in spec.inputs]
        if len(e.args) > len(spec.inputs):
            raise DslError(f"{e.func} takes {self._arity(spec)} tensor input{'s' if len(spec.inputs) > 1 else ''}"
                           f" ({', '.join(spec.inputs)}), got {len(e.args)}", e.loc)
        inputs: list[Tensor | None] = [self.tensor(a) for a in e.args] + [None] * (len(spec.inputs) - len(e.args))
        attrs: dict[str, X.Expr] = {}
        for kw in e.kwargs:
            if kw.name in input_names:
                inputs[input_names.index(kw.name)] = self.tensor(kw.value)
            elif kw.name in spec.attrs:
                attrs[kw.name] = self._attr(op, kw)
            else:
                known = ", ".join(list(spec.attrs) + input_names) or "none"
                raise DslError(f"{e.func} has no argument {kw.name!r}; it takes: {known}", kw.loc)
        for k, name in enumerate(spec.inputs):
            if inputs[k] is None and not name.endswith("?"):
                raise DslError(f"{e.func} takes {self._arity(spec)} tensor inputs ({', '.join(spec.inputs)}), "
                               f"got {sum(1 for t in inputs if t is not None)}", e.loc)
        for name, default in spec.attrs.items():
            if name not in attrs:
                if default is None:
                    raise DslError(f"{e.func} needs the argument {name}=...", e.loc)
                attrs[name] = X.Num(default)
        return self._node(op, inputs, attrs, e.loc)

    @staticmethod
    def _arity(spec) -> str:
        lo, hi = spec.min_inputs, len(spec.inputs)
        return str(lo) if lo == hi else f"{lo} to {hi}"

    def _attr(self, op: Op, kw: ast.KwArg):
        if (op, kw.name) in _LIST_ATTRS:
            if not isinstance(kw.value, ast.EList):
                raise DslError(f"{op.value} needs {kw.name}=[d0, d1, ...]", kw.loc)
            return tuple(self.scalar(d) for d in kw.value.items)
        if op is Op.ROPE and kw.name == "mode":
            if not isinstance(kw.value, ast.EName) or kw.value.id not in ROPE_MODES:
                raise DslError(f"rope mode must be one of: {', '.join(ROPE_MODES)}", kw.value.loc)
            return X.Num(kw.value.id)
        return self.scalar(kw.value)

    def _node(self, op: Op, inputs: list[Tensor | None], attrs: dict, loc: SourceLoc) -> Tensor:
        spec = SPECS[op]
        for k, t in enumerate(inputs):
            if t is not None and t.optional and not spec.inputs[k].endswith("?") and op is not Op.ADD:
                raise DslError(f"an optional weight can only be a bias (linear, add, moe_matmul), "
                               f"attention sinks or rope freq_factors; {op.value} needs input {spec.inputs[k]!r} present", loc)
        shapes = [t.shape if t is not None else None for t in inputs]
        try:
            shape = infer_shape(op, shapes, attrs, {})
        except ShapeError as exc:
            raise DslError(f"shape mismatch: {exc}", loc) from None
        dtype = "i32" if op is Op.TOPK else "f32"
        nid = self.graph.add(op, [t.nid if t is not None else None for t in inputs], shape, dtype, attrs, loc,
                             self.region)
        return Tensor(nid, shape)

    def positions_node(self) -> int:
        if self.positions is None:
            self.positions = self.graph.add(Op.POSITIONS, [], (X.Name(TOKENS_SYMBOL),), "i32", region="pre",
                                            label="positions")
        return self.positions


def elaborate(module: ast.Module) -> Graph:
    elab = Elaborator(module)
    # `positions` is a builtin tensor: the absolute position of each token of this step.
    elab.scope["positions"] = Tensor(elab.positions_node(), (X.Name(TOKENS_SYMBOL),))
    return elab.run()


def load_arch(path: str) -> Graph:
    """Parse and elaborate an architecture file."""
    return elaborate(parse_file(path))
