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


def test_audit_scores_each_model_with_its_own_tokenizer(tmp_path, tiny_model, tiny_tokenizer, tiny_task):
    """Two models with different tokenizers in one audit: each is scored as it is alone."""
    from obliviate.models.loading import save_model_atomic
    from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer

    other_tok = train_tokenizer([f"{it.question} {it.answer}" for it in tiny_task.forget] * 5, vocab_size=280)
    other = build_tiny_llama(len(other_tok), TinyLlamaConfig(hidden_size=32, num_hidden_layers=2,
                                                             num_attention_heads=2, intermediate_size=64), seed=1,
                             pad_token_id=other_tok.pad_token_id, bos_token_id=other_tok.bos_token_id,
                             eos_token_id=other_tok.eos_token_id)
    a = save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "a")
    b = save_model_atomic(other, other_tok, tmp_path / "b")
    f = tmp_path / "forget.jsonl"
    _write_messages(f, tiny_task.forget)
    common = ["--forget", str(f), "--metrics", "forget_prob", "--max_new_tokens", "2"]
    main(["audit", "--model", f"a={a}", f"b={b}", *common, "--out", str(tmp_path / "both.json")])
    main(["audit", "--model", f"b={b}", *common, "--out", str(tmp_path / "b.json")])
    main(["audit", "--model", f"a={a}", *common, "--out", str(tmp_path / "a.json")])
    both = json.loads((tmp_path / "both.json").read_text())["models"]
    for name in ("a", "b"):
        alone = json.loads((tmp_path / f"{name}.json").read_text())["models"][name]
        assert both[name]["metrics"]["forget_prob"]["value"] == alone["metrics"]["forget_prob"]["value"]
