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


def test_the_generation_batch_is_sized_by_the_kv_cache_budget(tiny_model, tiny_tokenizer, tiny_items):
    from obliviate.scoring.cache import kv_bytes_per_token

    cfg = tiny_model.config
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_token = cfg.num_hidden_layers * 2 * kv_heads * head_dim * 4  # float32
    assert kv_bytes_per_token(tiny_model) == per_token
    cache = ScoringCache(tiny_tokenizer, batch_size=4, max_new_tokens=10, gen_kv_budget=per_token * 30 * 7)
    assert cache.gen_rows(tiny_model, 20, 100) == 7  # 7 rows of 20 + 10 tokens fill the budget
    assert cache.gen_rows(tiny_model, 20, 5) == 5  # never more rows than prompts
    assert cache.gen_rows(tiny_model, 200, 100) == 4  # never fewer than batch_size
    assert ScoringCache(tiny_tokenizer, batch_size=4, gen_batch_size=3).gen_rows(tiny_model, 20, 100) == 3
    # the batch size changes how the prompts are batched, not what is generated
    prompts = [PromptFormat().prompt(it.question) for it in tiny_items[:9]]
    one = ScoringCache(tiny_tokenizer, batch_size=2, max_new_tokens=10)
    assert one.gen_rows(tiny_model, 40, 9) == 9
    assert one.generate(tiny_model, prompts) == ScoringCache(tiny_tokenizer, batch_size=2, max_new_tokens=10,
                                                             gen_batch_size=2).generate(tiny_model, prompts)
