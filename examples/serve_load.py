"""Aggregate completion throughput of an OpenAI-compatible server (llmc serve or llama-server): N chats,
C at a time, each asking for a fixed number of tokens; prints completion tok/s over the wall time.

    python examples/serve_load.py --base-url http://127.0.0.1:8080/v1 --chats 8 --concurrency 4
    python examples/serve_load.py                      # starts `llmc serve llama -np 4` on SmolLM2 itself

Needs aiohttp (a dependency of llmc). Every chat asks a different question, greedy, with ignore_eos (both
servers take it) so that every chat generates exactly --max-tokens tokens; tok/s counts the completion
tokens each server reports in usage."""
from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp


async def one(session, url: str, i: int, max_tokens: int) -> int:
    body = {"messages": [{"role": "user", "content": f"Write a long story about the number {i}."}],
            "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    async with session.post(url + "/chat/completions", json=body) as r:
        reply = await r.json()
        if r.status != 200:
            raise RuntimeError(f"request {i}: {r.status} {reply}")
        return reply["usage"]["completion_tokens"]


async def run(url: str, chats: int, concurrency: int, max_tokens: int) -> tuple[int, float]:
    gate = asyncio.Semaphore(concurrency)

    async def gated(session, i):
        async with gate:
            return await one(session, url, i, max_tokens)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await one(session, url, -1, 4)                       # warm-up
        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(gated(session, i) for i in range(chats)))
        return sum(tokens), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", help="a running server's /v1 URL (default: start llmc serve -np 4 here)")
    p.add_argument("--chats", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args()
    if args.base_url:
        tokens, seconds = asyncio.run(run(args.base_url, args.chats, args.concurrency, args.max_tokens))
    else:
        from llmc.serve.background import background_server
        with background_server(n_parallel=args.concurrency) as base_url:
            tokens, seconds = asyncio.run(run(base_url, args.chats, args.concurrency, args.max_tokens))
    print(f"{args.chats} chats, {args.concurrency} at a time: {tokens} completion tokens in {seconds:.2f} s = "
          f"{tokens / seconds:.1f} tok/s")


if __name__ == "__main__":
    main()
