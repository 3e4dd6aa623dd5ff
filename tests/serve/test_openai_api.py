"""`llmc serve` on SmolLM2 through the official openai client: models, chat (plain and streamed), text
completions, stop strings, usage, prefix reuse and concurrent chats on 4 slots."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai", reason="the openai client is in the test extra: pip install -e '.[test]'")

CONVERSATION = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(smollm2_server):
    return openai.OpenAI(base_url=smollm2_server.api, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def local_model(smollm2_path, llama_artifact):
    """The same artifact and file through the Python API."""
    import llmc
    return llmc.load(llama_artifact, smollm2_path, n_ctx=512, n_threads=2)


def test_health_answers_503_while_loading(smollm2_server):
    seen = [s for s in smollm2_server.statuses if s is not None]
    assert seen[-1] == 200 and 503 in seen, seen


def test_models(client, smollm2_server):
    models = client.models.list().data
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]


def test_chat_plain_equals_streamed_at_temperature_0(client, local_model):
    plain = client.chat.completions.create(model="x", messages=CONVERSATION, temperature=0, max_tokens=24)
    text = plain.choices[0].message.content
    assert plain.choices[0].message.role == "assistant"
    assert "Paris" in text
    prompt = local_model.chat_prompt(CONVERSATION)
    assert plain.usage.prompt_tokens == len(prompt)
    assert 0 < plain.usage.completion_tokens <= 24
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="x", messages=CONVERSATION, temperature=0, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and 0 < chunks[-1].usage.completion_tokens <= 24
    # the same conversation again: all but the last prompt token come from the slot's KV cache
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == len(prompt) - 1
    if streamed != text:
        # that last prompt token now runs alone, not in the prompt's batch: the matmul's one-token and
        # batched paths round differently (docs/serve.md), which may flip a near tie
        _assert_parts_at_a_near_tie(local_model, CONVERSATION, text, streamed)
        return
    assert finish == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_reply_matches_model_chat(client, local_model):
    """The server's greedy reply is the Python API's model.chat() on the same artifact."""
    want = local_model.chat(CONVERSATION, max_tokens=16)
    got = client.chat.completions.create(model="x", messages=CONVERSATION, temperature=0, max_tokens=16)
    text = got.choices[0].message.content
    if text != want:
        # the slot already holds this prompt from an earlier test, so the server recomputes only its last
        # token, alone, where model.chat() runs the prompt as one batch: the same near-tie rule applies
        _assert_parts_at_a_near_tie(local_model, CONVERSATION, want, text)


def test_max_tokens_gives_length(client):
    r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Tell me a long story."}],
                                       temperature=0, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_completion_and_stop_string(client):
    r = client.completions.create(model="x", prompt="The capital of France is", temperature=0, max_tokens=16)
    full = r.choices[0].text
    assert "Paris" in full
    cut = full.index("Paris")
    stopped = client.completions.create(model="x", prompt="The capital of France is", temperature=0,
                                        max_tokens=16, stop=["Paris"])
    assert stopped.choices[0].text == full[:cut] and stopped.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="x", prompt="The capital of France is", temperature=0,
                                         max_tokens=16, stop=["Paris"], stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == full[:cut]


def test_seed_makes_sampling_repeatable(client):
    def ask(seed):
        return client.completions.create(model="x", prompt="Once upon a time", temperature=1.0, top_p=1.0,
                                         max_tokens=12, seed=seed, extra_body={"top_k": 0, "min_p": 0}
                                         ).choices[0].text
    a, b, c = ask(7), ask(7), ask(8)
    assert a == b and a != c


def test_eight_chats_four_at_a_time(client, smollm2_server, local_model):
    """8 different chats, 4 concurrent, on 4 slots: all finish, each the same as when asked alone, or parting
    from it only at a near tie. Concurrent chats share steps, and the quantized matmul's kernel path depends
    on a step's row count, so a shared step can round differently (docs/serve.md; llama-server does too)."""
    questions = [f"Name {i} fruits." for i in range(1, 9)]

    def ask(q):
        r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": q}], temperature=0,
                                           max_tokens=20)
        return r.choices[0].message.content, r.choices[0].finish_reason

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ask, questions))
    alone = [ask(q) for q in questions[:2]]
    assert all(reason in ("stop", "length") and text for text, reason in together)
    for q, (text, _), (want, _) in zip(questions, together, alone):
        if text != want:
            _assert_parts_at_a_near_tie(local_model, [{"role": "user", "content": q}], want, text)


def _assert_parts_at_a_near_tie(model, messages: list[dict], want: str, got: str, max_gap: float = 0.5) -> None:
    """At the first token where got leaves want, the two tokens' logits (teacher-forced along want) are
    within max_gap: rounding, not a different computation, picked the other token."""
    prompt = model.chat_prompt(messages)
    a, b = model.tokenize(want, add_special=False), model.tokenize(got, add_special=False)
    j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert j < min(len(a), len(b)), f"one reply is a prefix of the other: {want!r} vs {got!r}"
    logits = model.logits(prompt + a[:j])[-1]
    gap = abs(float(logits[a[j]]) - float(logits[b[j]]))
    assert gap <= max_gap, f"replies part at token {j} with logits {gap:.3f} apart: {want!r} vs {got!r}"


@pytest.mark.parametrize("example, args", [("openai_client.py", ["--max-tokens", "16"]),
                                           ("serve_load.py", ["--chats", "4", "--max-tokens", "8"])])
def test_example_against_the_server(smollm2_server, example, args):
    """The server examples also talk to a server they did not start (--base-url)."""
    import os
    import subprocess
    import sys
    from tests.serve.conftest import ROOT
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", example), "--base-url", smollm2_server.api,
                           *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("streamed:" in done.stdout) if example == "openai_client.py" else ("tok/s" in done.stdout)
