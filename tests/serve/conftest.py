"""Servers for the tests: `llmc serve` started as a user starts it (a child process on a free port), on
SmolLM2 and on a random-weight qwen2 file, stopped with SIGINT (Ctrl-C) at the end of the module."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from llmc import arch_path
from llmc.serve.background import free_port, health
from llmc.compiler.driver import compile_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: str
    statuses: list = field(default_factory=list)   # /health answers seen while starting

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def start(artifact: str, gguf: str, tmp_dir, *args: str) -> Server:
    port = free_port()
    log_path = os.path.join(str(tmp_dir), f"serve-{port}.log")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llmc.cli", "serve", artifact, "-m", gguf, "--port", str(port),
                                 "-t", "2", *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = health(server.url)
        server.statuses.append(status)
        if status == 200:
            return server
        if proc.poll() is not None:
            raise AssertionError(f"llmc serve exited with {proc.returncode}:\n{server.log()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"llmc serve did not become healthy:\n{server.log()}")


@pytest.fixture(scope="session")
def llama_artifact(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("serve-llama")
    compile_model(arch_path("llama"), "c", str(out))
    return str(out)


@pytest.fixture(scope="session")
def qwen2_artifact(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("serve-qwen2")
    compile_model(arch_path("qwen2"), "c", str(out))
    return str(out)


@pytest.fixture(scope="session")
def smollm2_server(llama_artifact, smollm2_path, tmp_path_factory):
    """SmolLM2 with 4 slots of 1024 tokens."""
    server = start(llama_artifact, smollm2_path, tmp_path_factory.mktemp("log"), "-np", "4", "-c", "4096")
    yield server
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()
