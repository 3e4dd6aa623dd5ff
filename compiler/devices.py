"""Device profiles: what each device runs natively, its memory and layout facts, as data.

One TOML file per device in `compiler/devices/` (cpu, opencl, adreno, ascend310b, ...). Every fact carries
a `source` note. Passes ask a profile `supports(node, weight_types)` and get (bool, reason) back; no pass
ever tests a device's name. A malformed profile is an LlmcError naming the file and the key.

Profile schema (every table may hold `source = "..."`):

    name, description, codegen ("c" | "opencl" | "ascendc"), fallback (a profile name, or "" for the cpu),
    pointwise (true: the backend generates every elementwise and row op of ir/pointwise.py from its
               definition, so they are native unless an [ops.<op>] table says otherwise)
    [memory]   bytes ("8GiB", or "host" for this machine's RAM), alignment, verified, shared_with_fallback
    [compute]  cores, vector_bytes, ub_bytes, npu_arch, has_data_copy_pad, has_shift
    [weights]  unsupported = "fallback" | "refuse", message (shown when a weight type is not supported)
    [cost]     facts of the accelerator cost model (runtime/ascendc/cost.py ChipCost): clock_mhz,
               gm_bytes_per_cycle, memory_gbps, launch_us, blocking_call_us, sync_cycles
    [ops.<op>] native (default true), weights = [types the op's weight input may have],
               dim_multiple_of (the last dim of the first input must divide by it),
               refuse_inputs = [optional inputs that make the op unsupported when present],
               reason (why not native / what the limit is), refuse_reason
Any other op with no [ops.<op>] table is not native on that device.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
from llmc.ir.bind import SUPPORTED_WEIGHT_TYPES
from llmc.ir.errors import LlmcError
from llmc.ir.expr import try_eval
from llmc.ir.graph import Node
from llmc.ir.ops import LEAVES, POINTWISE, SPECS, Op

DEVICES_DIR = Path(__file__).with_name("devices")
CODEGEN_KINDS = ("c", "opencl", "ascendc")
TARGET_ALIASES = {"c": "cpu"}  # `--target c` has always meant the CPU
# The input of each op that is a weight whose GGUF type decides support.
WEIGHT_INPUT = {Op.EMBED: 0, Op.MATMUL: 1, Op.MOE_MATMUL: 1}
# Ops a profile never lists: leaves are placed with their users, transfers by insert_transfers.
UNPLACED = LEAVES | {Op.RESHAPE, Op.TRANSFER}


class ProfileError(LlmcError):
    """A device profile file is malformed, or a target names no profile."""


@dataclass(frozen=True)
class OpRule:
    native: bool = True
    weights: tuple[str, ...] | None = None  # None: any weight type
    dim_multiple_of: int = 1
    refuse_inputs: tuple[str, ...] = ()
    reason: str = ""
    refuse_reason: str = ""
    source: str = ""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    codegen: str
    fallback: str  # "" for the device of last resort (the cpu)
    memory_bytes: int
    alignment: int
    memory_verified: bool
    shared_with_fallback: bool  # one memory pool with the fallback device (a board's RAM)
    cores: int
    vector_bytes: int
    ub_bytes: int
    ops: Mapping[Op, OpRule]
    unsupported_weight: str  # "fallback" or "refuse"
    weight_message: str
    path: str
    extra: Mapping[str, Any] = field(default_factory=dict)  # npu_arch, has_shift, ...
    pointwise: bool = False  # the backend generates every op of ir/pointwise.py (and fused chains of them)
    sources: Mapping[str, str] = field(default_factory=dict)  # table -> source note

    def supports(
        self,
        node: Node,
        weight_types: Iterable[str] | None = None,
        *,
        inputs: Iterable[str] = (),
        env: Mapping[str, Any] | None = None,
    ) -> tuple[bool, str]:
        """Whether this device runs `node` natively, and why not (or the condition it relied on).

        weight_types: the GGUF types of the op's weight input (all layers), None when no file is known.
        inputs: names of the optional inputs that are present. env: hyperparameter values, if known.
        """
        if node.op in UNPLACED:
            return True, ""
        rule = self.ops.get(node.op)
        if rule is None:
            return False, f"{node.op.value} is not in the {self.name} profile"
        present = set(inputs)
        for name in rule.refuse_inputs:
            if name in present:
                return (
                    False,
                    rule.refuse_reason or f"{node.op.value} with {name} is not supported on {self.name}",
                )
        if not rule.native:
            return False, rule.reason or f"{node.op.value} is not native on {self.name}"
        if rule.weights is not None and node.op in WEIGHT_INPUT:
            if weight_types is None:
                return True, f"assumed: weights must be {'/'.join(rule.weights)} (no GGUF file given)"
            bad = sorted(set(weight_types) - set(rule.weights))
            if bad:
                allowed = "/".join(rule.weights)
                why = f"{node.op.value} on {self.name} takes {allowed} weights, not {'/'.join(bad)}"
                return False, f"{why}; {self.weight_message}" if self.weight_message else why
        if rule.dim_multiple_of > 1:
            last = node.shape[-1]
            value = try_eval(last, env or {})
            why = f"{node.op.value} on {self.name} needs the last dim ({last}) % {rule.dim_multiple_of} == 0"
            if value is None:
                return False, f"{why}, unknown without a GGUF file"
            if int(value) % rule.dim_multiple_of:
                return False, f"{why}, it is {value}"
        return True, ""


# ---- loading --------------------------------------------------------------------------------------------

_TOP = {"name", "description", "codegen", "fallback", "source", "memory", "compute", "weights", "ops",
        "pointwise", "cost"}
_COST = {"clock_mhz", "gm_bytes_per_cycle", "memory_gbps", "launch_us", "blocking_call_us", "sync_cycles", "source"}
_MEMORY = {"bytes", "alignment", "verified", "shared_with_fallback", "source"}
_COMPUTE = {"cores", "vector_bytes", "ub_bytes", "npu_arch", "has_data_copy_pad", "has_shift", "source"}
_WEIGHTS = {"unsupported", "message", "source"}
_RULE = {"native", "weights", "dim_multiple_of", "refuse_inputs", "reason", "refuse_reason", "source"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str | int, what: str = "") -> int:
    """'8GiB', '512MB', '1024' -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise LlmcError(f"{what + ': ' if what else ''}{text!r} is not a size such as 8GiB, 512MiB or 4096")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class _Reader:
    """Typed access to one TOML table; every error names the file and the dotted key."""

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str, allowed: set[str]):
        self.path, self.table, self.prefix = path, table, prefix
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ProfileError(
                f"{path}: unknown key {self._key(unknown[0])!r}; allowed here: {', '.join(sorted(allowed))}"
            )

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, message: str) -> ProfileError:
        return ProfileError(f"{self.path}: {self._key(key)}: {message}")

    def get(self, key: str, kind: type | tuple, default: Any = ..., required: bool = False):
        if key not in self.table:
            if required or default is ...:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else (kind,))
        ):
            raise self.fail(key, f"expected {_kind(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {_kind(kind)}, got {value!r}")
        return value

    def sub(self, key: str, allowed: set[str]) -> _Reader:
        table = self.get(key, dict, {})
        return _Reader(self.path, table, f"{self._key(key)}.", allowed)


