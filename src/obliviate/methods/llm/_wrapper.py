"""Base class for inference-time unlearning: a module that changes a causal LM's logits.

The MUSE WHP baseline (logit combination) and ECO (embedding-corrupted prompts) change no
weights; they return one of these wrappers, which the audit scores like any model: ``forward``
takes ``input_ids`` / ``attention_mask`` and returns an object with ``.logits``, and ``generate``
does greedy decoding (no KV cache: every step recomputes the sequence, which is exact for any
logit transformation and cheap at the audit's answer lengths).
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
    """Subclasses implement ``combined_logits(input_ids, attention_mask) -> (B, T, V)``."""

    @abc.abstractmethod
    def combined_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits of the wrapped model(s) for every position."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object
                ) -> CausalLMOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return CausalLMOutput(logits=self.combined_logits(input_ids, attention_mask))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int = 32, eos_token_id: int | None = None, pad_token_id: int | None = None,
                 do_sample: bool = False, **_: object) -> torch.Tensor:
        """Greedy decoding of (left-padded) prompts; finished rows are filled with ``pad_token_id``."""
        if do_sample:
            raise ValueError(f"{type(self).__name__}.generate supports greedy decoding only (do_sample=False)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
        ids, mask = input_ids, attention_mask
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            nxt = self.combined_logits(ids, mask)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
            if eos_token_id is not None:
                done |= nxt == eos_token_id
            if bool(done.all()):
                break
        return ids
