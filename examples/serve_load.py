"""Aggregate completion throughput of an OpenAI-compatible server (llmc serve or llama-server): N chats,
C at a time, each asking for a fixed number of tokens; prints completion tok/s over the wall time.

    python examples/serve_load.py --base-url http://127.0.0.1:8080/v1 --chats 8 --concurrency 4
    python examples/serve_load.py                      # starts `llmc serve llama -np 4` on SmolLM2 itself
    python examples/serve_load.py --compare --rounds 3 # and llama-server -np 4 -c 2048 -t 2, turn about

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


def measure_local(server: str, args) -> float:
    """Start one server (llmc serve, or llama-server as configured by --compare), load it, return tok/s."""
    from llmc.fetch import smollm2
    from llmc.serve.background import background_llama_server, background_server
    gguf = args.model or smollm2()
    if server == "llmc":
        context = background_server(gguf=gguf, n_parallel=args.concurrency, n_ctx=args.ctx, threads=args.threads)
    else:
        env = {"OMP_WAIT_POLICY": args.omp_wait_policy} if args.omp_wait_policy else None
        context = background_llama_server(gguf, n_parallel=args.concurrency, n_ctx=args.ctx, threads=args.threads,
                                          env=env)
    with context as base_url:
        tokens, seconds = asyncio.run(run(base_url, args.chats, args.concurrency, args.max_tokens))
    rate = tokens / seconds
    print(f"{server:12s} {args.chats} chats, {args.concurrency} at a time: {tokens} completion tokens in "
          f"{seconds:.2f} s = {rate:.1f} tok/s", flush=True)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", help="a running server's /v1 URL (default: start llmc serve -np 4 here)")
    p.add_argument("--chats", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--compare", action="store_true",
                   help="also start llama.cpp's llama-server with the same flags; the servers take turns")
    p.add_argument("--rounds", type=int, default=1, help="with --compare: turns each server gets")
    p.add_argument("--omp-wait-policy", help="with --compare: OMP_WAIT_POLICY for llama-server "
                   "(its default spins, which a busy machine punishes)")
    p.add_argument("-m", "--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1, fetched)")
    p.add_argument("-c", "--ctx", type=int, default=2048)
    p.add_argument("-t", "--threads", type=int, default=2)
    args = p.parse_args()
    if args.base_url:
        tokens, seconds = asyncio.run(run(args.base_url, args.chats, args.concurrency, args.max_tokens))
        print(f"{args.chats} chats, {args.concurrency} at a time: {tokens} completion tokens in {seconds:.2f} s = "
              f"{tokens / seconds:.1f} tok/s")
        return
    if not args.compare:
        measure_local("llmc", args)
        return
    ratios = []
    for _ in range(args.rounds):
        ours, theirs = measure_local("llmc", args), measure_local("llama-server", args)
        ratios.append(ours / theirs)
    print("llmc / llama-server per round: " + ", ".join(f"{r:.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
