"""Per-example gradient norms for the gradient-norm membership attack.

OpenUnlearning `mia_gradnorm`: for each example (batch size 1) back-propagate the mean answer-token
NLL and average the L2 norms of the per-parameter gradients (not a global norm). Members sit in
flat, low-loss regions, so their gradients are smaller. The model's own gradient buffers are
left untouched (gradients go to `torch.autograd.grad` outputs, never into ``.grad``).
"""

from __future__ import annotations

import numpy as np
import torch

from obliviate.data.formatting import PromptFormat, collate, encode_pair
from obliviate import ops
from obliviate.data.task import QAItem


def gradnorms(model: torch.nn.Module, tokenizer, items: list[QAItem], fmt: PromptFormat | None = None,
              p: float = 2.0) -> np.ndarray:
    """Mean over parameter tensors of ‖∇_θ NLL(y|x)‖_p, one value per item."""
    fmt = fmt or PromptFormat()
    params = [q for q in model.parameters() if q.requires_grad] or list(model.parameters())
    device = params[0].device
    was_training = model.training
    model.eval()  # no dropout: the score must be deterministic
    out = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    try:
        for it in items:
            b = collate([encode_pair(tokenizer, fmt.prompt(it.question, tokenizer, it.context),
                                         fmt.answer(it.answer, tokenizer))], pad)
            b = {k: v.to(device) for k, v in b.items()}
            with torch.enable_grad():
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                loss = ops.nll(logits, b["labels"])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms = [g.detach().float().norm(p).item() for g in grads if g is not None]
            out.append(float(np.mean(norms)))
    finally:
        model.train(was_training)
    return np.asarray(out)
