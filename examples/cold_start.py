"""Cold start, measured against llama.cpp in the same run: the wall time and peak memory of
`llmc run ART -m GGUF -p Hi -n 1` and of `llama-cli -m GGUF -p Hi -n 1 -st`, `llmc.load` alone, and
the compile times docs/cold-start.md quotes (fully cold, an architecture the cache has not seen, a repeat).

    python examples/cold_start.py                        # SmolLM2 (fetched), 3 rounds, compiles timed once
    python examples/cold_start.py --rounds 5 --compile-rounds 3
    python examples/cold_start.py -m model.gguf --arch archs/gemma3.llmc --rounds 3 --omp-wait-policy PASSIVE

Rounds alternate llmc and llama-cli so that both see the same machine; medians are printed. Peak memory is
each child's maximum resident set (os.wait4), as `/usr/bin/time -v` reports it."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

LLMC = [sys.executable, "-m", "llmc.cli"]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child run; fails loudly if the child fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def compile_times(arch: str, cache: Path) -> dict[str, float]:
    """Wall seconds of: a compile with an empty cache, a compile of an architecture the cache has not seen
    (the same DSL under a new name: new model.c, kernels cached) and a repeat."""
    env = {"LLMC_CACHE": str(cache)}
    out = Path(tempfile.mkdtemp())
    times = {"fully cold": timed([*LLMC, "compile", arch, "--target", "c", "-o", str(out / "a")], env)[0]}
    unseen = out / f"unseen_{uuid.uuid4().hex[:8]}.llmc"
    unseen.write_text(Path(arch).read_text() + f"\n# {unseen.stem}\n")
    times["unseen arch"] = timed([*LLMC, "compile", str(unseen), "--target", "c", "-o", str(out / "b")], env)[0]
    times["repeat"] = timed([*LLMC, "compile", arch, "--target", "c", "-o", str(out / "c")], env)[0]
    shutil.rmtree(out)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1, fetched)")
    p.add_argument("--arch", default=str(Path(__file__).resolve().parents[1] / "archs" / "llama.llmc"))
    p.add_argument("--rounds", type=int, default=3, help="runs of each of llmc, llama-cli and llmc.load")
    p.add_argument("--compile-rounds", type=int, default=1, help="each with its own empty cache")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-c", "--ctx", type=int, default=4096)
    p.add_argument("--omp-wait-policy", help="OMP_WAIT_POLICY for llama-cli (its default spins)")
    args = p.parse_args()

    from llmc import llamacpp_tools
    from llmc.fetch import smollm2
    gguf = args.model or smollm2()
    llama_cli = llamacpp_tools.tool("llama-cli")
    omp = {"OMP_WAIT_POLICY": args.omp_wait_policy} if args.omp_wait_policy else None

    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        compiles = [compile_times(args.arch, cache / str(i)) for i in range(args.compile_rounds)]
        for what in compiles[0]:
            print(f"compile, {what:11s}: {statistics.median(c[what] for c in compiles):.2f} s wall (median)")
        artifact = Path(scratch) / "artifact"
        subprocess.run([*LLMC, "compile", args.arch, "--target", "c", "-o", str(artifact)], check=True,
                       stdout=subprocess.DEVNULL)
        load = [sys.executable, "-c", "import sys, time; t0 = time.perf_counter(); import llmc; "
                f"llmc.load(sys.argv[1], sys.argv[2], n_ctx={args.ctx}); "
                "print(time.perf_counter() - t0, file=sys.stderr)", str(artifact), gguf]
        ours, theirs, loads = [], [], []
        for _ in range(args.rounds):
            ours.append(timed([*LLMC, "run", str(artifact), "-m", gguf, "-p", "Hi", "-n", "1",
                               "-c", str(args.ctx), "-t", str(args.threads)]))
            theirs.append(timed([llama_cli, "-m", gguf, "-p", "Hi", "-n", "1", "-st", "-c", str(args.ctx),
                                 "-t", str(args.threads)], omp))
            proc = subprocess.run(load, capture_output=True, text=True, check=True)
            loads.append(float(proc.stderr.strip().splitlines()[-1]))

    def median(runs, i):
        return statistics.median(r[i] for r in runs)
    print(f"llmc run -n 1   : {median(ours, 0):.2f} s wall, peak RSS {median(ours, 1):.0f} MiB")
    print(f"llama-cli -n 1  : {median(theirs, 0):.2f} s wall, peak RSS {median(theirs, 1):.0f} MiB"
          f" (OMP_WAIT_POLICY={args.omp_wait_policy or 'default'})")
    print(f"llmc.load alone : {statistics.median(loads):.2f} s")
    print(f"ratios llmc / llama-cli: time {median(ours, 0) / median(theirs, 0):.2f}x, "
          f"RSS {median(ours, 1) / median(theirs, 1):.2f}x")


if __name__ == "__main__":
    main()
