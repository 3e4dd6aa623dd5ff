"""A `llmc serve` (or llama-server) child process for scripts and examples that want a server without
starting one by hand.

    with background_server() as base_url:          # SmolLM2 (fetched as `llmc demo` does), llama arch, C
        OpenAI(base_url=base_url, api_key="-")...
    with background_llama_server(gguf, n_parallel=4) as base_url:   # llama.cpp's server, for comparisons

The child is started as a user starts it (`python -m llmc.cli serve ...`) on a free local port; the
context waits for GET /health to answer 200 and stops the child (SIGINT, as Ctrl-C) on exit.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
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
                      n_ctx: int = 2048, threads: int | None = None, timeout_s: float = 600.0) -> Iterator[str]:
    """Start `llmc serve MODEL -m GGUF` and yield its OpenAI base URL (http://127.0.0.1:PORT/v1)."""
    if gguf is None:
        from llmc.fetch import smollm2
        gguf = smollm2()
    port = free_port()
    cmd = [sys.executable, "-m", "llmc.cli", "serve", model, "-m", gguf, "--port", str(port),
           "-np", str(n_parallel), "-c", str(n_ctx)] + (["-t", str(threads)] if threads else [])
    with _child(cmd, port, "llmc serve", timeout_s) as url:
        yield url


@contextlib.contextmanager
def background_llama_server(gguf: str, n_parallel: int = 1, n_ctx: int = 2048, threads: int = 2,
                            env: dict[str, str] | None = None, timeout_s: float = 300.0) -> Iterator[str]:
    """Start llama.cpp's llama-server (built by llmc.llamacpp_tools) with the same flags llmc serve takes,
    and its `--jinja` chat templating; yield its OpenAI base URL. `env` adds variables, e.g.
    OMP_WAIT_POLICY=PASSIVE."""
    import os

    from llmc import llamacpp_tools
    port = free_port()
    cmd = [llamacpp_tools.tool("llama-server"), "-m", gguf, "--port", str(port), "-np", str(n_parallel),
           "-c", str(n_ctx), "-t", str(threads), "--jinja"]
    with _child(cmd, port, "llama-server", timeout_s, env={**os.environ, **(env or {})}) as url:
        yield url


@contextlib.contextmanager
def _child(cmd: list[str], port: int, name: str, timeout_s: float, env: dict | None = None) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    # The log goes to a file, not a pipe: a server that logs every request would fill an unread pipe and block.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while health(url) != 200:
            if proc.poll() is not None:
                log.seek(0)
                raise LlmcError(f"{name} exited with {proc.returncode}: {log.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise LlmcError(f"{name} did not become healthy within {timeout_s:.0f} s")
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
        log.close()
