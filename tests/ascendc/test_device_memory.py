"""Device memory is not host memory: emulated aclrtMalloc memory faults on a host load or store, with a
message naming the allocation; aclrtMemcpy and kernels reach it. And the generated model moves every
value it keeps on the device (the layer-carry copies included) with aclrtMemcpy, never with memcpy."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from llmc.compiler.driver import compile_model
from llmc.runtime.ascendc.launch import EMU_DIR

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")

PROGRAM = r"""
#include "kernel_operator.h"
using namespace AscendC;

extern "C" __global__ __aicore__ void twice(GM_ADDR x)
{
    GlobalTensor<float> xGm;
    xGm.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), 64);
    TPipe pipe;
    TBuf<TPosition::VECCALC> b;
    pipe.InitBuffer(b, 256);
    LocalTensor<float> t = b.Get<float>();
    DataCopy(t, xGm, 64);
    PipeBarrier<PIPE_ALL>();
    Muls(t, t, 2.0f, 64);
    PipeBarrier<PIPE_ALL>();
    DataCopy(xGm, t, 64);
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *mode = argv[1];
    float host[64];
    for (int i = 0; i < 64; ++i) {
        host[i] = static_cast<float>(i);
    }
    void *dev = nullptr;
    if (aclrtMalloc(&dev, sizeof host, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS) {
        return 2;
    }
    if (mode[0] == 'w') {                       // a host store into device memory
        memcpy(static_cast<uint8_t *>(dev) + 16, host, 32);
        return 0;
    }
    if (mode[0] == 'r') {                       // a host load from device memory
        return static_cast<int>(static_cast<volatile float *>(dev)[3]);
    }
    if (mode[0] == 'k') {                       // the wrong memcpy kind is refused
        const aclError rc = aclrtMemcpy(dev, sizeof host, host, sizeof host, ACL_MEMCPY_DEVICE_TO_HOST);
        return rc == ACL_SUCCESS ? 3 : 0;
    }
    // the legal round trip: aclrtMemcpy in, a kernel, aclrtMemcpy out
    if (aclrtMemcpy(dev, sizeof host, host, sizeof host, ACL_MEMCPY_HOST_TO_DEVICE) != ACL_SUCCESS) {
        return 4;
    }
    char err[256];
    if (ascendc_emu::Launch("twice", 1, err, sizeof err, [&] { twice(static_cast<uint8_t *>(dev)); }) != 0) {
        return 5;
    }
    if (aclrtMemcpy(host, sizeof host, dev, sizeof host, ACL_MEMCPY_DEVICE_TO_HOST) != ACL_SUCCESS) {
        return 6;
    }
    return host[5] == 10.0f && host[63] == 126.0f ? 0 : 7;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    d = tmp_path_factory.mktemp("devmem")
    (d / "main.cpp").write_text(PROGRAM)
    exe = d / "devmem"
    build = ["g++", "-std=c++17", "-O1", "-D__NPU_ARCH__=3002", f"-I{EMU_DIR}", str(d / "main.cpp"), "-o",
             str(exe)]
    subprocess.run(build, check=True, capture_output=True, text=True)
    return exe


def _run(exe, mode):
    return subprocess.run([str(exe), mode], check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", ["write", "read"])
def test_host_access_to_device_memory_faults_loudly(program, mode):
    done = _run(program, mode)
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr)
    assert "ascendc-emu: host code touched device memory" in done.stderr
    assert re.search(r"byte (16|12) of a 288-byte aclrtMalloc allocation", done.stderr), done.stderr


def test_acl_memcpy_and_kernels_reach_device_memory(program):
    done = _run(program, "ok")
    assert done.returncode == 0, (done.returncode, done.stderr)


def test_acl_memcpy_checks_its_kind(program):
    done = _run(program, "kind")
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert "does not match where dst" in done.stderr


def test_generated_model_copies_device_values_on_the_device(qwen2_q8_path, tmp_path):
    """The layer-carry copies of an Ascend partition are aclrtMemcpy device to device (llmc_ascend_copy);
    test_model.py runs such models with device memory the host cannot touch."""
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "ascend310b", str(tmp_path), gguf=qwen2_q8_path)
    lines = (tmp_path / "src" / "model.c").read_text().splitlines()
    carries = [i for i, line in enumerate(lines) if "/* carry " in line]
    assert len(carries) == 2
    for i in carries:
        line = lines[i + 1]
        assert "llmc_ascend_copy(m->asc," in line and "LLMC_ASCEND_ON_DEVICE" in line, line
    host = (tmp_path / "src" / "llmc_ascend.cpp").read_text()
    assert "aligned_alloc" not in host and "memmove" not in host
