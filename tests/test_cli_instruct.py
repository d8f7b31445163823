"""The CLI on an instruct model: its chat template picked automatically, a system prompt and template
variables, `messages` data, and the same ids in unlearning and audit."""

from __future__ import annotations

import copy
import json

import pytest

from obliviate.cli import main

TEMPLATE = ("{{ bos_token }}{% if date_string is defined %}Date: {{ date_string }}\n{% endif %}"
            "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture
def instruct_dir(tmp_path, tiny_model, tiny_tokenizer):
    from obliviate.models.loading import save_model_atomic

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = TEMPLATE
    return save_model_atomic(tiny_model, tok, tmp_path / "instruct")


def _write_messages(path, items, system=None):
    rows = []
    for it in items:
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": it.question}, {"role": "assistant", "content": it.answer}]
        rows.append(json.dumps({"messages": msgs}))
    path.write_text("\n".join(rows) + "\n")


def test_unlearn_and_audit_an_instruct_model_in_its_chat_format(tmp_path, instruct_dir, tiny_task, monkeypatch):
    from obliviate.data import formatting

    seen: list[str] = []
    real = formatting.encode_pair

    def spy(tokenizer, prompt, answer, **kw):
        seen.append(str(prompt))
        return real(tokenizer, prompt, answer, **kw)

    monkeypatch.setattr(formatting, "encode_pair", spy)
    for mod in ("obliviate.train.loop", "obliviate.scoring.cache"):
        monkeypatch.setattr(f"{mod}.encode_pair", spy)
    f, r = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    _write_messages(f, tiny_task.forget)
    _write_messages(r, tiny_task.retain)
    out = tmp_path / "out"
    main(["unlearn", "--method", "npo", "--model", str(instruct_dir), "--forget", str(f), "--retain", str(r),
          "--out", str(out), "--system_prompt", "You are a helpful assistant.",
          "--template_var", "date_string=10 Apr 2025", "--train", "max_steps=2", "--train", "batch_size=4",
          "--train", "progress=false"])
    run = json.loads((out / "run.json").read_text())
    assert run["prompt_format"] == {"kind": "chat", "system_prompt": "You are a helpful assistant.",
                                    "template_vars": {"date_string": "10 Apr 2025"}, "template": None}
    train_prompts = list(seen)
    q = tiny_task.forget[0].question
    want = (f"<s>Date: 10 Apr 2025\n<|system|>\nYou are a helpful assistant.<|end|><|user|>\n{q}<|end|>"
            "<|assistant|>\n")
    assert want in train_prompts
    seen.clear()
    main(["audit", "--model", f"unlearned={out}", "--reference", str(instruct_dir), "--forget", str(f),
          "--retain", str(r), "--metrics", "forget_prob", "forget_rouge", "--system_prompt",
          "You are a helpful assistant.", "--template_var", "date_string=10 Apr 2025", "--max_new_tokens", "4",
          "--out", str(tmp_path / "audit.json")])
    assert want in seen  # the audit scores and generates in the same format
    rep = json.loads((tmp_path / "audit.json").read_text())
    assert set(rep["models"]["unlearned"]["metrics"]) == {"forget_prob", "forget_rouge"}


def test_plain_format_can_be_forced_on_an_instruct_model(tmp_path, instruct_dir, tiny_task, monkeypatch):
    from obliviate.data import formatting

    seen: list[str] = []
    real = formatting.encode_pair
    monkeypatch.setattr("obliviate.train.loop.encode_pair",
                        lambda tok, p, a, **kw: seen.append(str(p)) or real(tok, p, a, **kw))
    f = tmp_path / "forget.jsonl"
    _write_messages(f, tiny_task.forget)
    main(["unlearn", "--method", "ga", "--model", str(instruct_dir), "--forget", str(f), "--out",
          str(tmp_path / "o"), "--prompt_format", "plain", "--train", "max_steps=1", "--train", "progress=false",
          "--train", "probe_every=0"])
    assert f"Question: {tiny_task.forget[0].question}\nAnswer:" in seen
