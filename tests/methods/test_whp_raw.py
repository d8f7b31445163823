"""WHP on raw text (the paper's setting: a book, not QA pairs) and the cached reinforced model."""

from __future__ import annotations

import torch

from obliviate.data.formatting import PromptFormat
from obliviate.data.task import ForgetTask
from obliviate.methods.llm import whp as whp_mod
from obliviate.train.loop import TrainConfig, encode_texts

FORGET = ["Velma Quist lived in Arlen and wrote about Corin Fallow every winter. " * 3,
          "Corin Fallow was the friend of Velma Quist in the tales of Arlen. " * 3]
RETAIN = ["Writer 9 was born in Bexley and wrote about rivers. " * 3]


def _task(items):
    return ForgetTask("raw", forget=[], retain=items[8:12], forget_texts=FORGET, retain_texts=RETAIN)


def _window_nll(model, tok, texts):
    from obliviate.methods import losses
    from obliviate.data.formatting import collate

    b = collate(encode_texts(texts, tok, 64), tok.pad_token_id)
    with torch.no_grad():
        return float(losses.nll(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                b["labels"]))


def test_whp_on_raw_text_builds_labels_for_every_window_token(tiny_model, tiny_tokenizer, tiny_items):
    tok, task = tiny_tokenizer, _task(tiny_items)
    pairs = whp_mod.generic_labels(tiny_model, tiny_model, tok, task, PromptFormat(), 1.0,
                                   {"Velma Quist": "Jon Lee"}, 64)
    windows = encode_texts(FORGET, tok, 64)
    assert len(pairs) == len(windows)
    for (ids, labels), w in zip(pairs, windows):
        assert ids == w.input_ids and labels[0] == -100 and all(v >= 0 for v in labels[1:])


def test_whp_raw_text_run_forgets_and_caches_the_reinforced_model(tiny_model, tiny_tokenizer, tiny_items, tmp_path,
                                                                  monkeypatch):
    tok, task = tiny_tokenizer, _task(tiny_items)
    train = TrainConfig(lr=3e-3, epochs=5, batch_size=4, grad_accum=1, max_length=64, progress=False)
    cfg = whp_mod.WHPConfig(alpha=2.0, reinforce_epochs=10, reinforce_lr=3e-3, reinforced_path=str(tmp_path / "r"))
    before = _window_nll(tiny_model, tok, FORGET)
    out = whp_mod.whp(cfg, __import__("copy").deepcopy(tiny_model), task, tokenizer=tok, train=train,
                      fmt=PromptFormat())
    assert (tmp_path / "r" / "model.safetensors").exists()
    assert "Velma Quist" in out.whp_anchors  # the dictionary is built from the raw forget text
    # generic labels differ from the text, so the forget text's own tokens become less likely
    assert _window_nll(out, tok, FORGET) > before
    calls = []
    import obliviate.train.sft as sft_mod

    monkeypatch.setattr(sft_mod, "sft", lambda *a, **k: calls.append(1))
    whp_mod.whp(cfg, __import__("copy").deepcopy(tiny_model), task, tokenizer=tok, train=train, fmt=PromptFormat())
    assert calls == []  # the second run loads the cached reinforced model instead of training one
