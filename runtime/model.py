"""The Model interface every target implements: logits, tokenize/detokenize, generate.

A target supplies an `Engine` with forward(tokens) -> logits of the last token or of all tokens, and
reset(); this class adds tokenization, sampling and streaming on top.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from .chat_template import ChatTemplate, ChatTemplateError
from .sampling import Sampler
from .tokenizer import Tokenizer


class Engine(Protocol):
    n_ctx: int
    n_vocab: int

    def reset(self) -> None: ...

    def forward(self, tokens: np.ndarray, all_logits: bool) -> np.ndarray:
        """Continue the sequence with tokens (T,); logits (T, n_vocab) or (1, n_vocab) for the last."""


@dataclass
class GenerationStats:
    n_prompt: int = 0
    n_generated: int = 0
    prompt_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def prompt_tok_s(self) -> float:
        return self.n_prompt / self.prompt_seconds if self.prompt_seconds else 0.0

    @property
    def decode_tok_s(self) -> float:
        return self.n_generated / self.decode_seconds if self.decode_seconds else 0.0


@dataclass
class Model:
    engine: Engine
    tokenizer: Tokenizer
    target: str
    stats: GenerationStats = field(default_factory=GenerationStats)
    chat_template: ChatTemplate | None = None

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    @property
    def n_vocab(self) -> int:
        return self.engine.n_vocab

    @property
    def placement(self) -> list:
        """What the load placed where and why, for nodes the compile left to the weights file
        (runtime.artifact.LoadPlacement); empty when every node's device was fixed at compile time."""
        return list(getattr(self.engine, "placement", []))

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_special=add_special)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def logits(self, token_ids: Sequence[int], tokens_per_step: int | None = None) -> np.ndarray:
        """Logits (len, n_vocab) float32 for a fresh sequence, every position (teacher forcing).

        The tokens go in as one step (a prefill), or tokens_per_step at a time (1: as in generation)."""
        self.engine.reset()
        ids = np.asarray(token_ids, np.int32)
        if len(ids) == 0:
            raise ValueError("no tokens")
        step = len(ids) if tokens_per_step is None else tokens_per_step
        if step < 1:
            raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step}")
        rows = [self.engine.forward(ids[i:i + step], True) for i in range(0, len(ids), step)]
        return np.concatenate([np.asarray(r, np.float32) for r in rows])

    def stream(self, prompt: str | Sequence[int], max_tokens: int = 64, temperature: float = 0.0,
               top_k: int = 40, top_p: float = 0.95, seed: int | None = None,
               stop_at_eos: bool = True, min_p: float = 0.0) -> Iterator[tuple[int, str]]:
        """Yield (token id, text piece) as each token is generated; stats are in self.stats."""
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) + max_tokens > self.n_ctx:
            raise ValueError(f"prompt ({len(ids)} tokens) + {max_tokens} new tokens exceed n_ctx = {self.n_ctx}")
        sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, min_p=min_p)
        decoder = self.tokenizer.stream_decoder()
        self.stats = stats = GenerationStats(n_prompt=len(ids))
        self.engine.reset()
        t0 = time.perf_counter()
        logits = self.engine.forward(np.asarray(ids, np.int32), False)[-1]
        stats.prompt_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(max_tokens):
            token = sampler.sample(logits)
            stats.n_generated += 1
            if stop_at_eos and token in self.tokenizer.eog_ids:
                break
            yield token, decoder.feed(token)
            if stats.n_generated == max_tokens:
                break
            logits = self.engine.forward(np.asarray([token], np.int32), False)[-1]
        stats.decode_seconds = time.perf_counter() - t0
        tail = decoder.flush()
        if tail:
            yield -1, tail

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 64, temperature: float = 0.0,
                 top_k: int = 40, top_p: float = 0.95, seed: int | None = None) -> str:
        return "".join(piece for _, piece in self.stream(prompt, max_tokens, temperature, top_k, top_p, seed))

    def generate_ids(self, prompt: str | Sequence[int], max_tokens: int = 64, **kw) -> list[int]:
        return [t for t, _ in self.stream(prompt, max_tokens, **kw) if t >= 0]

    def chat_prompt(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Prompt tokens of a conversation ([{"role", "content"}, ...]) rendered by the chat template, ready
        for the assistant's reply."""
        if self.chat_template is None:
            raise ChatTemplateError("this model's GGUF file has no tokenizer.chat_template; give one "
                                    "(llmc.load(..., chat_template='chatml' or a template file))")
        return self.tokenize(self.chat_template.render(messages))

    def chat_stream(self, messages: Sequence[dict[str, Any]], max_tokens: int = 256, **sampling
                    ) -> Iterator[tuple[int, str]]:
        """The assistant's reply to `messages`, streamed as (token id, text piece)."""
        return self.stream(self.chat_prompt(messages), max_tokens, **sampling)

    def chat(self, messages: Sequence[dict[str, Any]], max_tokens: int = 256, **sampling) -> str:
        """The assistant's reply to `messages`, e.g. [{"role": "user", "content": "Hi"}]."""
        return "".join(piece for _, piece in self.chat_stream(messages, max_tokens, **sampling))
