"""Pruned greedy generation gives the tokens transformers' generate gives, and stops each row early."""

import torch

from obliviate.data.formatting import PromptFormat
from obliviate.scoring.cache import ScoringCache, left_pad, stop_ids
from obliviate.scoring.generate import can_prune, greedy_generate


def _batch(tok, questions):
    from obliviate.data.formatting import encode_pair

    fmt = PromptFormat()
    enc = [encode_pair(tok, fmt.prompt(q), "", append_eos=False, max_length=512) for q in questions]
    return left_pad(enc, tok.pad_token_id)


def test_same_tokens_as_generate_with_rows_leaving_early(tiny_model, tiny_tokenizer, tiny_items):
    tok, model = tiny_tokenizer, tiny_model.eval()
    b = _batch(tok, [it.question for it in tiny_items[:6]])
    # a stop id this random model emits early in some rows and late or never in others
    with torch.no_grad():
        ref = model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=12,
                             do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
    new = ref[:, b["input_ids"].shape[1]:]
    stop = int(new[0, 3])  # row 0 stops at its 4th token
    with torch.no_grad():
        want = model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=12,
                              do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=stop)
    want = want[:, b["input_ids"].shape[1]:].tolist()
    got = greedy_generate(model, b["input_ids"], b["attention_mask"], 12, [stop])
    assert got is not None
    for g, w in zip(got, want):
        cut = w.index(stop) if stop in w else len(w)
        assert g == w[:cut]
    lengths = [len(g) for g in got]
    assert min(lengths) < 12 and lengths[0] == 3, lengths


def test_the_cache_generates_the_same_text_pruned_or_not(tiny_model, tiny_tokenizer, tiny_items):
    prompts = [PromptFormat().prompt(it.question) for it in tiny_items[:7]]
    fast = ScoringCache(tiny_tokenizer, batch_size=4, max_new_tokens=10)
    slow = ScoringCache(tiny_tokenizer, batch_size=4, max_new_tokens=10)
    slow.prune_finished = False
    assert can_prune(tiny_model)
    assert fast.generate(tiny_model, prompts) == slow.generate(tiny_model, prompts)


def test_a_logits_processor_in_the_generation_config_falls_back_to_generate(tiny_model, tiny_tokenizer):
    assert can_prune(tiny_model)
    tiny_model.generation_config.repetition_penalty = 1.3
    assert not can_prune(tiny_model)
    tiny_model.generation_config.repetition_penalty = 1.0
    assert can_prune(tiny_model)
    assert stop_ids(tiny_model, tiny_tokenizer)  # the EOS at least