def _kind(kind) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    top = _Reader(path, data, "", _TOP)
    name = top.get("name", str, required=True)
    if name != path.stem:
        raise top.fail("name", f"{name!r} must match the file name {path.stem!r}")
    codegen = top.get("codegen", str, required=True)
    if codegen not in CODEGEN_KINDS:
        raise top.fail("codegen", f"unknown codegen target {codegen!r}; known: {', '.join(CODEGEN_KINDS)}")
    mem = top.sub("memory", _MEMORY)
    size = mem.get("bytes", (str, int), required=True)
    try:
        memory = host_memory_bytes() if size == "host" else parse_size(size)
    except LlmcError as exc:
        raise mem.fail("bytes", exc.message) from None
    alignment = mem.get("alignment", int, required=True)
    if alignment < 1 or alignment & (alignment - 1):
        raise mem.fail("alignment", f"{alignment} is not a power of two")
    comp = top.sub("compute", _COMPUTE)
    weights = top.sub("weights", _WEIGHTS)
    policy = weights.get("unsupported", str, "fallback")
    if policy not in ("fallback", "refuse"):
        raise weights.fail("unsupported", f'{policy!r}; expected "fallback" or "refuse"')
    ops_table = top.get("ops", dict, {})
    ops: dict[Op, OpRule] = {}
    by_value = {op.value: op for op in Op}
    for op_name, rule_table in ops_table.items():
        op = by_value.get(op_name)
        if op is None or op in UNPLACED:
            placeable = sorted(o.value for o in Op if o not in UNPLACED)
            raise ProfileError(f"{path}: ops.{op_name}: unknown op; known: {', '.join(placeable)}")
        if not isinstance(rule_table, dict):
            raise ProfileError(f"{path}: ops.{op_name}: expected a table")
        ops[op] = _rule(_Reader(path, rule_table, f"ops.{op_name}.", _RULE), op)
    pointwise = top.get("pointwise", bool, False)
    if pointwise:
        generated = OpRule(source="generated from its definition in ir/pointwise.py")
        ops = {**{op: generated for op in sorted(POINTWISE, key=lambda o: o.value)}, **ops}
    extra = {k: comp.table[k] for k in ("npu_arch", "has_data_copy_pad", "has_shift") if k in comp.table}
    cost = data.get("cost")
    if cost is not None:
        if not isinstance(cost, dict):
            raise ProfileError(f"{path}: cost: expected a table")
        unknown = sorted(set(cost) - _COST)
        if unknown:
            raise ProfileError(f"{path}: cost: unknown key {unknown[0]!r}; known: {', '.join(sorted(_COST))}")
        for key, value in cost.items():
            if key != "source" and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ProfileError(f"{path}: cost.{key}: expected a positive number, got {value!r}")
        extra["cost"] = dict(cost)
    sources = {
        k: data[k]["source"]
        for k in ("memory", "compute", "weights", "cost")
        if isinstance(data.get(k), dict) and "source" in data[k]
    }
    return DeviceProfile(
        name=name,
        description=top.get("description", str, ""),
        codegen=codegen,
        fallback=top.get("fallback", str, ""),
        memory_bytes=memory,
        alignment=alignment,
        memory_verified=mem.get("verified", bool, True),
        shared_with_fallback=mem.get("shared_with_fallback", bool, False),
        cores=comp.get("cores", int, 1),
        vector_bytes=comp.get("vector_bytes", int, 0),
        ub_bytes=comp.get("ub_bytes", int, 0),
        ops=ops,
        unsupported_weight=policy,
        weight_message=weights.get("message", str, ""),
        path=str(path),
        extra=extra,
        sources=sources,
        pointwise=pointwise,
    )


