"""One prompt format, exactly one BOS in every path, spans as token offsets, `messages` records.

Four tokenizer variants: the chat template writes the BOS, the tokenizer adds it, both, neither;
plus a tokenizer without a BOS token (Qwen2-style). Every path that feeds a model (training,
scoring, generation, gradient norms, the relearn and RESTOR attacks) is checked at the model's
input embedding, so nothing that builds ids on its own can slip past.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from tokenizers import processors

from obliviate.data.formatting import IGNORE_INDEX, PromptFormat, collate, encode_pair
from obliviate.data.io import DataError, read_qa_file
from obliviate.data.task import ForgetTask, QAItem
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.views import build_view
from obliviate.train.loop import TrainConfig, encode_items, run_unlearning

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _variant(tok, template_bos: bool, tokenizer_bos: bool):
    t = copy.deepcopy(tok)
    t.chat_template = ("{{ bos_token }}" if template_bos else "") + TEMPLATE
    if not tokenizer_bos:
        t._tokenizer.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    assert (t("x")["input_ids"][0] == t.bos_token_id) == tokenizer_bos  # the variant is what it says
    return t


VARIANTS = {"template": (True, False), "tokenizer": (False, True), "both": (True, True), "neither": (False, False)}


@pytest.fixture(params=list(VARIANTS))
def chat_tok(request, tiny_tokenizer):
    return _variant(tiny_tokenizer, *VARIANTS[request.param])


class _Recorder:
    """Records every id sequence that starts a forward pass of the model (rows without padding).
    Calls that continue a KV cache (decoding steps, answers scored after a shared prompt prefill)
    carry no prompt, so they are not recorded."""

    def __init__(self, model, pad_id: int):
        self.rows: list[list[int]] = []
        self.pad = pad_id
        self.h = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        continues = cache is not None and cache.get_seq_length() > 0
        if ids is not None and ids.shape[1] > 1 and not continues:
            self.rows += [[int(v) for v in r] for r in ids]

    def bos_counts(self, bos: int) -> set[int]:
        out = set()
        for r in self.rows:
            while r and r[0] == self.pad and self.pad != bos:  # left padding of generation batches
                r = r[1:]
            n = 0
            while n < len(r) and r[n] == bos:
                n += 1
            out.add(n)
        return out


def _task(items):
    return ForgetTask("t", forget=items[:4], retain=items[4:8], holdout=items[8:10])


def test_every_path_sends_exactly_one_bos(chat_tok, tiny_model, tiny_items, monkeypatch):
    from obliviate.attacks.relearn import relearn
    from obliviate.attacks.restor import mcq_accuracy
    from obliviate.scoring.gradnorm import gradnorms

    tok, fmt = chat_tok, PromptFormat(kind="chat", system_prompt="Be brief.")
    rec = _Recorder(tiny_model, tok.pad_token_id)
    task = _task(tiny_items)
    cache = ScoringCache(tok, fmt, batch_size=3, max_new_tokens=3)
    build_view(tiny_model, "m", task, cache)  # scoring + generation
    gradnorms(tiny_model, tok, task.forget[:2], fmt)
    relearn(tiny_model, task, tok, steps=1, fmt=fmt)
    mcq_accuracy(tiny_model, tok, task.forget[:2], ["Nowhere.", "Elsewhere."], fmt)
    run_unlearning(copy.deepcopy(tiny_model), tok, task, __import__("obliviate.registry", fromlist=["get"]).get(
        "method", "ga").obj, None, TrainConfig(max_steps=1, batch_size=2, grad_accum=1, probe_every=0, progress=False),
        fmt)
    assert len(rec.rows) > 20
    assert rec.bos_counts(tok.bos_token_id) == {1}


def test_tokenizer_without_bos_gets_none(tiny_tokenizer, tiny_items):
    tok = _variant(tiny_tokenizer, False, False)
    tok.bos_token = None
    assert tok.bos_token_id is None
    e = PromptFormat(kind="chat").encode(tok, "Where?", "Here.")
    assert tiny_tokenizer.bos_token_id not in e.input_ids


def test_chat_item_matches_a_hand_built_reference(tiny_tokenizer, tiny_model):
    """ids and labels of one chat item, built by hand from the template's text, equal ours in
    training, scoring and generation."""
    tok = _variant(tiny_tokenizer, True, True)  # both would add a BOS: one must remain
    q, a = "Where was writer 3 born?", "Writer 3 was born in Dunmore."
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt_ids = [tok.bos_token_id] + enc(f"<|system|>\nBe brief.<|end|><|user|>\n{q}<|end|><|assistant|>\n")
    ref_ids = prompt_ids + enc(a + "<|end|>") + [tok.eos_token_id]
    ref_labels = [IGNORE_INDEX] * len(prompt_ids) + ref_ids[len(prompt_ids):]
    fmt = PromptFormat(kind="chat", system_prompt="Be brief.")
    item = QAItem(q, a)

    train = collate(encode_items([item], tok, fmt, 256), tok.pad_token_id)
    assert train["input_ids"][0].tolist() == ref_ids
    assert train["labels"][0].tolist() == ref_labels

    rec = _Recorder(tiny_model, tok.pad_token_id)
    cache = ScoringCache(tok, fmt, max_new_tokens=2)
    scored = cache.score(tiny_model, "k", [fmt.prompt(q, tok)], [fmt.answer(a, tok)], generate=True)
    assert rec.rows[0] == ref_ids  # scoring forward
    assert rec.rows[1] == prompt_ids  # generation prompt
    # the scored log-probs are exactly those of the reference labels
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(input_ids=torch.tensor([ref_ids])).logits[0, :-1].float(), -1)
    want = [float(logp[i - 1, t]) for i, t in enumerate(ref_ids) if ref_labels[i] != IGNORE_INDEX]
    assert scored.token_logprobs[0].tolist() == pytest.approx(want, abs=1e-6)


def test_question_span_is_the_question_tokens(tiny_tokenizer):
    tok = _variant(tiny_tokenizer, True, False)
    q = "Where was writer 5 born?"
    for fmt in (PromptFormat(), PromptFormat(kind="chat", system_prompt="Hi."),
                PromptFormat(kind="template", template="### Q: {question}\n### A:")):
        e = fmt.encode(tok, q, "In Fallow.")
        s, t = e.question_span
        assert tok.decode(e.input_ids[s:t]).strip() == q, fmt.kind
        assert 0 < s < t <= e.n_prompt
    raw = encode_pair(tok, "", "Some raw text.", append_eos=False)
    assert raw.n_prompt == 1 and raw.question_span[0] == raw.question_span[1]  # raw text: no question


def test_answer_eos_is_not_doubled_when_the_template_writes_it(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = TEMPLATE.replace("<|end|>", "</s>\n")  # end of turn = EOS, then a newline
    e = PromptFormat(kind="chat").encode(tok, "Where?", "Here.")
    answer = e.input_ids[e.n_prompt:]
    assert answer[-1] == tok.eos_token_id and answer.count(tok.eos_token_id) == 1  # no newline, no second EOS


def test_template_vars_reach_the_template(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = "Today: {{ date_string }}\n" + TEMPLATE
    p = PromptFormat(kind="chat", template_vars={"date_string": "10 Apr 2025"}).prompt("Q?", tok)
    assert p.startswith("Today: 10 Apr 2025\n") and p[slice(*p.question_span)] == "Q?"


def test_auto_picks_chat_when_the_tokenizer_has_a_template(tiny_tokenizer):
    assert PromptFormat.for_tokenizer(tiny_tokenizer).kind == "plain"
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = TEMPLATE
    assert PromptFormat.for_tokenizer(tok).kind == "chat"
    with pytest.raises(ValueError, match="chat template"):
        PromptFormat.for_tokenizer(tiny_tokenizer, "chat")
    with pytest.raises(ValueError, match="question"):
        PromptFormat(kind="template", template="no field")


def test_plain_context_turns_render_as_in_context_examples():
    fmt = PromptFormat()
    p = fmt.prompt("Q2?", None, (("user", "Q1?"), ("assistant", "A1.")))
    assert p == "Question: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer:"
    assert p[slice(*p.question_span)] == "Q2?"


def test_messages_records(tmp_path):
    f = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q0"},
                          {"role": "assistant", "content": "A0"}, {"role": "user", "content": "Q1"},
                          {"role": "assistant", "content": "A1"}], "perturbed_answers": ["B1"]}]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    (it,) = read_qa_file(f)
    assert (it.question, it.answer, it.perturbed_answers) == ("Q1", "A1", ("B1",))
    assert it.context == (("system", "S"), ("user", "Q0"), ("assistant", "A0"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}]}))
    with pytest.raises(DataError, match=r"bad.jsonl:1: 'messages' must end with a user turn"):
        read_qa_file(bad)
