"""Continuous batching over the slots of one compiled model.

The model keeps n_seq KV caches ("slots"). One worker thread runs the loop: take new requests into free
slots (the slot whose cached tokens share the longest prefix with the prompt, so a conversation that
extends an earlier one re-uses its KV), then run ONE batched forward holding the next token of every
decoding slot and a chunk of every prefilling slot (at most n_batch tokens), sample each slot that
produced logits, and repeat. A request that finishes, or whose client went away, frees its slot before the
next step. The C call releases the GIL, so the HTTP event loop keeps serving while a step runs.

Events go back to each request's asyncio queue: ("text", piece), then ("done", finish_reason) or
("error", message).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from llmc.runtime.sampling import Sampler
from llmc.runtime.tokenizer import Tokenizer

log = logging.getLogger("llmc.serve")


@dataclass
class Request:
    prompt: list[int]
    max_tokens: int              # new tokens at most (the context end stops it earlier)
    sampler: Sampler
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    ignore_eos: bool = False     # never sample an end-of-generation token
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False      # set by the HTTP side when the client goes away
    n_generated: int = 0
    n_cached: int = 0            # prompt tokens whose KV a slot already held
    slot: int = -1

    def send(self, kind: str, value) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class TextOut:
    """Detokenizes a request's tokens and applies its stop strings: text is released only once it cannot be
    the start of a stop string, and generation ends at the first stop string (which is not sent)."""

    def __init__(self, tokenizer: Tokenizer, stop: list[str]):
        self.decoder = tokenizer.stream_decoder(special=False)
        self.stop = [s for s in stop if s]
        self.pending = ""

    def feed(self, token: int) -> tuple[str, bool]:
        """(text safe to send, stopped)."""
        self.pending += self.decoder.feed(token)
        return self._release(final=False)

    def finish(self) -> str:
        self.pending += self.decoder.flush()
        return self._release(final=True)[0]

    def _release(self, final: bool) -> tuple[str, bool]:
        hits = [(i, s) for s in self.stop if (i := self.pending.find(s)) >= 0]
        if hits:
            text = self.pending[:min(hits)[0]]
            self.pending = ""
            return text, True
        keep = 0 if final else max((k for s in self.stop for k in range(1, len(s))
                                    if self.pending.endswith(s[:k])), default=0)
        text, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return text, False


@dataclass
class Slot:
    index: int
    cached: list[int] = field(default_factory=list)   # tokens whose KV sits at positions 0..len-1
    feed: list[int] = field(default_factory=list)     # tokens to run next (prompt rest, or the last sample)
    request: Request | None = None
    text: TextOut | None = None
    last_used: float = 0.0
    uses: int = 0


class Scheduler:
    def __init__(self, engine, tokenizer: Tokenizer):
        """engine: a CEngine loaded with n_seq slots (runtime/artifact.py)."""
        self.engine, self.tokenizer = engine, tokenizer
        self.slots = [Slot(i) for i in range(engine.n_seq)]
        self.waiting: deque[Request] = deque()
        self.wake = threading.Condition()
        self.running = True
        self.steps = 0
        self.thread = threading.Thread(target=self._run, name="llmc-scheduler", daemon=True)
        self.thread.start()

    def submit(self, request: Request) -> None:
        with self.wake:
            self.waiting.append(request)
            self.wake.notify()

    def cancel(self, request: Request) -> None:
        with self.wake:
            request.cancelled = True
            self.wake.notify()

    def stop(self) -> None:
        with self.wake:
            self.running = False
            self.wake.notify()
        self.thread.join(timeout=10)

    # ---- the worker thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.wake:
                while self.running and not self.waiting and not any(s.request for s in self.slots):
                    self.wake.wait()
                if not self.running:
                    break
                self._drop_cancelled()
                self._admit()
            try:
                self._step()
            except Exception as exc:          # a failed step ends the requests in it; the server goes on
                log.exception("batched forward failed")
                for slot in self.slots:
                    if slot.request is not None:
                        slot.request.send("error", str(exc))
                        self._free(slot, keep_cache=False)
        for slot in self.slots:
            if slot.request is not None:
                slot.request.send("error", "the server is shutting down")

    def _drop_cancelled(self) -> None:
        self.waiting = deque(r for r in self.waiting if not r.cancelled)
        for slot in self.slots:
            if slot.request is not None and slot.request.cancelled:
                self._free(slot, keep_cache=True)

    def _admit(self) -> None:
        free = [s for s in self.slots if s.request is None]
        while self.waiting and free:
            request = self.waiting.popleft()
            # the longest cached prefix wins; among equals the least recently used slot
            slot = max(free, key=lambda s: (_common_prefix(s.cached, request.prompt), -s.last_used))
            free.remove(slot)
            # at least the last prompt token runs again: its logits start the reply
            reuse = min(_common_prefix(slot.cached, request.prompt), len(request.prompt) - 1)
            del slot.cached[reuse:]
            slot.feed = request.prompt[reuse:]
            slot.request, slot.text = request, TextOut(self.tokenizer, request.stop)
            slot.uses += 1
            request.slot, request.n_cached = slot.index, reuse

    def _step(self) -> None:
        """One batched forward: decoding slots first (one token each), then prefill chunks."""
        active = sorted((s for s in self.slots if s.request is not None), key=lambda s: len(s.feed))
        if not active:
            return
        budget = self.engine.n_batch
        tokens, seqs, positions, out_rows, producing = [], [], [], [], []
        for slot in active:
            if budget == 0:
                break
            chunk = slot.feed[:budget]
            base = len(slot.cached)
            tokens += chunk
            seqs += [slot.index] * len(chunk)
            positions += range(base, base + len(chunk))
            budget -= len(chunk)
            slot.cached += chunk
            del slot.feed[:len(chunk)]
            if not slot.feed:
                out_rows.append(len(tokens) - 1)
                producing.append(slot)
        logits = self.engine.forward_batch(np.array(tokens), np.array(seqs), np.array(positions),
                                           np.array(out_rows)) if tokens else []
        self.steps += 1
        for slot, row in zip(producing, logits):
            self._sample(slot, row)

    def _sample(self, slot: Slot, logits: np.ndarray) -> None:
        request = slot.request
        if request.ignore_eos:
            logits[list(self.tokenizer.eog_ids)] = -np.inf
        token = request.sampler.sample(logits)
        if token in self.tokenizer.eog_ids:
            return self._finish(slot, "stop")
        request.n_generated += 1
        text, stopped = slot.text.feed(token)
        if text:
            request.send("text", text)
        if stopped:
            return self._finish(slot, "stop", flush=False)
        if request.n_generated >= request.max_tokens or len(slot.cached) >= self.engine.n_ctx:
            return self._finish(slot, "length")
        slot.feed = [token]

    def _finish(self, slot: Slot, reason: str, flush: bool = True) -> None:
        request = slot.request
        tail = slot.text.finish() if flush else ""
        if tail:
            request.send("text", tail)
        request.send("done", reason)
        self._free(slot, keep_cache=True)

    def _free(self, slot: Slot, keep_cache: bool) -> None:
        slot.request, slot.text, slot.feed = None, None, []
        slot.last_used = time.monotonic()
        if not keep_cache:
            slot.cached = []


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
