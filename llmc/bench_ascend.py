"""`llmc bench` on an Ascend artifact: the cost model's estimate of the chip's speed, with its assumptions.

The emulator runs the artifact's kernels on this machine (its own speed means nothing for the chip) and
logs every launch; runtime/ascendc/cost.py turns one prefill and the decode steps into seconds on the
chip of the artifact's device profile ([cost] table). A random-weight file with fewer layers than the
real model stands for it with `layers`: the launches of one layer (found as the kernel sequence that
repeats n_layer times) are counted layers - n_layer more times. The memory-bandwidth bound is the bytes
of the weights one token reads (matmul weights, only the used share of MoE experts) at the chip's
bandwidth.
"""
from __future__ import annotations

import numpy as np

from llmc.compiler.devices import ProfileError, get_profile
from llmc.runtime.artifact import read_manifest
from llmc.runtime.ascendc import cost as C
from llmc.runtime.gguf_file import GGUFFile


def has_cost_model(target: str) -> bool:
    try:
        return "cost" in get_profile(target).extra
    except ProfileError:   # not a profile name (the reference engine): no estimate
        return False


def chip_cost(target: str) -> tuple[C.ChipCost, str]:
    profile = get_profile(target)
    facts = profile.extra["cost"]
    return C.ChipCost.from_profile(target, profile.cores, facts), facts.get("source", "")


def weight_bytes(gguf_path: str, layers: int | None) -> tuple[float, int]:
    """(bytes of weights one decode token reads, the file's n_layer): every 2-D-or-more weight but the
    token embedding (a lookup), unless the file has no output.weight (tied head); MoE expert tensors
    (`*_exps`) count only their used share; blk.* tensors scaled from the file's layers to `layers`."""
    gguf = GGUFFile(gguf_path)
    meta = gguf.metadata
    n_layer = int(meta.get(f"{gguf.arch}.block_count") or 1)
    used, total = meta.get(f"{gguf.arch}.expert_used_count"), meta.get(f"{gguf.arch}.expert_count")
    per_layer = other = 0.0
    for t in gguf.tensors.values():
        if len(t.ne) < 2 or (t.name == "token_embd.weight" and "output.weight" in gguf.tensors):
            continue
        size = float(t.nbytes)
        if "_exps" in t.name and used and total:
            size *= used / total
        if t.name.startswith("blk."):
            per_layer += size / n_layer
        else:
            other += size
    return other + per_layer * (layers or n_layer), n_layer


def _step(model, log: C.CostLog, tokens: np.ndarray) -> C.Log:
    log.take()
    model.engine.forward(tokens, False)
    return log.take()


def _scaled(step: C.Log, chip: C.ChipCost, n_layer: int, layers: int | None
            ) -> tuple[float, float, C.Estimate, str]:
    """Seconds and GM bytes of one step at `layers` layers, the step's estimate as logged, and how it was
    scaled."""
    est = C.estimate(step, chip)
    if not layers or layers == n_layer:
        return est.seconds, est.gm_bytes, est, ""
    period = C.layer_period(step.launches, n_layer)
    if period is None:
        raise SystemExit(f"llmc bench: --layers needs a file of at least 2 layers to find one layer's "
                         f"launches (this one has {n_layer})")
    start, length = period
    layer = step.launches[start:start + length]
    kernels = sum(C.launch_seconds(x, chip) for x in layer)
    # the host's blocking calls from the layer's first launch to the next layer's first
    after = start + length
    end = step.launches[after].blocking_before if after < len(step.launches) else step.blocking_calls
    per_layer = kernels + (end - layer[0].blocking_before) * chip.blocking_call_us * 1e-6
    extra = layers - n_layer
    return (est.seconds + extra * per_layer, est.gm_bytes + extra * sum(x.gm_bytes for x in layer), est,
            f", scaled from {n_layer} to {layers} layers")


def report(model, artifact: str, gguf: str, n_prompt: int, n_gen: int, depth: int, layers: int | None,
           chunk: int) -> None:
    """Print the estimated decode and prefill speed of `model` (loaded from `artifact`) on its chip."""
    chip, source = chip_cost(model.target)
    log = C.CostLog(artifact, read_manifest(artifact)["library"])
    rng = np.random.default_rng(1)
    n_ids = max(depth, 0) + max(n_prompt, 1) + max(n_gen, 1) + 1
    ids = rng.integers(0, model.n_vocab, size=n_ids).astype(np.int32)
    wbytes, n_layer = weight_bytes(gguf, layers)
    scaled = f" (the file has {n_layer})" if layers and layers != n_layer else ""
    print(f"estimated on {chip.name} by the cost model (runtime/ascendc/cost.py), {layers or n_layer} layers"
          f"{scaled}:")

    def at_depth() -> None:
        model.engine.reset()
        for start in range(0, depth, chunk):
            model.engine.forward(ids[start:min(depth, start + chunk)], False)

    # Each measurement follows a warm-up of the same shape: tilings are planned and uploaded once per
    # shape (docs/ascendc.md §12), so the first step of a shape is not the steady state.
    if n_prompt:
        at_depth()
        model.engine.forward(ids[depth:depth + n_prompt], False)
        at_depth()
        step = _step(model, log, ids[depth:depth + n_prompt])
        seconds, _, est, how = _scaled(step, chip, n_layer, layers)
        print(f"  prefill {n_prompt / seconds:.1f} tok/s ({n_prompt} tokens in one step{how}; the logged "
              f"step: {est.launches} launches, {est.blocking_calls} blocking calls, "
              f"{est.gm_bytes / 1e6:.1f} MB GM)")
    if n_gen:
        at_depth()
        model.engine.forward(ids[depth:depth + 1], False)   # warm-up token; decode then runs from depth + 1
        total = traffic = 0.0
        steps = []
        for k in range(1, n_gen + 1):
            seconds, gm, est, how = _scaled(_step(model, log, ids[depth + k:depth + k + 1]), chip, n_layer,
                                            layers)
            total += seconds
            traffic += gm
            steps.append(est)
        rate, bw = n_gen / total, chip.bandwidth_gbps * 1e9
        bound, npu_bound = bw / wbytes, bw * n_gen / traffic
        print(f"  decode {rate:.1f} tok/s ({n_gen} tokens{how}; per token as logged: {steps[-1].per(1)})")
        print(f"  memory-bandwidth bound of the whole model: decode {bound:.1f} tok/s ({wbytes / 1e6:.1f} MB "
              f"of weights per token at {chip.bandwidth_gbps:.0f} GB/s); the estimate is {rate / bound:.0%} "
              "of it")
        print(f"  bound of the NPU kernels' own traffic: {npu_bound:.1f} tok/s ({traffic / n_gen / 1e6:.1f} "
              f"MB GM per token); the estimate is {rate / npu_bound:.0%} of it (work the CPU partition does, "
              "such as fallback matmuls or MoE experts, is in neither estimate)")
    print(f"  assumptions: {C.ASSUMPTIONS} (runtime/ascendc/cost.py); chip facts: {source}")
    log.take()
