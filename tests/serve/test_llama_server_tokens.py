"""The chat template renders and tokenizes a system+user conversation exactly as llama-server does on the
same GGUF: same prompt text (/apply-template), same prompt token count in `usage`."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

CONVERSATION = [{"role": "system", "content": "You are a pirate. Answer in one line."},
                {"role": "user", "content": "Where is the treasure, 'matey'? Ünïcödé too!"}]


@pytest.fixture(scope="module")
def llama_server(smollm2_path):
    from llmc import llamacpp_tools
    from llmc.serve.background import background_llama_server
    try:
        llamacpp_tools.tool("llama-server")
    except llamacpp_tools.ToolUnavailable as exc:
        pytest.skip(f"llama-server cannot be built here: {exc}")
    with background_llama_server(smollm2_path, n_ctx=1024, threads=2) as base_url:
        yield base_url.removesuffix("/v1")


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
