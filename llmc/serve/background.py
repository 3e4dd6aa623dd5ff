"""A `llmc serve` child process for scripts and examples that want a server without starting one by hand.

    with background_server() as base_url:          # SmolLM2 (fetched as `llmc demo` does), llama arch, C
        OpenAI(base_url=base_url, api_key="-")...

The child is started as a user starts it (`python -m llmc.cli serve ...`) on a free local port; the
context waits for GET /health to answer 200 and stops the child (SIGINT, as Ctrl-C) on exit.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from llmc.ir.errors import LlmcError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> int | None:
    """The status of GET /health, None while nothing listens."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@contextlib.contextmanager
def background_server(model: str = "llama", gguf: str | None = None, n_parallel: int = 1,
                      n_ctx: int = 2048, timeout_s: float = 600.0) -> Iterator[str]:
    """Start `llmc serve MODEL -m GGUF` and yield its OpenAI base URL (http://127.0.0.1:PORT/v1)."""
    if gguf is None:
        from llmc.fetch import smollm2
        gguf = smollm2()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "llmc.cli", "serve", model, "-m", gguf, "--port", str(port),
           "-np", str(n_parallel), "-c", str(n_ctx)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while health(url) != 200:
            if proc.poll() is not None:
                raise LlmcError(f"llmc serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise LlmcError(f"llmc serve did not become healthy within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
