"""runtime/chat_template.py: rendering as HF transformers does (trim_blocks, lstrip_blocks, raise_exception,
tojson keeping non-ASCII, bos_token), built-in templates, and clear errors."""
from __future__ import annotations

import pytest

from llmc.runtime.chat_template import ChatTemplate, ChatTemplateError, template_for

MESSAGES = [{"role": "system", "content": "Sé brief."}, {"role": "user", "content": "Hi"}]
METADATA = {"tokenizer.ggml.tokens": ["<s>", "</s>", "a"], "tokenizer.ggml.bos_token_id": 0,
            "tokenizer.ggml.eos_token_id": 1}


def test_blocks_are_trimmed_and_variables_bound():
    # the newline after a block tag goes (trim_blocks), and so does the indentation before one (lstrip_blocks)
    source = ("{{ bos_token }}\n    {% for m in messages %}\n[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}\n"
              "    {% endfor %}\n{% if add_generation_prompt %}[assistant]{% endif %}")
    t = ChatTemplate(source, "<s>", "</s>")
    assert t.render(MESSAGES) == "<s>\n[system] Sé brief.</s>\n[user] Hi</s>\n[assistant]"
    assert t.render(MESSAGES, add_generation_prompt=False).endswith("Hi</s>\n")


def test_tojson_keeps_non_ascii_and_raise_exception_is_an_error():
    assert ChatTemplate("{{ messages[0] | tojson }}").render(MESSAGES) == '{"role": "system", "content": "Sé brief."}'
    refusing = ChatTemplate("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}")
    with pytest.raises(ChatTemplateError, match="refused the conversation: no system role"):
        refusing.render(MESSAGES)


def test_builtin_and_file_templates(tmp_path):
    chatml = template_for(METADATA, "chatml")
    assert chatml.render(MESSAGES) == ("<|im_start|>system\nSé brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                       "<|im_start|>assistant\n")
    assert template_for(METADATA, "llama3").render(MESSAGES).startswith("<s><|start_header_id|>system")
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}{{ m.content }}|{% endfor %}")
    assert template_for(METADATA, str(path)).render(MESSAGES) == "Sé brief.|Hi|"
    assert template_for(METADATA) is None                        # the file has none, and none is asked for
    assert template_for({**METADATA, "tokenizer.chat_template": "{{ bos_token }}x"}).render([]) == "<s>x"


def test_bad_templates_name_the_problem(tmp_path):
    with pytest.raises(ChatTemplateError, match="not a file and not a built-in template \\(chatml, gemma, llama3\\)"):
        template_for(METADATA, "vicuna")
    path = tmp_path / "broken.jinja"
    path.write_text("{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="broken.jinja: the chat template does not compile"):
        template_for(METADATA, str(path))
