"""ECO corrupts exactly the question tokens, from the prompt format's token offsets.

Plain tags, a chat template, a user template and raw-text prompts; teacher-forced scoring, greedy
generation, the scoring cache and ``answer_probability``. The corrupted positions are read off the
embedding layer's output (a second hook compares it with the clean embedding rows) and compared with
positions computed independently from ``Encoded.question_span``; the classifier is a recorder that
flags every question except writer 12's.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from obliviate.data.formatting import Encoded, PromptFormat, collate, encode_pair
from obliviate.methods.llm.eco import ECOConfig, ECOWrapper, answer_probability
from obliviate.scoring.cache import ScoringCache, left_pad

CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>"
                 "{% endfor %}{% if add_generation_prompt %}<|start|>assistant\n{% endif %}")
KINDS = ("plain", "chat", "template", "raw")
ROWS = (3, 12, 5)  # writer 12 is not flagged; the rows have different lengths (padding is exercised)


class RecordingClassifier:
    """Stands in for PromptClassifier: records what it is shown, flags all but writer 12."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def flags(self, texts):
        self.calls.append(list(texts))
        return np.array(["writer 12" not in t and "Writer 12" not in t for t in texts])


class CorruptionRecorder:
    """Per embedding call: (input_ids, bool mask of the positions whose embedding was changed)."""

    def __init__(self, model):
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        emb = model.get_input_embeddings()
        # registered after ECO's hook, so it sees the corrupted output
        emb.register_forward_hook(lambda m, inp, out: self.calls.append(
            (inp[0], (out != m.weight[inp[0]]).any(-1))))

    def positions(self, call: int = -1) -> set[tuple[int, int]]:
        return {tuple(p) for p in self.calls[call][1].nonzero().tolist()}


