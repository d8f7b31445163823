"""WHP (generic labels, anchored terms, MUSE logit variant) and ECO (classifier, corruption, σ search,
wrapper) on hand-made inputs and the tiny fixtures."""

import math

import pytest
import torch

from obliviate.api import unlearn
from obliviate.data.formatting import PromptFormat, collate
from obliviate.methods.llm.eco import ECOWrapper, PromptClassifier, answer_probability, corrupt, zeroth_order_sigma
from obliviate.methods.llm.whp import (align_positions, build_anchor_dictionary, generic_logits, translate)

FMT = PromptFormat()


def test_generic_logits_hand_computed():
    v_b = torch.tensor([2.0, 1.0, 0.0])
    v_r = torch.tensor([5.0, 0.0, 1.0])  # reinforcement raised tokens 0 and 2
    assert generic_logits(v_b, v_r, alpha=2.0).tolist() == [2.0 - 6.0, 1.0, 0.0 - 2.0]


def test_anchor_dictionary_translation_and_alignment():
    forget = ["Where was Velma Quist born? Velma Quist was born in Arlen.", "Velma Quist wrote books."]
    retain = ["Where was John Doe born? John Doe was born in Arlen."]
    d = build_anchor_dictionary(forget, retain)
    assert "Velma Quist" in d and "Arlen" not in d and "Where" not in d
    out = translate(forget[1], d)
    assert "Velma" not in out and out.endswith(" wrote books.")
    assert align_positions([5, 6, 7, 8], [5, 9, 7, 8]) == {0: 0, 2: 2, 3: 3}


def _batch(tok, item):
    """Scoring inputs of one item, with the question mask ECO corrupts."""
    b = collate([FMT.encode(tok, item.question, item.answer)], tok.pad_token_id, prompt_mask=True)
    return {k: b[k] for k in ("input_ids", "attention_mask", "prompt_mask")}


def test_whp_raises_forget_nll_and_keeps_retain(tiny_model, tiny_tokenizer, tiny_task):
    from obliviate.train.sft import SFTConfig, sft
    from obliviate.train.loop import encode_items

    model = tiny_model
    sft(model, tiny_tokenizer, encode_items(tiny_task.forget + tiny_task.retain, tiny_tokenizer, FMT, 64),
        SFTConfig(steps=150, lr=3e-3, batch_size=16, warmup_steps=5))
    before_f = answer_probability(model, tiny_tokenizer, tiny_task.forget, FMT)
    before_r = answer_probability(model, tiny_tokenizer, tiny_task.retain, FMT)
    # anchored terms: each forgotten writer's name -> a generic stand-in (WHP's dictionary)
    anchors = {}
    for it in tiny_task.forget:
        n = it.id[1:]
        anchors.update({f"writer {n}": "someone", f"Writer {n}": "Someone"})
    res = unlearn(model, tiny_tokenizer, tiny_task, method="whp", alpha=5.0, anchors=anchors,
                  train={"epochs": 10, "lr": 2e-3, "batch_size": 8, "grad_accum": 1, "progress": False})
    after_f = answer_probability(res.model, tiny_tokenizer, tiny_task.forget, FMT)
    after_r = answer_probability(res.model, tiny_tokenizer, tiny_task.retain, FMT)
    assert after_f < 0.75 * before_f, (before_f, after_f)  # forget answer probability falls by a quarter+
    assert after_r > before_r - 0.2, (before_r, after_r)  # stated tolerance


def test_corruption_functions_hand_computed():
    e = torch.tensor([[1.0, -3.0, 2.0], [0.5, 0.25, -0.125]])  # exact in float32
    g = torch.Generator().manual_seed(0)
    assert corrupt(e, "zero_out_first_n", 2, 1.0, g).tolist() == [[0.0, 0.0, 2.0], [0.0, 0.0, -0.125]]
    assert corrupt(e, "flip_sign_top_k", 1, 1.0, g).tolist() == [[1.0, 3.0, 2.0], [-0.5, 0.25, -0.125]]
    assert corrupt(e, "zero_out_top_k", 2, 1.0, g).tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, -0.125]]
    noisy = corrupt(e, "rand_noise_first_n", 1, 10.0, g)
    assert torch.equal(noisy[:, 1:], e[:, 1:]) and not torch.equal(noisy[:, 0], e[:, 0])


def test_zeroth_order_loop_follows_the_official_update():
    # S(σ) = 1 / (1 + σ): ĝ < 0, so σ grows until S reaches the target
    sigma, trace = zeroth_order_sigma(lambda s: 1 / (1 + s), sigma0=0.1, eps_ratio=0.999, lr=100.0, steps=10,
                                      target=0.05)
    assert trace[0][0] == 0.1 and sigma > 0.1
    s0, e = 0.1, 0.0999
    g = (1 / (1 + s0 + e) - 1 / (1 + max(s0 - e, 1e-8))) / (2 * e)
    assert trace[1][0] == pytest.approx(max(s0 - 100.0 * g, s0))
    assert trace[-1][1] <= 0.05 or len(trace) == 10


def test_eco_wrapper_corrupts_flagged_prompts_only(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    res = unlearn(tiny_model, tiny_tokenizer, tiny_task, method="eco", corruption="rand_noise_first_n", dims=4,
                  target_score=0.0, zo_steps=2, train={"progress": False})
    w = res.model
    assert isinstance(w, ECOWrapper)
    clf = w.classifier
    assert clf.flags([it.question for it in tiny_task.forget]).mean() >= 0.75
    assert clf.flags([it.question for it in tiny_task.retain]).mean() <= 0.05
    retain, forget = _batch(tiny_tokenizer, tiny_task.retain[0]), _batch(tiny_tokenizer, tiny_task.forget[0])
    with torch.no_grad():
        assert torch.equal(w(**retain).logits, tiny_model(input_ids=retain["input_ids"]).logits)
        assert w.last_flags == [False]
        assert not torch.allclose(w(**forget).logits, tiny_model(input_ids=forget["input_ids"]).logits)
        assert w.last_flags == [True]
    # saved as safetensors + JSON (no pickle) and restored with the same behaviour
    w.save(tmp_path / "eco")
    again = ECOWrapper.load(tmp_path / "eco")
    assert again.sigma == w.sigma and again.classifier.threshold == pytest.approx(clf.threshold)
    assert again.uses_prompt_mask
    with torch.no_grad():
        assert torch.allclose(again(**forget).logits, w(**forget).logits, atol=1e-5)


def test_prompt_classifier_state_round_trip():
    clf = PromptClassifier("tfidf").fit(["who is velma quist", "velma quist books"],
                                        ["capital of france", "boiling point of water", "who wrote hamlet"], 0.0)
    again = PromptClassifier.from_state(clf.state())
    texts = ["velma quist birthplace", "capital of spain"]
    assert again.score(texts) == pytest.approx(clf.score(texts))
    assert math.isfinite(clf.threshold)
