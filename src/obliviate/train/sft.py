"""Plain supervised fine-tuning (answer-token NLL), used to build benchmark models.

The built-in benchmark's base, target and oracle models are trained with this function so
that the oracle is an *exact* retrain: same code, seed, step count and schedule as the target,
on the retain data only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from obliviate.data.formatting import Encoded, collate
from obliviate.methods import losses


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 600
    lr: float = 3e-3  # tiny models from scratch tolerate a large lr
    batch_size: int = 32
    weight_decay: float = 0.0
    warmup_steps: int = 30
    seed: int = 0


def sft(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Encoded], cfg: SFTConfig,
        progress: str | None = None) -> list[float]:
    """Train ``model`` in place on ``examples`` for exactly ``cfg.steps`` steps; returns the losses.

    Batches are drawn by reshuffling the examples every pass with ``random.Random(seed)``, so two
    runs with the same seed and step count see the same schedule whatever the data size.
    """
    from obliviate.train.loop import _progress, _schedule, seed_everything

    seed_everything(cfg.seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.steps)
    plan = _schedule(len(examples), min(cfg.batch_size, len(examples)), cfg.steps, random.Random(cfg.seed))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    out: list[float] = []
    with _progress(progress is not None) as bar:
        tid = bar.add_task(progress or "train", total=cfg.steps, info="")
        for step, idx in enumerate(plan):
            b = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad).items()}
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            loss = losses.nll(logits, b["labels"])
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"training diverged at step {step} (loss {loss.item()}); lower the learning rate")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            out.append(loss.item())
            bar.update(tid, advance=1, info=f"loss {loss.item():.3f}")
    model.eval()
    return out


def sft_on_items(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items, fmt, train, *,
                 texts: Sequence[str] = (), epochs: float | None = None, lr: float | None = None) -> list[float]:
    """Fine-tune ``model`` in place on QA ``items`` (loss on the answers) and raw ``texts`` (cut into
    ``max_length``-token windows, every token a label, as the training loop does) with a run's
    TrainConfig: effective batch ``batch_size x grad_accum``, ``max_steps`` or ``epochs`` passes over
    the examples (``epochs``/``lr`` override)."""
    from obliviate.train.loop import encode_items, encode_texts

    examples = encode_items(list(items), tokenizer, fmt, train.max_length) + encode_texts(texts, tokenizer,
                                                                                          train.max_length)
    if not examples:
        raise ValueError("nothing to fine-tune on: no question/answer items and no raw texts were given")
    bs = min(train.batch_size * train.grad_accum, len(examples))
    n_epochs = train.epochs if epochs is None else epochs
    steps = train.max_steps or max(1, math.ceil(n_epochs * len(examples) / bs))
    cfg = SFTConfig(steps=steps, lr=lr or train.lr, batch_size=bs, weight_decay=train.weight_decay,
                    warmup_steps=train.warmup_steps, seed=train.seed)
    return sft(model, tokenizer, examples, cfg)


def reinforced_copy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, task, fmt, train, *,
                    epochs: float | None = None, lr: float | None = None, path: str = "") -> torch.nn.Module:
    """A copy of ``model`` fine-tuned further on the forget data: its QA items and its raw texts.

    The "reinforced" / "ft" model of task-vector negation (Ilharco et al.; MUSE ``task_vector.py``)
    and of Who's Harry Potter (Eldan & Russinovich; MUSE's WHP reuses the task vector's ft model).
    ``epochs`` / ``lr`` override the run's TrainConfig. With ``path``, a model saved there is loaded
    instead of trained (it does not depend on the methods' other settings, so task_vector, whp and
    whp_logit can share one), and a freshly trained one is saved there; a stale folder is the
    caller's to delete.
    """
    import copy
    from pathlib import Path

    if path and (Path(path) / "config.json").exists():
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=model.dtype)
        return loaded.to(next(model.parameters()).device).eval()
    reinforced = copy.deepcopy(model)
    sft_on_items(reinforced, tokenizer, task.forget, fmt, train, texts=task.forget_texts, epochs=epochs, lr=lr)
    if path:
        from obliviate.models.loading import save_model_atomic

        save_model_atomic(reinforced, None, path)
    return reinforced.eval()
