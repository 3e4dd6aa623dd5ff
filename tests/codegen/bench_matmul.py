"""Time the C matmul kernels at SmolLM2-135M shapes (not collected by pytest).

    python tests/codegen/bench_matmul.py [--types Q4_1,Q8_0] [--tokens 1,64]

For each (type, n_in → n_out, tokens, threads) prints µs per call and GB/s of weight bytes read.
"cpu" is the same from the caller's thread CPU time: on a shared machine, where other processes
take the cores, wall time is noisy and the 1-thread cpu figure is the kernel's own speed.
"hot" repeats one matrix (it sits in L2/L3, so this is the kernel's compute ceiling); "stream"
cycles through copies totalling > 256 MB, as a forward pass streams every layer's weights from
DRAM once per token. The timing loop is C (bench_loop below) so Python overhead is not counted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen.test_c_matmul import NATIVE_FLAGS, RUNTIME_C, build_matmul_library, random_weight
from llmc.codegen.c.matmul import MATMUL_TYPES, function_name, matmul_scratch_bytes
from llmc.ir.quant import row_bytes

BENCH_C = r"""
#include <time.h>
#include "llmc_threads.h"

typedef void (*mm_fn)(llmc_threads *, float *, const void *, const float *, int, int, int, void *);

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Wall seconds per call, calling fn iters times with weight copy i % n_copies on call i;
 * *cpu gets the calling thread's CPU seconds per call (excludes time descheduled). */
double bench_loop(mm_fn fn, llmc_threads *th, float *y, const unsigned char *w, long w_bytes, int n_copies,
                  const float *x, int n_in, int n_out, int n_tokens, void *scratch, int iters, double *cpu) {
    fn(th, y, w, x, n_in, n_out, n_tokens, scratch);
    const double c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
    const double t0 = seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < iters; i++) {
        fn(th, y, w + (long)(i % n_copies) * w_bytes, x, n_in, n_out, n_tokens, scratch);
    }
    *cpu = (seconds(CLOCK_THREAD_CPUTIME_ID) - c0) / iters;
    return (seconds(CLOCK_MONOTONIC) - t0) / iters;
}
"""

BENCH_CDEF = """
typedef void (*mm_fn)(llmc_threads *, float *, const void *, const float *, int, int, int, void *);
double bench_loop(mm_fn fn, llmc_threads *th, float *y, const unsigned char *w, long w_bytes, int n_copies,
                  const float *x, int n_in, int n_out, int n_tokens, void *scratch, int iters, double *cpu);
"""

# (n_in, n_out) of SmolLM2-135M: q/o, k/v, gate/up, down; the tied Q8_0 lm head
SHAPES = [(576, 576), (576, 192), (576, 1536), (1536, 576)]
LM_HEAD = (576, 49152)
STREAM_BYTES = 256 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=",".join(MATMUL_TYPES))
    parser.add_argument("--tokens", default="1,64")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--min-seconds", type=float, default=0.2)
    args = parser.parse_args()

    out_dir = Path(tempfile.mkdtemp(prefix="llmc_bench_"))
    ffi, lib = build_matmul_library(out_dir, NATIVE_FLAGS)
    bench_src = out_dir / "bench.c"
    bench_src.write_text(BENCH_C)
    bench_so = out_dir / "bench.so"
    subprocess.run(["gcc", *NATIVE_FLAGS, "-shared", "-fPIC", f"-I{RUNTIME_C}", str(bench_src), "-o", str(bench_so)],
                   check=True)
    ffi.cdef(BENCH_CDEF)
    blib = ffi.dlopen(str(bench_so))
    pools = {n: ffi.gc(lib.llmc_threads_create(n), lib.llmc_threads_destroy) for n in map(int, args.threads.split(","))}
    rng = np.random.default_rng(0)

    print(f"{'type':6} {'shape':>10} {'T':>3} {'thr':>3} {'hot µs':>8} {'GB/s':>6} {'cpu GB/s':>8} "
          f"{'stream µs':>9} {'GB/s':>6} {'cpu GB/s':>8}")
    cpu = ffi.new("double *")
    for ggml_type in args.types.split(","):
        shapes = SHAPES + ([LM_HEAD] if ggml_type == "Q8_0" else [])
        for n_in, n_out in shapes:
            w_bytes = row_bytes(ggml_type, n_in) * n_out
            w_one = random_weight(ggml_type, rng, n_in, n_out)
            n_copies = max(1, STREAM_BYTES // w_bytes)
            w_all = np.tile(w_one, n_copies)
            fn = ffi.cast("mm_fn", ffi.addressof(lib, function_name(ggml_type)))
            for n_tokens in map(int, args.tokens.split(",")):
                x = rng.standard_normal((n_tokens, n_in)).astype(np.float32)
                y = np.zeros((n_tokens, n_out), np.float32)
                scratch = np.zeros(max(1, matmul_scratch_bytes(ggml_type, n_in, n_tokens)), np.uint8)
                for n_threads, pool in pools.items():
                    row = []
                    for copies in (1, n_copies):
                        args_c = (fn, pool, ffi.from_buffer("float[]", y), ffi.from_buffer(w_all), w_bytes, copies,
                                  ffi.from_buffer("float[]", x), n_in, n_out, n_tokens, ffi.from_buffer(scratch))
                        iters = max(3, int(args.min_seconds / max(blib.bench_loop(*args_c, 3, cpu), 1e-7)))
                        wall, cpu_s = min((blib.bench_loop(*args_c, iters, cpu), cpu[0]) for _ in range(3))
                        row += [wall * 1e6, w_bytes / wall / 1e9, w_bytes / cpu_s / 1e9]
                    print(f"{ggml_type:6} {f'{n_in}x{n_out}':>10} {n_tokens:>3} {n_threads:>3} "
                          f"{row[0]:8.1f} {row[1]:6.1f} {row[2]:8.1f} {row[3]:9.1f} {row[4]:6.1f} {row[5]:8.1f}",
                          flush=True)

    # dispatch cost: a matmul too small to matter (2 slots of 32 rows), so the time is the pool round trip
    w = random_weight("Q4_1", rng, 32, 64)
    x = rng.standard_normal((1, 32)).astype(np.float32)
    y = np.zeros((1, 64), np.float32)
    scratch = np.zeros(matmul_scratch_bytes("Q4_1", 32, 1), np.uint8)
    fn = ffi.cast("mm_fn", ffi.addressof(lib, function_name("Q4_1")))
    for n_threads, pool in pools.items():
        per_call = min(blib.bench_loop(fn, pool, ffi.from_buffer("float[]", y), ffi.from_buffer(w), w.size, 1,
                                       ffi.from_buffer("float[]", x), 32, 64, 1, ffi.from_buffer(scratch), 100000, cpu)
                       for _ in range(5))
        print(f"per-call time (Q4_1 32x64, 1 token), {n_threads} thread(s): {per_call * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
