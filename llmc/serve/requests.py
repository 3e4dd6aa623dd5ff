"""Checking the JSON bodies of OpenAI-style requests: every field a client may send is type- and
range-checked here, and a bad one becomes an ApiError (HTTP 400 with an OpenAI-style error body)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmc.runtime.sampling import Sampler

INT32_MAX = 2**31 - 1
MAX_STOP_STRINGS = 16
# llama-server's defaults (tools/server/server.cpp, common/common.h) for fields a request leaves out
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.status}}


def bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass
class Generation:
    """What a completion request asks for, checked."""
    max_tokens: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    sampling: dict[str, Any] = field(default_factory=dict)
    ignore_eos: bool = False      # llama-server's extension: end-of-generation tokens are never sampled

    def sampler(self) -> Sampler:
        return Sampler(**self.sampling)


def _number(body: dict, name: str, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return DEFAULTS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"'{name}' must be a number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise bad(f"'{name}' must be between {lo} and {hi}, got {value}")
    return float(value)


def _integer(body: dict, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"'{name}' must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise bad(f"'{name}' must be between {lo} and {hi}, got {value}")
    return value


def _boolean(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(f"'{name}' must be true or false, got {type(value).__name__}")
    return value


def generation(body: dict) -> Generation:
    """The sampling and stopping fields shared by /v1/chat/completions and /v1/completions."""
    if body.get("n") not in (None, 1):
        raise bad(f"'n' must be 1 (one choice per request), got {body.get('n')!r}")
    max_tokens = None
    for name in ("max_completion_tokens", "max_tokens", "n_predict"):
        if body.get(name) is not None:
            max_tokens = _integer(body, name, 1, INT32_MAX)
            break
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad("'stop' must be a string or a list of strings")
    if len(stop) > MAX_STOP_STRINGS:
        raise bad(f"'stop' takes at most {MAX_STOP_STRINGS} strings, got {len(stop)}")
    stream = _boolean(body.get("stream"), "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad("'stream_options' must be an object")
    include_usage = _boolean((options or {}).get("include_usage"), "stream_options.include_usage")
    seed = _integer(body, "seed", -2**63, 2**64 - 1)
    top_p = _number(body, "top_p", 0.0, 1.0)
    sampling = {"temperature": _number(body, "temperature", 0.0, 2.0),
                "top_k": _integer(body, "top_k", 0, INT32_MAX, DEFAULTS["top_k"]),
                "top_p": max(top_p, 1e-9),            # 0 keeps the most likely token only
                "min_p": _number(body, "min_p", 0.0, 1.0),
                "seed": seed if seed is not None and seed >= 0 else None}   # -1: random, as llama-server
    return Generation(max_tokens, stop, stream, include_usage, sampling,
                      _boolean(body.get("ignore_eos"), "ignore_eos"))


def messages(body: dict) -> list[dict[str, str]]:
    """The conversation of a chat request, content flattened to text ([{"type": "text", ...}] parts)."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"messages[{i}] must be an object with a string 'role'")
        content = m.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                    raise bad(f"messages[{i}].content[{j}]: only text parts ({{\"type\": \"text\", \"text\": ...}}) "
                              "are supported")
                parts.append(part["text"])
            content = "".join(parts)
        elif not isinstance(content, str):
            raise bad(f"messages[{i}].content must be a string or a list of text parts")
        out.append({**m, "content": content})      # other keys (name, tool_calls, ...) reach the template
    return out


def prompt(body: dict, n_vocab: int) -> str | list[int]:
    """The prompt of a completion request: a string, or a list of token ids."""
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if isinstance(p, str):
        return p
    if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
        if not all(0 <= t < n_vocab for t in p):
            raise bad(f"'prompt' token ids must be in 0..{n_vocab - 1}")
        return p
    raise bad("'prompt' must be a string or a non-empty list of token ids")
