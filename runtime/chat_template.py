"""Chat templates: a conversation (OpenAI-style messages) rendered into the prompt text the model was
trained on, by the GGUF's own `tokenizer.chat_template` (a jinja2 template, written for HF transformers).

Rendered the way HF transformers renders it (transformers/utils/chat_template_utils.py): a sandboxed
jinja2 environment with trim_blocks and lstrip_blocks, the loop-controls extension, `raise_exception`,
`strftime_now` and a `tojson` filter that keeps non-ASCII text; the variables are messages,
add_generation_prompt, bos_token and eos_token (the token texts). llama.cpp's server renders the same
templates with the same variables (common/chat.cpp), and tokenizes the result with special tokens parsed
and BOS added only where the GGUF asks for it — Tokenizer.encode's defaults.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from llmc.ir.errors import LlmcError

# --chat-template NAME: templates for models whose GGUF carries none (the common formats; each the text of
# the template its model family ships)
BUILTIN_TEMPLATES = {
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
               "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
               "{% endif %}"),
    "llama3": ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    "gemma": ("{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
              "else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
              "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}"
              "{% endif %}"),
}


class ChatTemplateError(LlmcError):
    """A template that does not compile, or a conversation it refuses (its raise_exception)."""


def _raise_exception(message: str):
    raise ChatTemplateError(f"the chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


@dataclass
class ChatTemplate:
    source: str
    bos_token: str = ""
    eos_token: str = ""
    origin: str = "tokenizer.chat_template"

    def compiled(self):
        """The jinja2 template, compiled on first use (a model whose template we cannot read still loads
        and generates; only chat fails, naming the template)."""
        if getattr(self, "_template", None) is not None:
            return self._template
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(self.source)
        except TemplateError as exc:
            raise ChatTemplateError(f"{self.origin}: the chat template does not compile: {exc}") from None
        return self._template

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True, **extra) -> str:
        """The prompt text of `messages` ([{"role": ..., "content": ...}, ...])."""
        from jinja2 import TemplateError
        try:
            return self.compiled().render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         bos_token=self.bos_token, eos_token=self.eos_token, **extra)
        except TemplateError as exc:
            raise ChatTemplateError(f"{self.origin}: rendering failed: {exc}") from None


def template_for(metadata: dict[str, Any], override: str | None = None) -> ChatTemplate | None:
    """The chat template of a GGUF file (None when it has none), or `override`: a built-in name or a file
    holding a jinja2 template."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []

    def token_text(key: str) -> str:
        tid = metadata.get(key)
        return tokens[tid] if isinstance(tid, int) and 0 <= tid < len(tokens) else ""

    bos, eos = token_text("tokenizer.ggml.bos_token_id"), token_text("tokenizer.ggml.eos_token_id")
    if override is None:
        source = metadata.get("tokenizer.chat_template")
        return ChatTemplate(source, bos, eos) if isinstance(source, str) and source else None
    if override in BUILTIN_TEMPLATES:
        return ChatTemplate(BUILTIN_TEMPLATES[override], bos, eos, origin=f"built-in template {override!r}")
    if os.path.isfile(override):
        with open(override, encoding="utf-8") as f:
            template = ChatTemplate(f.read(), bos, eos, origin=override)
        template.compiled()        # a template the user names is checked now
        return template
    raise ChatTemplateError(f"--chat-template {override!r}: not a file and not a built-in template "
                            f"({', '.join(sorted(BUILTIN_TEMPLATES))})")
