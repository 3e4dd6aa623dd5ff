"""The matmul kernels built for aarch64 (NEON sdot paths of _neon.c.j2, the portable C for the other types)
against the numpy reference (ir/quant.py), run under qemu-aarch64: hypothesis shapes for
armv8.2-a+dotprod, fixed cases for plain armv8-a (sdot emulated by widening multiplies). The tolerance is
tests/codegen/test_c_matmul.py's: only the f32 summation order may differ from the reference.

One qemu process per build serves every case: requests go down its stdin, outputs come back on stdout."""
from __future__ import annotations

import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from llmc.codegen.c.build import RUNTIME_C, toolchain
from llmc.codegen.c.matmul import MATMUL_TYPES, function_name, matmul_scratch_bytes, render_matmul
from tests.codegen.test_c_matmul import block_size, check_matmul, shapes
from tests.cross.qemu import AARCH64, require_aarch64

NEON_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4", "Q4_K", "Q6_K")

HARNESS = """/* Serves matmul requests on stdin for tests/cross/test_neon_kernels.py: (type, n_in, n_out, n_tokens,
 * threads) as int32, the weight's byte count as uint64, the weight bytes, the activations (n_tokens x n_in f32);
 * answers with y (n_tokens x n_out f32). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "llmc_runtime.h"

typedef void (*matmul_fn)(llmc_threads *, float *, const void *, const float *, int, int, int, void *);
static const matmul_fn KERNELS[] = { %(kernels)s };

static int read_all(void *p, size_t n) { return fread(p, 1, n, stdin) == n; }

int main(void)
{
    llmc_threads *pools[9] = {0};
    int32_t h[5];
    uint64_t w_bytes, scratch_bytes;
    while (read_all(h, sizeof h) && read_all(&w_bytes, 8) && read_all(&scratch_bytes, 8)) {
        if (h[0] < 0 || h[0] >= (int32_t)(sizeof KERNELS / sizeof KERNELS[0]) || h[4] < 1 || h[4] > 8) return 2;
        if (!pools[h[4]]) pools[h[4]] = llmc_threads_create(h[4]);
        llmc_threads *th = pools[h[4]];
        size_t nx = (size_t)h[3] * (size_t)h[1], ny = (size_t)h[3] * (size_t)h[2];
        void *w = malloc(w_bytes ? w_bytes : 1), *scratch = malloc(scratch_bytes ? scratch_bytes : 1);
        float *x = malloc(nx * 4 + 4), *y = malloc(ny * 4 + 4);
        if (!w || !x || !y || !scratch || !read_all(w, w_bytes) || !read_all(x, nx * 4)) return 3;
        KERNELS[h[0]](th, y, w, x, h[1], h[2], h[3], scratch);
        fwrite(y, 4, ny, stdout);
        fflush(stdout);
        free(w); free(x); free(y); free(scratch);
    }
    for (int i = 0; i < 9; i++) if (pools[i]) llmc_threads_destroy(pools[i]);
    return 0;
}
"""


class QemuKernels:
    """Every matmul kernel compiled for aarch64 at one CPU level, served by one qemu process."""

    def __init__(self, out: Path, arch_flags: str):
        require_aarch64()
        tools = toolchain("aarch64", arch_flags)
        out.mkdir(parents=True, exist_ok=True)
        sources = [RUNTIME_C / "llmc_threads.c"]
        for t in MATMUL_TYPES:
            sources.append(out / f"{function_name(t)}.c")
            sources[-1].write_text(render_matmul(t))
        sources.append(out / "harness.c")
        sources[-1].write_text(HARNESS % {"kernels": ", ".join(function_name(t) for t in MATMUL_TYPES)})

        def compile_one(src: Path) -> str:
            obj = out / f"{src.stem}.o"
            subprocess.run([tools.cc, *tools.cflags, "-Werror", "-I", str(RUNTIME_C), "-c", str(src), "-o",
                            str(obj)], check=True, capture_output=True)
            return str(obj)

        with ThreadPoolExecutor(2) as pool:
            objects = list(pool.map(compile_one, sources))
        exe = out / "matmul-harness"
        subprocess.run([tools.cc, "-pthread", *objects, "-lm", "-o", str(exe)], check=True)
        self.proc = subprocess.Popen([AARCH64.emulator, "-L", AARCH64.sysroot, str(exe)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def matmul(self, ggml_type: str, w_raw: np.ndarray, x: np.ndarray, n_out: int, n_threads: int = 2) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype="<f4")
        n_tokens, n_in = x.shape
        w = np.ascontiguousarray(w_raw).view(np.uint8)
        scratch = max(matmul_scratch_bytes(ggml_type, n_in, n_tokens), 1)
        self.proc.stdin.write(struct.pack("<5iQQ", MATMUL_TYPES.index(ggml_type), n_in, n_out, n_tokens, n_threads,
                                          w.nbytes, scratch) + w.tobytes() + x.tobytes())
        self.proc.stdin.flush()
        raw = self.proc.stdout.read(4 * n_tokens * n_out)
        assert len(raw) == 4 * n_tokens * n_out, f"the harness died (exit {self.proc.poll()})"
        return np.frombuffer(raw, "<f4").reshape(n_tokens, n_out)

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def dotprod(tmp_path_factory):
    kernels = QemuKernels(tmp_path_factory.mktemp("neon-dotprod"), "armv8.2-a+dotprod")
    yield kernels
    kernels.close()


@pytest.fixture(scope="module")
def plain_neon(tmp_path_factory):
    kernels = QemuKernels(tmp_path_factory.mktemp("neon-plain"), "armv8-a")
    yield kernels
    kernels.close()


@pytest.mark.parametrize("ggml_type", NEON_TYPES)
def test_neon_dot_matches_reference(dotprod, ggml_type):
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(shapes(block_size(ggml_type)))
    def run(shape):
        n_in, n_out, n_tokens, seed, n_threads = shape
        check_matmul(dotprod, ggml_type, seed, n_in, n_out, n_tokens, n_threads)

    run()


@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
def test_every_type_on_aarch64(dotprod, plain_neon, ggml_type):
    """Every kernel (NEON or portable) at a decode and a prefill shape, at both CPU levels."""
    block = block_size(ggml_type)
    n_in = block * 9 if block < 32 else block * 3
    for kernels in (dotprod, plain_neon):
        check_matmul(kernels, ggml_type, seed=4, n_in=n_in, n_out=19, n_tokens=1)
        check_matmul(kernels, ggml_type, seed=5, n_in=n_in, n_out=11, n_tokens=7)