@pytest.fixture
def chat_tokenizer(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _setup(kind, tiny_model, tiny_tokenizer, chat_tokenizer):
    tok = chat_tokenizer if kind == "chat" else tiny_tokenizer
    fmt = {"plain": PromptFormat(), "chat": PromptFormat(kind="chat"), "raw": PromptFormat(append_eos=False),
           "template": PromptFormat(kind="template", template="### Q: {question}\n### A:")}[kind]
    clf = RecordingClassifier()
    # noise on every coordinate: a corrupted embedding always differs from the clean one
    w = ECOWrapper(tiny_model, tok, clf, ECOConfig(corruption="rand_noise_first_n", dims=10_000), 1.0, fmt)
    return w, tok, fmt, clf, CorruptionRecorder(tiny_model)


def _pairs(kind, fmt, tok, items):
    """(question the classifier must see, prompt text, answer text) per row."""
    if kind == "raw":  # a raw-text prompt (MUSE VerbMem): the whole prompt is the question
        return [(f"Writer {i} was born in", f"Writer {i} was born in", " " + items[i].answer.split()[-1])
                for i in ROWS]
    return [(items[i].question, fmt.prompt(items[i].question, tok), fmt.answer(items[i].answer, tok)) for i in ROWS]


def _encode(kind, tok, prompt, answer) -> Encoded:
    return encode_pair(tok, prompt, answer, append_eos=kind != "raw")


def _flagged(question: str) -> bool:
    return "writer 12" not in question and "Writer 12" not in question


@pytest.mark.parametrize("kind", KINDS)
def test_scoring_corrupts_exactly_the_question_tokens(kind, tiny_model, tiny_tokenizer, chat_tokenizer, tiny_items):
    w, tok, fmt, clf, rec = _setup(kind, tiny_model, tiny_tokenizer, chat_tokenizer)
    pairs = _pairs(kind, fmt, tok, tiny_items)
    enc = [_encode(kind, tok, p, a) for _, p, a in pairs]
    assert len({len(e.input_ids) for e in enc}) > 1 and all(e.n_prompt < len(e.input_ids) for e in enc)
    b = collate(enc, tok.pad_token_id, prompt_mask=True)
    with torch.no_grad():
        w(input_ids=b["input_ids"], attention_mask=b["attention_mask"], prompt_mask=b["prompt_mask"])
    expected = {(r, t) for r, ((q, _, _), e) in enumerate(zip(pairs, enc)) if _flagged(q)
                for t in range(*e.question_span)}
    assert expected and rec.positions() == expected
    for r, e in enumerate(enc):  # never a BOS, template or answer token
        assert not rec.calls[-1][1][r, e.n_prompt:].any() and not rec.calls[-1][1][r, :e.question_span[0]].any()
    assert clf.calls == [[q for q, _, _ in pairs]]  # the question text only, never the template
    assert w.last_flags == [True, False, True]


@pytest.mark.parametrize("kind", KINDS)
def test_generation_never_corrupts_generated_tokens(kind, tiny_model, tiny_tokenizer, chat_tokenizer, tiny_items):
    w, tok, fmt, clf, rec = _setup(kind, tiny_model, tiny_tokenizer, chat_tokenizer)
    pairs = _pairs(kind, fmt, tok, tiny_items)
    enc = [_encode(kind, tok, p, "") for _, p, _ in pairs]
    b = left_pad(enc, tok.pad_token_id)
    width = b["input_ids"].shape[1]
    out = w.generate(**b, max_new_tokens=3, eos_token_id=None, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == width + 3 and len(rec.calls) == 3
    # left padding shifts row r by width - len(ids); the prompt's last token (column width - 1) stays clean
    expected = {(r, width - len(e.input_ids) + t) for r, ((q, _, _), e) in enumerate(zip(pairs, enc)) if _flagged(q)
                for t in range(*e.question_span)} - {(r, width - 1) for r in range(len(enc))}
    assert expected
    for step in range(3):
        assert rec.positions(step) == expected, step
        assert rec.calls[step][1].shape[1] == width + step and not rec.calls[step][1][:, width:].any()
    assert clf.calls == [[q for q, _, _ in pairs]]  # classified once per generate call


@pytest.mark.parametrize("kind", ("plain", "chat"))
def test_scoring_cache_passes_the_question_mask(kind, tiny_model, tiny_tokenizer, chat_tokenizer, tiny_items):
    w, tok, fmt, clf, rec = _setup(kind, tiny_model, tiny_tokenizer, chat_tokenizer)
    pairs = _pairs(kind, fmt, tok, tiny_items)
    cache = ScoringCache(tok, fmt, device="cpu", max_new_tokens=2)
    cache.score(w, "forget", [p for _, p, _ in pairs], [it.answer for it in (tiny_items[i] for i in ROWS)],
                generate=True)
    questions = sorted(q for q, _, _ in pairs)
    assert [sorted(c) for c in clf.calls] == [questions, questions]  # decoded question tokens, exactly
    n_question = sorted(e.question_span[1] - e.question_span[0] for (q, p, _), e in
                        zip(pairs, (_encode(kind, tok, p, "") for _, p, _ in pairs)) if _flagged(q))
    for _, corrupted in rec.calls:  # one forward, then two generation steps: the same question tokens
        assert sorted(n for n in corrupted.sum(1).tolist() if n) == n_question


def test_raw_window_without_prompt_is_never_corrupted(tiny_model, tiny_tokenizer, chat_tokenizer):
    w, tok, _, clf, rec = _setup("plain", tiny_model, tiny_tokenizer, chat_tokenizer)
    text_ids = tok("Writer 3 was born in Dunmore.", add_special_tokens=False)["input_ids"]
    window = Encoded([tok.bos_token_id] + text_ids, 1)  # a MUSE window: empty prompt, every token scored
    b = collate([window], tok.pad_token_id, prompt_mask=True)
    with torch.no_grad():
        w(input_ids=b["input_ids"], attention_mask=b["attention_mask"], prompt_mask=b["prompt_mask"])
    assert rec.positions() == set() and clf.calls == [] and w.last_flags == [False]


def test_without_prompt_mask_the_input_is_a_raw_prompt(tiny_model, tiny_tokenizer, chat_tokenizer):
    w, tok, _, clf, rec = _setup("plain", tiny_model, tiny_tokenizer, chat_tokenizer)
    short, long = (tok(t)["input_ids"] for t in ("Writer 3 was born in", "Writer 5 was born in the town of"))
    b = left_pad([Encoded(short, len(short)), Encoded(long, len(long))], tok.pad_token_id)
    width = b["input_ids"].shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # generate on raw prompts is the documented case: no warning
        w.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=2,
                   eos_token_id=None, pad_token_id=tok.pad_token_id)
    # every attended input token but the last (BOS included, as the official code), never a generated one
    expected = {(0, t) for t in range(width - len(short), width - 1)} | {(1, t) for t in range(width - 1)}
    assert rec.positions(0) == expected and rec.positions(1) == expected
    assert clf.calls == [["Writer 3 was born in", "Writer 5 was born in the town of"]]
    with pytest.warns(UserWarning, match="prompt_mask"), torch.no_grad():
        w(input_ids=torch.tensor([short]))
    assert rec.positions() == {(0, t) for t in range(len(short) - 1)}


def test_answer_probability_corrupts_questions_and_classifies_question_strings(
        tiny_model, chat_tokenizer, tiny_items):
    fmt = PromptFormat(kind="chat")
    clf = RecordingClassifier()
    w = ECOWrapper(tiny_model, chat_tokenizer, clf, ECOConfig(corruption="rand_noise_first_n", dims=10_000), 1.0, fmt)
    rec = CorruptionRecorder(tiny_model)
    items = [tiny_items[i] for i in ROWS]
    answer_probability(w, chat_tokenizer, items, fmt)
    assert clf.calls == [[it.question] for it in items]
    for call, it in zip(range(len(items)), items):
        e = fmt.encode(chat_tokenizer, it.question, it.answer)
        want = {(0, t) for t in range(*e.question_span)} if _flagged(it.question) else set()
        assert rec.positions(call) == want


def test_generation_stops_at_any_listed_stop_id(tiny_model, tiny_tokenizer, chat_tokenizer, tiny_items):
    w, tok, fmt, _, _ = _setup("plain", tiny_model, tiny_tokenizer, chat_tokenizer)
    b = left_pad([fmt.encode_prompt(tok, tiny_items[i].question) for i in (3, 5)], tok.pad_token_id)
    width = b["input_ids"].shape[1]
    free = w.generate(**b, max_new_tokens=3, eos_token_id=None, pad_token_id=tok.pad_token_id)
    first = int(free[0, width])
    unused = next(i for i in range(len(tok)) if i not in free[:, width:].tolist()[0] + free[:, width:].tolist()[1])
    # a list of stop ids (EOS + end of turn, as the scoring cache passes): row 0 stops at its first token
    out = w.generate(**b, max_new_tokens=3, eos_token_id=[unused, first], pad_token_id=tok.pad_token_id)
    assert out[0, width] == first and out[0, width + 1:].eq(tok.pad_token_id).all()
    if first not in free[1, width:].tolist():
        assert torch.equal(out[1, width:width + 2], free[1, width:width + 2])
