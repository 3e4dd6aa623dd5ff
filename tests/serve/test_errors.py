"""Bad requests get a 4xx with an OpenAI-style JSON error and the server keeps serving; an internal error is
a 500 (logged) and the next request is served. On a random-weight qwen2 file, whose GGUF has no chat
template."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.serve.conftest import start

openai = pytest.importorskip("openai", reason="the openai client is in the test extra: pip install -e '.[test]'")

SLOT_CTX = 128
USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server(qwen2_artifact, qwen2_q8_path, tmp_path_factory):
    s = start(qwen2_artifact, qwen2_q8_path, tmp_path_factory.mktemp("log"), "-np", "2", "-c", str(2 * SLOT_CTX))
    yield s
    assert s.stop() == 0, s.log()


def call(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(url: str, path: str, obj) -> tuple[int, dict]:
    return call(url, "POST", path, json.dumps(obj).encode())


def still_serves(url: str) -> None:
    status, body = post(url, "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 2, "temperature": 0})
    assert status == 200 and body["usage"]["completion_tokens"] <= 2, body


CHAT, COMPLETE = "/v1/chat/completions", "/v1/completions"
OK_CHAT = {"messages": USER, "max_tokens": 2}
OK_COMPLETE = {"prompt": [1, 2, 3], "max_tokens": 2}
BAD = {
    "malformed JSON": (COMPLETE, b'{"prompt": [1, 2', "not valid JSON"),
    "body not an object": (COMPLETE, [1, 2], "must be a JSON object"),
    "messages missing": (CHAT, {"max_tokens": 2}, "'messages' must be"),
    "messages not a list": (CHAT, {"messages": "hello"}, "'messages' must be"),
    "message without role": (CHAT, {"messages": [{"content": "hi"}]}, "string 'role'"),
    "content a number": (CHAT, {"messages": [{"role": "user", "content": 5}]}, "content must be"),
    "model without a chat template": (CHAT, OK_CHAT, "no chat template"),
    "prompt missing": (COMPLETE, {"max_tokens": 2}, "'prompt' must be"),
    "token id outside the vocabulary": (COMPLETE, {"prompt": [1, 10**6]}, "token ids must be in"),
    "negative max_tokens": (COMPLETE, {**OK_COMPLETE, "max_tokens": -1}, "'max_tokens' must be between"),
    "absurd max_tokens": (COMPLETE, {**OK_COMPLETE, "max_tokens": 2**40}, "'max_tokens' must be between"),
    "max_tokens a string": (COMPLETE, {**OK_COMPLETE, "max_tokens": "ten"}, "'max_tokens' must be an integer"),
    "negative temperature": (COMPLETE, {**OK_COMPLETE, "temperature": -0.5}, "'temperature' must be between"),
    "top_p above 1": (COMPLETE, {**OK_COMPLETE, "top_p": 1.5}, "'top_p' must be between"),
    "negative top_k": (COMPLETE, {**OK_COMPLETE, "top_k": -1}, "'top_k' must be between"),
    "stop a number": (COMPLETE, {**OK_COMPLETE, "stop": 5}, "'stop' must be"),
    "n above 1": (COMPLETE, {**OK_COMPLETE, "n": 3}, "'n' must be 1"),
    "stream not a boolean": (COMPLETE, {**OK_COMPLETE, "stream": "yes"}, "'stream' must be true or false"),
    "prompt longer than the context": (COMPLETE, {"prompt": [1] * (SLOT_CTX + 5)}, "the context holds 128"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_400_and_the_server_goes_on(server, case):
    path, body, message = BAD[case]
    status, reply = call(server.url, "POST", path, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert status == 400, reply
    assert set(reply["error"]) == {"message", "type", "code"} and reply["error"]["code"] == 400
    assert message in reply["error"]["message"]
    still_serves(server.url)


def test_unknown_path_is_404_and_wrong_method_405(server):
    status, reply = call(server.url, "GET", "/v1/nothing")
    assert status == 404 and reply["error"]["type"] == "not_found_error"
    status, reply = call(server.url, "GET", COMPLETE)
    assert status == 405 and reply["error"]["code"] == 405
    still_serves(server.url)


def test_completions_through_openai_client(server):
    client = openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)
    r = client.completions.create(model="x", prompt=[5, 6, 7], max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == r.usage.total_tokens - 3
    assert r.choices[0].finish_reason in ("stop", "length")


def test_chat_with_template_flag_and_internal_error(qwen2_artifact, qwen2_q8_path, tmp_path):
    """--chat-template FILE gives the template-less file a chat; a template that crashes on one-message
    conversations makes a 500 that is logged, and the next request is served."""
    template = tmp_path / "t.jinja"
    template.write_text("{% if messages | length == 1 %}{{ 1 // 0 }}{% endif %}"
                        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    s = start(qwen2_artifact, qwen2_q8_path, tmp_path, "--chat-template", str(template), "-c", "256")
    try:
        client = openai.OpenAI(base_url=s.api, api_key="unused", max_retries=0)
        two = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        plain = client.chat.completions.create(model="x", messages=two, max_tokens=8, temperature=0)
        streamed = client.chat.completions.create(model="x", messages=two, max_tokens=8, temperature=0, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == plain.choices[0].message.content
        status, reply = post(s.url, CHAT, OK_CHAT)
        assert status == 500 and reply["error"]["type"] == "server_error", reply
        assert "ZeroDivisionError" in s.log()
        assert client.chat.completions.create(model="x", messages=two, max_tokens=2).choices
    finally:
        assert s.stop() == 0, s.log()
