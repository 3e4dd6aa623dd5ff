"""`llmc chat` (a conversation on stdin) and `llmc serve`'s user errors: one line, exit 1, no traceback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.serve.conftest import ROOT


def llmc(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "llmc.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_chat_keeps_the_conversation(llama_artifact, smollm2_path):
    done = llmc("chat", llama_artifact, "-m", smollm2_path, "-n", "12", "-t", "2", "-s", "You are a helpful assistant. Answer briefly.",
                stdin="What is the capital of France?\nAnd of Italy?\n")
    assert done.returncode == 0, done.stderr
    replies = [line for line in done.stdout.split("> ") if line.strip()]
    assert len(replies) == 2 and "Paris" in replies[0], done.stdout


def test_serve_user_errors(llama_artifact, smollm2_path):
    bad_template = llmc("serve", llama_artifact, "-m", smollm2_path, "--chat-template", "vicuna")
    assert bad_template.returncode == 1 and "not a file and not a built-in template" in bad_template.stderr
    too_small = llmc("serve", llama_artifact, "-m", smollm2_path, "-c", "4", "-np", "4")
    assert too_small.returncode == 1 and "-c at least 2 tokens per slot" in too_small.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = llmc("serve", llama_artifact, "-m", smollm2_path, "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 1 and "cannot listen on 127.0.0.1:" in busy.stderr
    for done in (bad_template, too_small, busy):
        assert "Traceback" not in done.stderr, done.stderr
