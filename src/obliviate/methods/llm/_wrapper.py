"""Base class for inference-time unlearning: a module that changes a causal LM's logits.

The MUSE WHP baseline (logit combination) and ECO (embedding-corrupted prompts) change no
weights; they return one of these wrappers, which the audit scores like any model: ``forward``
takes ``input_ids`` / ``attention_mask`` and returns an object with ``.logits``, and ``generate``
does greedy decoding (no KV cache: every step recomputes the sequence, which is exact for any
logit transformation and cheap at the audit's answer lengths).

A wrapper that needs to know which input tokens are the user's question (ECO corrupts them) sets
``uses_prompt_mask = True``: the scoring cache then passes ``prompt_mask`` (B, T), 1 on each row's
question tokens as `formatting.collate(..., prompt_mask=True)` / `scoring.cache.left_pad` build it,
to ``forward`` and ``generate``, and ``combined_logits`` receives it as a keyword. ``generate``
extends it with zeros as it appends tokens, so a generated token is never part of the prompt.
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutput


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding (what `generate` uses for left-padded batches)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class LogitsWrapper(nn.Module, abc.ABC):
    """Subclasses implement ``combined_logits(input_ids, attention_mask) -> (B, T, V)`` (with a
    ``prompt_mask`` keyword when they set ``uses_prompt_mask``)."""

    uses_prompt_mask: bool = False  # True: forward/generate take the question-token mask (module docstring)

    @abc.abstractmethod
    def combined_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits of the wrapped model(s) for every position."""

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor, prompt_mask: torch.Tensor | None) -> torch.Tensor:
        if self.uses_prompt_mask:
            return self.combined_logits(ids, mask, prompt_mask=prompt_mask)
        return self.combined_logits(ids, mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, **_: object) -> CausalLMOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return CausalLMOutput(logits=self._logits(input_ids, attention_mask, prompt_mask))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 prompt_mask: torch.Tensor | None = None, max_new_tokens: int = 32,
                 eos_token_id: int | list[int] | None = None,
                 pad_token_id: int | None = None, do_sample: bool = False, **_: object) -> torch.Tensor:
        """Greedy decoding of (left-padded) prompts; finished rows are filled with ``pad_token_id``.
        ``eos_token_id`` may list several stop ids (EOS and an end of turn, as the scoring cache
        passes); ``prompt_mask`` (aligned with ``input_ids``) grows by a 0 per generated token."""
        if do_sample:
            raise ValueError(f"{type(self).__name__}.generate supports greedy decoding only (do_sample=False)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        stops = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []),
                             dtype=torch.long, device=input_ids.device)
        pad = pad_token_id if pad_token_id is not None else (int(stops[0]) if len(stops) else 0)
        ids, mask, pm = input_ids, attention_mask, prompt_mask
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            nxt = self._logits(ids, mask, pm)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
            if pm is not None:  # a generated token is never part of the prompt
                pm = torch.cat([pm, torch.zeros_like(pm[:, :1])], dim=1)
            if len(stops):
                done |= torch.isin(nxt, stops)
            if bool(done.all()):
                break
        return ids
