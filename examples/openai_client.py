"""Talk to a running `llmc serve` with the official openai package (pip install openai).

    python examples/openai_client.py                 # starts `llmc serve llama` on SmolLM2 for itself
    python examples/openai_client.py --base-url http://127.0.0.1:8080/v1     # or talk to your server

It lists the model, asks one question plainly and once streamed, continues the conversation (the server
re-uses the slot's cached KV for the turns it has seen), and runs a text completion with a stop string.
"""
from __future__ import annotations

import argparse

from openai import OpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server's /v1 URL (default: start one here)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    if args.base_url:
        talk(args.base_url, args.max_tokens)
    else:
        from llmc.serve.background import background_server
        with background_server() as base_url:           # llmc serve llama -m SmolLM2 on a free port
            talk(base_url, args.max_tokens)


def talk(base_url: str, max_tokens: int) -> None:
    client = OpenAI(base_url=base_url, api_key="not-needed")   # llmc serve checks no key

    model = client.models.list().data[0].id
    print(f"model: {model}\n")

    messages = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                {"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0,
                                           max_tokens=max_tokens)
    answer = reply.choices[0].message.content
    print(f"plain:    {answer!r} ({reply.choices[0].finish_reason}, {reply.usage.prompt_tokens} prompt + "
          f"{reply.usage.completion_tokens} completion tokens)")

    print("streamed: ", end="", flush=True)
    for chunk in client.chat.completions.create(model=model, messages=messages, temperature=0,
                                                max_tokens=max_tokens, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()

    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}]
    follow = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)
    cached = follow.usage.prompt_tokens_details.cached_tokens if follow.usage.prompt_tokens_details else 0
    print(f"follow-up: {follow.choices[0].message.content!r} ({cached} of {follow.usage.prompt_tokens} prompt "
          "tokens from the cache)")

    text = client.completions.create(model=model, prompt="1, 2, 3, 4,", max_tokens=32, temperature=0, stop=["8"])
    print(f"completion with stop '8': {text.choices[0].text!r} ({text.choices[0].finish_reason})")


if __name__ == "__main__":
    main()