def _rule(r: _Reader, op: Op) -> OpRule:
    kinds = r.get("weights", list, None)
    if kinds is not None:
        if op not in WEIGHT_INPUT:
            raise r.fail("weights", f"{op.value} has no weight input")
        for k in kinds:
            if k not in SUPPORTED_WEIGHT_TYPES:
                raise r.fail(
                    "weights", f"unknown weight type {k!r}; known: {', '.join(SUPPORTED_WEIGHT_TYPES)}"
                )
    refuse = r.get("refuse_inputs", list, [])
    names = [n.rstrip("?") for n in SPECS[op].inputs]
    for name in refuse:
        if name not in names:
            raise r.fail("refuse_inputs", f"{op.value} has no input {name!r}; its inputs: {', '.join(names)}")
    multiple = r.get("dim_multiple_of", int, 1)
    if multiple < 1:
        raise r.fail("dim_multiple_of", "must be at least 1")
    return OpRule(
        native=r.get("native", bool, True),
        weights=tuple(kinds) if kinds is not None else None,
        dim_multiple_of=multiple,
        refuse_inputs=tuple(refuse),
        reason=r.get("reason", str, ""),
        refuse_reason=r.get("refuse_reason", str, ""),
        source=r.get("source", str, ""),
    )


def list_profiles(directory: str | os.PathLike = DEVICES_DIR) -> dict[str, DeviceProfile]:
    """Every profile in the directory, by name; fallbacks checked to name a profile that exists."""
    profiles = {p.stem: load_profile(p) for p in sorted(Path(directory).glob("*.toml"))}
    for prof in profiles.values():
        if prof.fallback and prof.fallback not in profiles:
            raise ProfileError(
                f"{prof.path}: fallback: no profile named {prof.fallback!r}; known: {', '.join(profiles)}"
            )
        if prof.fallback == prof.name:
            raise ProfileError(f"{prof.path}: fallback: a device cannot fall back to itself")
    return profiles


def get_profile(target: str, directory: str | os.PathLike = DEVICES_DIR) -> DeviceProfile:
    """The profile a `--target` names (`c` is the cpu); an unknown name lists the known ones."""
    profiles = list_profiles(directory)
    name = TARGET_ALIASES.get(target, target)
    if name not in profiles:
        raise ProfileError(
            f"unknown target {target!r}; known targets: "
            f"{', '.join(sorted(profiles) + sorted(TARGET_ALIASES))}"
        )
    return profiles[name]
