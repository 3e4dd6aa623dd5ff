"""`llmc bench`: prefill and decode speed of an artifact, and llama.cpp's on the same file in the same run.

The comparison is llama.cpp's own `llama-bench` (llmc.llamacpp_tools) with its defaults (weight repacking
on, flash attention auto, its OpenMP build's default wait policy) and the same file, threads, prompt
length (-p), generation length (-n) and depth (-d). We measure the way llama-bench does:

- prefill (pp): the cache holds `depth` tokens (not timed), then one forward of `n_prompt` tokens;
- decode (tg): the cache holds `depth` tokens, then `n_gen` single-token forwards;

each repeated `repeats` times after one warm-up, tokens fixed random ids; we report medians (llama-bench
reports means; with its per-run samples we take their median too). Without llama-bench (no cmake), the
llama-cpp-python oracle's timing is the fallback (llmc.oracle.llama_bench: prefill then decode after it).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Speed:
    prefill_tok_s: float        # n_prompt tokens / time of one forward over them
    decode_tok_s: float         # n_gen / time of n_gen one-token forwards
    how: str                    # what measured it


def measure_llmc(model, n_prompt: int, n_gen: int, depth: int = 0, repeats: int = 5, chunk: int = 512) -> Speed:
    """Medians over `repeats` runs (after a warm-up) of a loaded llmc model (llmc.load); the depth is
    filled in forwards of `chunk` tokens (at most the model's n_batch)."""
    rng = np.random.default_rng(0)
    context = rng.integers(0, model.n_vocab, size=depth).astype(np.int32)
    prompt = rng.integers(0, model.n_vocab, size=n_prompt).astype(np.int32)
    gen = rng.integers(0, model.n_vocab, size=n_gen).astype(np.int32)
    engine = model.engine

    def at_depth() -> None:
        engine.reset()
        for start in range(0, depth, chunk):
            engine.forward(context[start:start + chunk], False)

    prefill, decode = [], []
    for _ in range(repeats + 1):                    # the first run warms caches and is dropped
        if n_prompt:
            at_depth()
            t0 = time.perf_counter()
            engine.forward(prompt, False)
            prefill.append(n_prompt / (time.perf_counter() - t0))
        if n_gen:
            at_depth()
            t0 = time.perf_counter()
            for tok in gen:
                engine.forward(np.array([tok], np.int32), False)
            decode.append(n_gen / (time.perf_counter() - t0))
    return Speed(statistics.median(prefill[1:]) if prefill else float("nan"),
                 statistics.median(decode[1:]) if decode else float("nan"),
                 f"llmc [{model.target}], medians of {repeats}")


def omp_wait_policy() -> str:
    """How llama-bench's OpenMP threads wait, as this environment leaves it."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    return f"OMP_WAIT_POLICY={policy}" if policy else "OMP_WAIT_POLICY unset (libgomp's default: spin, then sleep)"


def llama_bench(gguf: str, n_prompt: int, n_gen: int, depth: int = 0, repeats: int = 5,
                threads: int = 2) -> Speed | None:
    """llama.cpp's llama-bench on the same file (defaults otherwise), or None if it cannot be built."""
    from llmc import llamacpp_tools

    try:
        exe = llamacpp_tools.tool("llama-bench")
    except llamacpp_tools.ToolUnavailable as exc:
        print(f"llama-bench: not available ({exc}); falling back to llama-cpp-python", file=sys.stderr)
        return None
    cmd = [exe, "-m", gguf, "-t", str(threads), "-r", str(repeats), "-d", str(depth), "-o", "json",
           "-p", str(n_prompt), "-n", str(n_gen)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"llama-bench failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    results = json.loads(done.stdout)
    pp = [r for r in results if r["n_prompt"] > 0 and r["n_gen"] == 0]
    tg = [r for r in results if r["n_gen"] > 0 and r["n_prompt"] == 0]

    def median_ts(rows) -> float:
        return statistics.median(rows[0]["samples_ts"]) if rows else float("nan")

    return Speed(median_ts(pp), median_ts(tg), f"llama-bench, medians of {repeats}, {omp_wait_policy()}")


def llama_cpp_python(gguf: str, n_prompt: int, n_gen: int, repeats: int, threads: int) -> Speed | None:
    """The fallback: llama-cpp-python in a child process with the default OpenMP wait policy (the oracle
    sets PASSIVE for tests on shared cores). Decode is timed after the prompt, not at depth 0."""
    code = ("import json, sys\nfrom llmc import oracle\n"
            "try:\n    r = oracle.llama_bench(*json.loads(sys.argv[1]))\n"
            "except oracle.OracleUnavailable as exc:\n    r = {'unavailable': str(exc)}\n"
            "print(json.dumps(r))\n")
    env = {**os.environ, "OMP_WAIT_POLICY": ""}      # empty: libgomp's default, not the oracle's PASSIVE
    argv = json.dumps([gguf, n_prompt, n_gen, repeats, threads])
    proc = subprocess.run([sys.executable, "-c", code, argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"llama.cpp: not measured (it failed: {proc.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    if "unavailable" in ref:
        print(f"llama.cpp: not measured ({ref['unavailable']})", file=sys.stderr)
        return None
    return Speed(ref["prefill_tok_s"], ref["decode_tok_s"], f"llama-cpp-python, medians of {repeats}")


def run(artifact: str, gguf: str, n_prompt: int = 128, n_gen: int = 64, depth: int = 0, repeats: int = 5,
        threads: int = 2, compare: bool = True, layers: int | None = None) -> tuple[Speed, Speed | None]:
    """Measure llmc, then llama.cpp (llama-bench, else llama-cpp-python); print both and the ratios.
    An artifact for a device with a cost model (an Ascend profile's [cost] table) also gets the model's
    estimate of the device's speed, scaled to `layers` layers when given (llmc/bench_ascend.py)."""
    import llmc

    n_batch = max(n_prompt, min(depth, 512), 1)
    model = llmc.load(artifact, gguf, n_ctx=depth + max(n_prompt, n_gen) + 8, n_threads=threads, n_batch=n_batch)
    from llmc import bench_ascend
    emulated = bench_ascend.has_cost_model(model.target)
    if emulated:
        bench_ascend.report(model, artifact, gguf, n_prompt, n_gen, depth, layers, chunk=n_batch)
        compare = False     # the emulator's speed on this CPU says nothing about the chip: no ratio
    ours = measure_llmc(model, n_prompt, n_gen, depth, repeats, chunk=n_batch)
    if emulated:
        ours = dataclasses.replace(ours, how=f"{ours.how}; the emulator on this CPU, not the chip's speed")
    at = f" at depth {depth}" if depth else ""

    def figures(speed: Speed) -> str:
        parts = [f"prefill {speed.prefill_tok_s:.1f} tok/s ({n_prompt} tokens)"] if n_prompt else []
        parts += [f"decode {speed.decode_tok_s:.1f} tok/s ({n_gen} tokens)"] if n_gen else []
        return ", ".join(parts)

    print(f"llmc {threads} threads{at}: {figures(ours)} [{ours.how}]")
    if not compare:
        return ours, None
    ref = llama_bench(gguf, n_prompt, n_gen, depth, repeats, threads)
    if ref is None and not depth:
        ref = llama_cpp_python(gguf, n_prompt, n_gen, repeats, threads)
    if ref is None:
        return ours, None
    print(f"llama.cpp {threads} threads{at}: {figures(ref)} [{ref.how}]")
    ratios = [f"prefill {ours.prefill_tok_s / ref.prefill_tok_s:.2f}x"] if n_prompt else []
    ratios += [f"decode {ours.decode_tok_s / ref.decode_tok_s:.2f}x"] if n_gen else []
    print(f"ratio llmc / llama.cpp{at}: {', '.join(ratios)}")
    return ours, ref
