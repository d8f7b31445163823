"""Greedy generation that stops each sequence at its own end: finished rows leave the batch.

`transformers`' ``generate`` keeps every row of a batch in the forward pass until the longest one
is done, so a batch whose answers are mostly short still pays for ``max_new_tokens`` steps of the
whole batch. `greedy_generate` runs the same greedy decoding (prefill, then one token per step on
the KV cache, position ids from the attention mask as ``generate`` computes them) and drops a row
from the batch and from the cache (`DynamicCache.batch_select_indices`) as soon as it emits a stop
id, so the work is the sum of the answers' lengths instead of the batch size times the longest.

It is used only where it computes exactly what ``generate`` would: a plain greedy decode (no
logits processor set in the model's generation config: repetition penalty, forced or suppressed
tokens, minimum length, beams, ...), a model whose forward takes a KV cache (``cache``, or
``past_key_values`` before transformers 5.24) and ``logits_to_keep``, and a cache of plain
full-attention layers. Anything else goes to
``generate`` (`can_prune`); `tests/scoring/test_generate.py` checks the two give the same tokens.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

# generation-config fields that add a logits processor or change the search, with their no-op value
_NEUTRAL: dict[str, Any] = {
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "min_length": 0, "min_new_tokens": 0, "num_beams": 1,
    "num_beam_groups": 1, "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None,
    "exponential_decay_length_penalty": None, "renormalize_logits": False, "stop_strings": None,
    "guidance_scale": 1.0, "watermarking_config": None, "penalty_alpha": None, "dola_layers": None,
    "prompt_lookup_num_tokens": None, "constraints": None, "force_words_ids": None,
}


def can_prune(model: torch.nn.Module) -> bool:
    """Whether `greedy_generate` computes what ``model.generate(do_sample=False)`` does for ``model``."""
    if getattr(model, "uses_prompt_mask", False):
        return False
    gc = getattr(model, "generation_config", None)
    if gc is not None:
        for k, neutral in _NEUTRAL.items():
            v = getattr(gc, k, None)
            if v is not None and v != neutral:
                return False
    return cache_arg(model) is not None


def forward_params(model: torch.nn.Module) -> frozenset[str]:
    """The names the model's ``forward`` takes (empty when its signature cannot be read)."""
    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


def cache_arg(model: torch.nn.Module) -> str | None:
    """The forward's KV-cache argument (``cache`` from transformers 5.24, ``past_key_values`` before),
    or None when the forward does not take one together with ``logits_to_keep``."""
    params = forward_params(model)
    if "logits_to_keep" not in params:
        return None
    return next((n for n in ("cache", "past_key_values") if n in params), None)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """``generate``'s position ids for a (left-)padded batch: the running count of attended tokens,
    0 at each row's first token (padding gets a dummy 1)."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def plain_cache(cache: Any) -> bool:
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers) \
        and hasattr(cache, "batch_select_indices")


@torch.no_grad()
def greedy_generate(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    max_new_tokens: int, stop_ids: list[int] | int | None,
                    prefill: tuple[Any, torch.Tensor] | None = None) -> list[list[int]] | None:
    """The greedy continuation of each left-padded row, without its stop token (``None`` when the
    model's cache is not one this can prune: the caller then uses ``generate``). ``prefill``: the
    rows' prompt KV cache (left-padded like ``input_ids``) and first greedy tokens, already computed
    (by the scoring pass over the same prompts); the prefill forward is then skipped."""
    from transformers import DynamicCache

    stops = torch.tensor([] if stop_ids is None else [stop_ids] if isinstance(stop_ids, int) else list(stop_ids),
                         dtype=torch.long, device=input_ids.device)
    arg = cache_arg(model)
    if arg is None:
        return None
    mask = attention_mask.long()
    pos = positions(mask)
    if prefill is not None:
        cache, nxt = prefill
    else:
        cache = DynamicCache(config=model.config)
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                    **{arg: cache})
        cache = getattr(out, arg, None) or cache
        nxt = out.logits[:, -1].argmax(-1)
    if not plain_cache(cache):
        return None
    alive = torch.arange(input_ids.shape[0], device=input_ids.device)
    last = pos[:, -1]
    result: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    for step in range(max_new_tokens):
        done = torch.isin(nxt, stops)
        for row, tok, d in zip(alive.tolist(), nxt.tolist(), done.tolist()):
            if not d:
                result[row].append(tok)
        keep = (~done).nonzero().squeeze(-1)
        if keep.numel() == 0 or step == max_new_tokens - 1:
            break
        if keep.numel() < alive.numel():
            cache.batch_select_indices(keep)
            alive, mask, nxt, last = alive[keep], mask[keep], nxt[keep], last[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        last = last + 1
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None], use_cache=True,
                    logits_to_keep=1, **{arg: cache})
        nxt = out.logits[:, -1].argmax(-1)
    return result
