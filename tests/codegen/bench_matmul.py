"""Time the C matmul kernels at SmolLM2-135M shapes (not collected by pytest).

    python tests/codegen/bench_matmul.py [--types Q4_1,Q8_0] [--tokens 1,64]

For each (type, n_in → n_out, tokens, threads) prints µs per call and GB/s of weight bytes read.
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

import cffi
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen.test_c_matmul import NATIVE_FLAGS, RUNTIME_C, build_matmul_library, random_weight  # noqa: E402

from llmc.codegen.c.matmul import MATMUL_TYPES, function_name, matmul_scratch_bytes  # noqa: E402
from llmc.ir.quant import row_bytes  # noqa: E402

BENCH_C = r"""
#include <time.h>
#include "llmc_threads.h"

typedef void (*mm_fn)(llmc_threads *, float *, const void *, const float *, int, int, int, void *);

/* Seconds per call, calling fn iters times; weight copy i % n_copies on call i. */
double bench_loop(mm_fn fn, llmc_threads *th, float *y, const unsigned char *w, long w_bytes, int n_copies,
                  const float *x, int n_in, int n_out, int n_tokens, void *scratch, int iters) {
    struct timespec t0, t1;
    fn(th, y, w, x, n_in, n_out, n_tokens, scratch);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++) {
        fn(th, y, w + (long)(i % n_copies) * w_bytes, x, n_in, n_out, n_tokens, scratch);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return ((t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec)) / iters;
}
"""

BENCH_CDEF = """
typedef void (*mm_fn)(llmc_threads *, float *, const void *, const float *, int, int, int, void *);
double bench_loop(mm_fn fn, llmc_threads *th, float *y, const unsigned char *w, long w_bytes, int n_copies,
                  const float *x, int n_in, int n_out, int n_tokens, void *scratch, int iters);
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

    print(f"{'type':6} {'shape':>12} {'T':>3} {'thr':>3} {'hot µs':>9} {'hot GB/s':>9} {'stream µs':>10} {'stream GB/s':>11}")
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
                        call = lambda iters: blib.bench_loop(  # noqa: E731
                            fn, pool, ffi.from_buffer("float[]", y), ffi.from_buffer(w_all), w_bytes, copies,
                            ffi.from_buffer("float[]", x), n_in, n_out, n_tokens, ffi.from_buffer(scratch), iters)
                        per_call = call(3)
                        iters = max(3, int(args.min_seconds / max(per_call, 1e-7)))
                        per_call = min(call(iters) for _ in range(3))
                        row += [per_call * 1e6, w_bytes / per_call / 1e9]
                    print(f"{ggml_type:6} {f'{n_in}x{n_out}':>12} {n_tokens:>3} {n_threads:>3} "
                          f"{row[0]:9.1f} {row[1]:9.1f} {row[2]:10.1f} {row[3]:11.1f}", flush=True)

    # dispatch cost: a matmul too small to matter, so the time is the pool round trip
    for n_threads, pool in pools.items():
        w = random_weight("Q4_1", rng, 32, 2)
        x = rng.standard_normal((1, 32)).astype(np.float32)
        y = np.zeros((1, 2), np.float32)
        scratch = np.zeros(matmul_scratch_bytes("Q4_1", 32, 1), np.uint8)
        fn = ffi.cast("mm_fn", ffi.addressof(lib, function_name("Q4_1")))
        per_call = min(blib.bench_loop(fn, pool, ffi.from_buffer("float[]", y), ffi.from_buffer(w), w.size, 1,
                                       ffi.from_buffer("float[]", x), 32, 2, 1, ffi.from_buffer(scratch), 200000)
                       for _ in range(3))
        print(f"per-call overhead (Q4_1 32x2, 1 token), {n_threads} thread(s): {per_call * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
