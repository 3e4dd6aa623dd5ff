"""The chat template renders and tokenizes a system+user conversation exactly as llama-server does on the
same GGUF: same prompt text (/apply-template), same prompt token count in `usage`."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.serve.conftest import free_port, health

CONVERSATION = [{"role": "system", "content": "You are a pirate. Answer in one line."},
                {"role": "user", "content": "Where is the treasure, 'matey'? Ünïcödé too!"}]


@pytest.fixture(scope="module")
def llama_server(smollm2_path, tmp_path_factory):
    from llmc import llamacpp_tools
    try:
        binary = llamacpp_tools.tool("llama-server")
    except llamacpp_tools.ToolUnavailable as exc:
        pytest.skip(f"llama-server cannot be built here: {exc}")
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama-server") / "log", "w")
    proc = subprocess.Popen([binary, "-m", smollm2_path, "--port", str(port), "-c", "1024", "-np", "1", "-t", "2",
                             "--jinja"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while health(url) != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "llama-server did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def test_prompt_text_and_token_count_equal_llama_servers(llama_server, smollm2_server):
    body = {"messages": CONVERSATION, "max_tokens": 1, "temperature": 0}
    theirs = post(llama_server, "/v1/chat/completions", body)["usage"]["prompt_tokens"]
    ours = post(smollm2_server.url, "/v1/chat/completions", body)["usage"]["prompt_tokens"]
    assert ours == theirs
    theirs = post(llama_server, "/apply-template", {"messages": CONVERSATION})["prompt"]
    ours = post(smollm2_server.url, "/apply-template", {"messages": CONVERSATION})["prompt"]
    assert ours == theirs and "<|im_start|>system" in ours
