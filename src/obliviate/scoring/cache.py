"""The scoring cache: one forward pass per example per model, shared by every metric.

For each (model fingerprint, evaluation set, answer field) it stores a `ScoredSet`: per-token
log-probabilities of the answer, argmax hits and full-vocabulary log-prob mean/variance, plus
greedy generations when asked. Metrics read these arrays and never run the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate import ops
from obliviate.data.formatting import Encoded, PromptFormat, collate, encode_pair
from obliviate.models.loading import model_fingerprint
from obliviate.scoring.types import ScoredSet


class ScoringCache:
    """Scores (prompt, answer) lists with a model, memoised by model fingerprint and set key."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat | None = None, batch_size: int = 32,
                 max_length: int = 512, max_new_tokens: int = 48, device: str | torch.device | None = None,
                 attention_mask: str = "real"):
        """``attention_mask``: ``"real"`` masks only padding; ``"non_pad"`` is OpenUnlearning's
        ``input_ids != pad_token_id``, which also hides real tokens that share the pad id inside the
        text (Llama-3's ``<|eot_id|>`` closing the system and user turns when it is the pad token),
        and so moves every score a little. Use it only to reproduce that tool's published numbers."""
        if attention_mask not in ("real", "non_pad"):
            raise ValueError(f"attention_mask must be 'real' or 'non_pad', not {attention_mask!r}")
        self.attention_mask = attention_mask
        self.tokenizer = tokenizer
        self.fmt = fmt or PromptFormat()
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._store: dict[tuple[str, str], ScoredSet] = {}
        self._fp: dict[int, str] = {}
        self.forward_examples = 0  # counters for the audit-cost benchmark
        self.generated_examples = 0

    def fingerprint(self, model: torch.nn.Module) -> str:
        key = id(model)
        if key not in self._fp:
            self._fp[key] = model_fingerprint(model)
        return self._fp[key]

    def forget_model(self, model: torch.nn.Module) -> None:
        """Drop the memoised fingerprint of a model whose weights are about to change."""
        self._fp.pop(id(model), None)

    def score(self, model: torch.nn.Module, key: str, prompts: Sequence[str], answers: Sequence[str],
              ids: Sequence[str] | None = None, generate: bool = False, append_eos: bool | None = None) -> ScoredSet:
        """Score ``answers`` given ``prompts`` (and greedily continue the prompts when ``generate``)."""
        # the texts are part of the key: an attack may re-ask the same set with other prompts
        ck = (self.fingerprint(model), key, hash(tuple(prompts)), hash(tuple(answers)), append_eos)
        cached = self._store.get(ck)
        if cached is not None and (not generate or cached.generations is not None):
            return cached
        eos = self.fmt.append_eos if append_eos is None else append_eos
        if cached is None:
            cached = self._forward(model, prompts, answers, eos)
            cached.ids = list(ids) if ids is not None else [str(i) for i in range(len(prompts))]
        if generate and cached.generations is None:
            cached.generations = self.generate(model, prompts)
        self._store[ck] = cached
        return cached

    @torch.no_grad()
    def _forward(self, model: torch.nn.Module, prompts: Sequence[str], answers: Sequence[str], eos: bool) -> ScoredSet:
        model.eval()
        tok = self.tokenizer
        enc = [encode_pair(tok, p, a, append_eos=eos, max_length=self.max_length) for p, a in zip(prompts, answers)]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        lps, hits, mus, vars_ = [], [], [], []
        order = sorted(range(len(enc)), key=lambda i: len(enc[i].input_ids))  # length-sorted batches pad less
        results: dict[int, tuple] = {}
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            b = self._mask(collate([enc[i] for i in idx], pad, prompt_mask=True), pad)
            b = {k: v.to(self.device) for k, v in b.items()}
            extra = {"prompt_mask": b["prompt_mask"]} if getattr(model, "uses_prompt_mask", False) else {}
            # the model's own dtype for the forward, float32 for the log-softmax
            logits, labels, _ = ops.shift(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                                **extra).logits, b["labels"])
            logits = logits.float()
            logp = torch.log_softmax(logits, -1)
            p = logp.exp()
            mu = (p * logp).sum(-1)
            var = (p * logp.square()).sum(-1) - mu.square()
            tgt_lp = ops.target_logprobs(logp, labels)
            # one device->host copy per batch, then numpy slicing per row
            tgt_lp, mu, var = (t.double().cpu().numpy() for t in (tgt_lp, mu, var.clamp_min(0)))
            argmax_hit = (logits.argmax(-1) == labels).cpu().numpy()
            mask = (labels != -100).cpu().numpy()
            for row, i in enumerate(idx):
                m = mask[row]
                results[i] = (tgt_lp[row][m], argmax_hit[row][m], mu[row][m], var[row][m])
            self.forward_examples += len(idx)
        for i in range(len(enc)):
            lp, h, m_, v = results[i]
            lps.append(lp)
            hits.append(h)
            mus.append(m_)
            vars_.append(v)
        return ScoredSet(lps, hits, mus, vars_, answers=list(answers))

    def _mask(self, batch: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
        if self.attention_mask == "non_pad":
            batch["attention_mask"] = (batch["input_ids"] != pad).long()
        return batch

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, prompts: Sequence[str]) -> list[str]:
        """Greedy continuations of ``prompts``, cut at EOS (and the generation config's stop ids).

        Prompts are encoded exactly as for scoring (one BOS, the question span), length-sorted into
        left-padded batches and generated with the KV cache; a model that corrupts the prompt
        (ECO) receives the question mask as ``prompt_mask``."""
        tok = self.tokenizer
        model.eval()
        enc = [encode_pair(tok, p, "", append_eos=False, max_length=self.max_length) for p in prompts]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        out: list[str] = [""] * len(prompts)
        order = sorted(range(len(enc)), key=lambda i: len(enc[i].input_ids))
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            b = self._mask(left_pad([enc[i] for i in idx], pad), pad)
            kw = {k: v.to(self.device) for k, v in b.items() if k != "prompt_mask" or getattr(model, "uses_prompt_mask", False)}
            gen = model.generate(**kw, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 pad_token_id=pad, eos_token_id=stop_ids(model, tok))
            new = gen[:, b["input_ids"].shape[1]:]
            for i, t in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                out[i] = t.strip()
            self.generated_examples += len(idx)
        return out


def left_pad(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded generation inputs (ids, attention mask, question mask) of encoded prompts."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    qmask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        off = width - len(e.input_ids)
        ids[i, off:] = torch.tensor(e.input_ids)
        mask[i, off:] = 1
        qmask[i, off + e.question_span[0]:off + e.question_span[1]] = 1
    return {"input_ids": ids, "attention_mask": mask, "prompt_mask": qmask}


def stop_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int] | int | None:
    """The tokenizer's EOS plus the model's generation-config EOS ids (an instruct model's end of
    turn, e.g. Llama-3's ``<|eot_id|>``), so each sequence stops at the end of its answer."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    gc = getattr(model, "generation_config", None)
    extra = getattr(gc, "eos_token_id", None) if gc is not None else None
    for i in extra if isinstance(extra, (list, tuple)) else [extra]:
        if i is not None and i not in ids:
            ids.append(int(i))
    return ids or None


def stack_nll(sets: list[ScoredSet]) -> np.ndarray:
    """(n_items, k) mean NLLs of k aligned scored sets (e.g. the perturbed answers)."""
    return np.stack([s.mean_nll() for s in sets], axis=1)
