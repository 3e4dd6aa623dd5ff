"""`llmc serve`: an OpenAI-compatible HTTP server over a compiled model with n parallel slots.

    llmc serve build/llama-c -m model.gguf --port 8080 -np 4

api.py is the HTTP side (aiohttp), scheduler.py the continuous batching over the model's slots,
requests.py the checking of request bodies, chat.html the chat page served at /.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys


def run(model_path: str, gguf: str, host: str = "127.0.0.1", port: int = 8080, n_ctx: int = 4096,
        n_parallel: int = 1, n_threads: int | None = None, n_batch: int = 256, target: str = "c",
        chat_template: str | None = None) -> None:
    """Serve until Ctrl-C. model_path: an artifact directory, or an architecture compiled for target.
    n_ctx is the total context, split evenly between the n_parallel slots (as llama-server's -c, -np)."""
    from llmc.ir.errors import LlmcError
    from llmc.runtime.chat_template import template_for

    from .api import serve

    if n_parallel < 1 or n_batch < 1 or n_ctx // max(n_parallel, 1) < 2:
        raise LlmcError(f"-np and -b must be positive and -c at least 2 tokens per slot (got -c {n_ctx}, "
                        f"-np {n_parallel}, -b {n_batch})")
    slot_ctx = n_ctx // n_parallel
    if not os.path.isfile(gguf):
        raise LlmcError(f"{gguf}: no such file")
    if chat_template is not None and not os.path.isfile(chat_template):
        template_for({}, chat_template)            # an unknown name fails now, before the server starts

    def load():
        import llmc
        options = {"n_seq": n_parallel, "n_batch": n_batch, **({"n_threads": n_threads} if n_threads else {})}
        kwargs = {} if os.path.isdir(model_path) else {"target": target}
        return llmc.load(model_path, gguf, n_ctx=slot_ctx, chat_template=chat_template, **kwargs, **options)

    def ready(h, p):
        print(f"llmc serve: {os.path.basename(gguf)} on http://{h}:{p} ({n_parallel} slot"
              f"{'s' if n_parallel > 1 else ''} of {slot_ctx} tokens); Ctrl-C stops", file=sys.stderr, flush=True)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(load, os.path.basename(gguf), host, port, ready))
    except KeyboardInterrupt:
        print("llmc serve: shut down", file=sys.stderr)
