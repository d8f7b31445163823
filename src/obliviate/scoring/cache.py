"""The scoring cache: one forward pass per example per model, shared by every metric.

For each (model fingerprint, evaluation set, answer field) it stores a `ScoredSet`: per-token
log-probabilities of the answer, argmax hits and full-vocabulary log-prob mean/variance, plus
greedy generations when asked. Metrics read these arrays and never run the model.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate import ops
from obliviate.data.formatting import Encoded, PromptFormat, collate, encode_pair
from obliviate.models.loading import model_fingerprint
from obliviate.scoring.generate import cache_arg, can_prune, forward_params, greedy_generate, plain_cache, positions
from obliviate.scoring.types import ScoredSet


class ScoringCache:
    """Scores (prompt, answer) lists with a model, memoised by model fingerprint and set key."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat | None = None, batch_size: int = 32,
                 max_length: int = 512, max_new_tokens: int = 48, device: str | torch.device | None = None,
                 attention_mask: str = "real", gen_batch_size: int | None = None,
                 gen_kv_budget: int = 2 * 2**30):
        """``attention_mask``: ``"real"`` masks only padding; ``"non_pad"`` is OpenUnlearning's
        ``input_ids != pad_token_id``, which also hides real tokens that share the pad id inside the
        text (Llama-3's ``<|eot_id|>`` closing the system and user turns when it is the pad token),
        and so moves every score a little. Use it only to reproduce that tool's published numbers.

        ``gen_batch_size``: prompts per generation batch. By default (None) as many as keep the
        batch's KV cache (prompt + ``max_new_tokens`` tokens per row, from the model config's layers,
        key/value heads, head size and dtype) within ``gen_kv_budget`` bytes, at least ``batch_size``:
        finished rows leave a batch, so every extra batch repeats the long tail of decode steps whose
        fixed cost (one pass over the weights) does not shrink with the rows left."""
        if attention_mask not in ("real", "non_pad"):
            raise ValueError(f"attention_mask must be 'real' or 'non_pad', not {attention_mask!r}")
        self.attention_mask = attention_mask
        self.prune_finished = True  # `obliviate.scoring.generate`; False: transformers' generate for every batch
        self.trim_logits = True  # LM head on answer positions only (see `_forward`); False: the full pass
        self.tokenizer = tokenizer
        self.fmt = fmt or PromptFormat()
        self.batch_size = batch_size
        self.gen_batch_size = gen_batch_size  # None: sized by gen_kv_budget (`gen_rows`)
        self.gen_kv_budget = gen_kv_budget
        # (model fingerprint, prompt ids) -> (per-layer key/value of the prompt's tokens, first greedy
        # token), kept by `score_group(keep_kv=True)` for `generate`, which uses each entry once
        self._prompt_kv: dict[tuple[str, tuple[int, ...]], tuple[list[tuple[torch.Tensor, torch.Tensor]], int]] = {}
        self._prompt_kv_bytes = 0
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._store: dict[tuple[str, str], ScoredSet] = {}
        self._fp: dict[int, str] = {}
        self.forward_examples = 0  # counters for the audit-cost benchmark
        self.generated_examples = 0
        self.forward_seconds = 0.0  # wall time in scoring passes and in generation (where an audit spends it)
        self.generate_seconds = 0.0
        # token positions the scoring passes ran (prompts and answers, padding included) and the real
        # tokens among them: the padding waste is 1 - real / run (`padding_waste`)
        self.positions_run = 0
        self.positions_real = 0

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
            t0 = time.perf_counter()
            cached = self._forward(model, prompts, answers, eos)
            self.forward_seconds += time.perf_counter() - t0
            cached.ids = list(ids) if ids is not None else [str(i) for i in range(len(prompts))]
        if generate and cached.generations is None:
            self.generate_into(model, [(cached, prompts)])
        self._store[ck] = cached
        return cached

    @torch.no_grad()
    def _forward(self, model: torch.nn.Module, prompts: Sequence[str], answers: Sequence[str], eos: bool) -> ScoredSet:
        """Per-answer-token log p(y_t), argmax hits and full-vocabulary log-prob mean / variance.

        Batches are length-sorted. Where the model's forward takes ``logits_to_keep`` (and no
        ``prompt_mask``), each batch is left-padded with position ids counted from each row's first
        token, so every answer ends in the last column and the LM head runs only on the last
        (longest answer + 1) positions; the log-softmax and its statistics run only on answer
        tokens. The numbers are those of a full right-padded pass (`tests/scoring/test_cache.py`)."""
        model.eval()
        tok = self.tokenizer
        enc = [encode_pair(tok, p, a, append_eos=eos, max_length=self.max_length) for p, a in zip(prompts, answers)]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        trim = (self.trim_logits and not getattr(model, "uses_prompt_mask", False)
                and "logits_to_keep" in forward_params(model))
        order = sorted(range(len(enc)), key=lambda i: len(enc[i].input_ids))  # length-sorted batches pad less
        results: dict[int, tuple] = {}
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            b = collate([enc[i] for i in idx], pad, prompt_mask=True)
            kw: dict[str, torch.Tensor | int] = {}
            if trim:
                b = _to_left_padding(b)
                kw = {"position_ids": b.pop("position_ids"),
                      "logits_to_keep": int((b["labels"] != -100).sum(1).max()) + 1}
            elif getattr(model, "uses_prompt_mask", False):
                kw = {"prompt_mask": b["prompt_mask"]}
            b = self._mask(b, pad)
            b = {k: v.to(self.device) for k, v in b.items()}
            kw = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in kw.items()}
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **kw).logits
            self._count(b["input_ids"].numel(), sum(len(enc[i].input_ids) for i in idx))
            labels = b["labels"][:, b["labels"].shape[1] - logits.shape[1]:]
            logits, labels, valid = ops.shift(logits, labels)
            _answer_stats(logits, labels, valid, idx, results)
            self.forward_examples += len(idx)
        lps, hits, mus, vars_ = ([results[i][k] for i in range(len(enc))] for k in range(4))
        return ScoredSet(lps, hits, mus, vars_, answers=list(answers))

    def score_group(self, model: torch.nn.Module, keys: Sequence[str], prompts: Sequence[str],
                    answer_sets: Sequence[Sequence[str]], ids: Sequence[str] | None = None,
                    keep_kv: bool = False) -> list[ScoredSet]:
        """`score` for several answer lists to the same prompts (an item's answer, paraphrase and
        perturbed answers): each prompt runs through the model once, and every answer list
        continues from its KV cache. Each result is memoised under its own key, as `score` would.
        ``keep_kv``: the prompts are about to be generated from; each prompt's KV cache and first
        greedy token are kept (within ``gen_kv_budget``) so that `generate` does not prefill it again."""
        cks = [(self.fingerprint(model), k, hash(tuple(prompts)), hash(tuple(a)), None)
               for k, a in zip(keys, answer_sets)]
        todo = [j for j, ck in enumerate(cks) if ck not in self._store]
        if todo:
            t0 = time.perf_counter()
            got = self._forward_shared(model, prompts, [answer_sets[j] for j in todo], self.fmt.append_eos,
                                       keep_kv)
            if got is None:  # a model or input the shared pass does not handle: one pass per list
                got = [self._forward(model, prompts, answer_sets[j], self.fmt.append_eos) for j in todo]
            self.forward_seconds += time.perf_counter() - t0
            for j, ss in zip(todo, got):
                ss.ids = list(ids) if ids is not None else [str(i) for i in range(len(prompts))]
                self._store[cks[j]] = ss
        return [self._store[ck] for ck in cks]

    @torch.no_grad()
    def _forward_shared(self, model: torch.nn.Module, prompts: Sequence[str], answer_sets: Sequence[Sequence[str]],
                        eos: bool, keep_kv: bool = False) -> list[ScoredSet] | None:
        """The numbers of `_forward` for each answer list, with each batch of prompts prefilled once
        (left-padded, generate's position ids) and each list's answers run on that KV cache, which
        is cropped back to the prompts after each list. None where it does not apply: a model
        without a croppable plain cache or that reads ``prompt_mask``, or an answer cut by
        ``max_length``."""
        from transformers import DynamicCache

        arg = cache_arg(model) if self.trim_logits and not getattr(model, "uses_prompt_mask", False) else None
        if arg is None:
            return None
        tok = self.tokenizer
        enc = [[encode_pair(tok, p, a, append_eos=eos, max_length=self.max_length) for p, a in zip(prompts, answers)]
               for answers in answer_sets]
        if any(len(e.input_ids) <= e.n_prompt or len(e.input_ids) >= self.max_length for row in enc for e in row):
            return None  # an empty or truncated answer: the plain pass handles it
        model.eval()
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        p_ids = [enc[0][i].input_ids[:enc[0][i].n_prompt] for i in range(len(prompts))]
        order = sorted(range(len(prompts)), key=lambda i: len(p_ids[i]))
        results: list[dict[int, tuple]] = [{} for _ in answer_sets]
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            pb = left_pad([Encoded(p_ids[i], len(p_ids[i]), (0, 0)) for i in idx], pad)
            pos = positions(pb["attention_mask"])  # from the real tokens, before any non_pad masking
            pb = self._mask(pb, pad)
            dev = {k: v.to(self.device) for k, v in {"ids": pb["input_ids"], "mask": pb["attention_mask"],
                                                      "pos": pos}.items()}
            cache = DynamicCache(config=model.config)
            out = model(input_ids=dev["ids"], attention_mask=dev["mask"], position_ids=dev["pos"], use_cache=True,
                        logits_to_keep=1, **{arg: cache})
            cache = getattr(out, arg, None) or cache
            self._count(pb["input_ids"].numel(), sum(len(p_ids[i]) for i in idx))
            if not plain_cache(cache) or not cache.is_croppable:
                return None
            first = out.logits[:, -1:]
            if keep_kv and self.attention_mask == "real":  # generation's own positions and mask
                self._keep_prompt_kv(model, cache, [p_ids[i] for i in idx], first[:, -1].argmax(-1))
            for j in range(len(answer_sets)):
                a_ids = [enc[j][i].input_ids[enc[j][i].n_prompt:] for i in idx]
                la = max(len(a) for a in a_ids)
                ids_t = torch.full((len(idx), la), pad, dtype=torch.long)
                am = torch.zeros((len(idx), la), dtype=torch.long)
                for r, a in enumerate(a_ids):
                    ids_t[r, :len(a)] = torch.tensor(a)
                    am[r, :len(a)] = 1
                labels = ids_t.masked_fill(am == 0, -100).to(self.device)
                if self.attention_mask == "non_pad":
                    am = (ids_t != pad).long()
                ids_t, am = ids_t.to(self.device), am.to(self.device)
                apos = dev["pos"][:, -1:] + 1 + torch.arange(la, device=self.device)
                out = model(input_ids=ids_t, attention_mask=torch.cat([dev["mask"], am], 1), position_ids=apos,
                            use_cache=True, **{arg: cache})
                cache.crop(-la)  # back to the prompts (a negative count removes tokens)
                self._count(ids_t.numel(), sum(len(a) for a in a_ids))
                # the last prompt position predicts answer token 0; answer position t predicts t + 1
                logits = torch.cat([first, out.logits[:, :-1]], 1)
                _answer_stats(logits, labels, labels != -100, idx, results[j])
            self.forward_examples += len(idx) * len(answer_sets)
        return [ScoredSet(*([res[i][k] for i in range(len(prompts))] for k in range(4)), answers=list(answers))
                for res, answers in zip(results, answer_sets)]

    def generate_into(self, model: torch.nn.Module, wanted: Sequence[tuple[ScoredSet, Sequence[str]]]) -> None:
        """Fill in the generations of several scored sets with one pooled `generate` call: the
        prompts of every set are length-sorted and batched together, so the sets share batches
        (each batch runs until its longest answer ends). Sets that have generations are skipped."""
        todo = [(ss, list(p)) for ss, p in wanted if ss.generations is None]
        if not todo:
            return
        t0 = time.perf_counter()
        try:
            flat = self.generate(model, [p for _, ps in todo for p in ps])
        finally:  # prompt KV kept for this generation and not used by it
            self._prompt_kv.clear()
            self._prompt_kv_bytes = 0
        self.generate_seconds += time.perf_counter() - t0
        at = 0
        for ss, ps in todo:
            ss.generations = flat[at:at + len(ps)]
            at += len(ps)

    def _mask(self, batch: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
        if self.attention_mask == "non_pad":
            batch["attention_mask"] = (batch["input_ids"] != pad).long()
        return batch

    def _count(self, run: int, real: int) -> None:
        self.positions_run += run
        self.positions_real += real

    @property
    def padding_waste(self) -> float:
        """The share of the token positions the scoring passes ran that were padding."""
        return 1 - self.positions_real / self.positions_run if self.positions_run else 0.0

    def _keep_prompt_kv(self, model: torch.nn.Module, cache: Any, rows: Sequence[Sequence[int]],
                        first: torch.Tensor) -> None:
        """Keep each left-padded row's prompt KV (its own tokens only) and first greedy token."""
        fp = self.fingerprint(model)
        for r, ids in enumerate(rows):
            n = len(ids)
            kv = [(layer.keys[r, :, -n:].clone(), layer.values[r, :, -n:].clone()) for layer in cache.layers]
            size = sum(k.nbytes + v.nbytes for k, v in kv)
            if self._prompt_kv_bytes + size > self.gen_kv_budget:
                return
            self._prompt_kv[(fp, tuple(ids))] = (kv, int(first[r]))
            self._prompt_kv_bytes += size

    def _prefilled(self, model: torch.nn.Module, rows: Sequence[Sequence[int]]) -> tuple[Any, torch.Tensor] | None:
        """The batch cache of left-padded ``rows`` and their first greedy tokens, assembled from the
        KV kept while scoring them (each entry used once), or None when any row was not kept."""
        from transformers import DynamicCache

        fp = self.fingerprint(model)
        keys = [(fp, tuple(ids)) for ids in rows]
        if not keys or any(k not in self._prompt_kv for k in keys):
            return None
        unique = {k: self._prompt_kv.pop(k) for k in dict.fromkeys(keys)}  # a repeated prompt: one entry
        self._prompt_kv_bytes -= sum(k.nbytes + v.nbytes for kv, _ in unique.values() for k, v in kv)
        got = [unique[k] for k in keys]
        width = max(len(ids) for ids in rows)
        cache = DynamicCache(config=model.config)
        for layer in range(len(got[0][0])):
            ks, vs = [], []
            for kv, _ in got:
                k, v = kv[layer]
                pad = width - k.shape[-2]
                ks.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                vs.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            cache.update(torch.stack(ks), torch.stack(vs), layer)
        return cache, torch.tensor([t for _, t in got], device=self.device)

    def gen_rows(self, model: torch.nn.Module, prompt_len: int, n: int) -> int:
        """Rows per generation batch: ``gen_batch_size`` when set, else the most whose KV cache of
        ``prompt_len + max_new_tokens`` tokens fits ``gen_kv_budget`` (``2 * batch_size`` for a model
        whose config does not give the cache's size), never fewer than ``batch_size`` nor more than
        ``n``."""
        if self.gen_batch_size:
            return max(1, self.gen_batch_size)
        per_token = kv_bytes_per_token(model)
        if per_token is None:
            return max(1, 2 * self.batch_size)
        fits = self.gen_kv_budget // (per_token * (prompt_len + self.max_new_tokens))
        return max(1, min(n, max(self.batch_size, fits)))

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, prompts: Sequence[str]) -> list[str]:
        """Greedy continuations of ``prompts``, cut at EOS (and the generation config's stop ids).

        Prompts are encoded exactly as for scoring (one BOS, the question span), length-sorted into
        left-padded batches and generated with the KV cache, each row leaving its batch when it
        stops (`obliviate.scoring.generate`; transformers' ``generate`` where that does not apply);
        a model that corrupts the prompt (ECO) receives the question mask as ``prompt_mask``."""
        tok = self.tokenizer
        model.eval()
        enc = [encode_pair(tok, p, "", append_eos=False, max_length=self.max_length) for p in prompts]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        out: list[str] = [""] * len(prompts)
        order = sorted(range(len(enc)), key=lambda i: len(enc[i].input_ids))
        rows = self.gen_rows(model, max((len(e.input_ids) for e in enc), default=0), len(enc))
        for s in range(0, len(order), rows):
            idx = order[s:s + rows]
            b = self._mask(left_pad([enc[i] for i in idx], pad), pad)
            kw = {k: v.to(self.device) for k, v in b.items() if k != "prompt_mask" or getattr(model, "uses_prompt_mask", False)}
            new = None
            if self.prune_finished and can_prune(model):  # finished rows leave the batch (same tokens)
                new = greedy_generate(model, kw["input_ids"], kw["attention_mask"], self.max_new_tokens,
                                      stop_ids(model, tok), prefill=self._prefilled(model, [enc[i].input_ids
                                                                                            for i in idx]))
            if new is None:
                gen = model.generate(**kw, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=pad, eos_token_id=stop_ids(model, tok))
                new = gen[:, b["input_ids"].shape[1]:]
            for i, t in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                out[i] = t.strip()
            self.generated_examples += len(idx)
        return out


def kv_bytes_per_token(model: torch.nn.Module) -> int | None:
    """Bytes one token adds to a decoder's KV cache (layers x 2 x key/value heads x head size x dtype
    size), from its config; None when the config does not say."""
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)() if cfg is not None else None
    layers, heads = getattr(cfg, "num_hidden_layers", None), getattr(cfg, "num_attention_heads", None)
    hidden = getattr(cfg, "hidden_size", None)
    if not (isinstance(layers, int) and isinstance(heads, int) and isinstance(hidden, int)) or heads <= 0:
        return None
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    try:
        size = next(model.parameters()).element_size()
    except StopIteration:
        return None
    return int(layers * 2 * kv * head_dim * size)


def _answer_stats(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, idx: Sequence[int],
                  results: dict[int, tuple]) -> None:
    """Per-row (log p(y_t), argmax hit, vocabulary mean and variance of log p) of the answer tokens
    (``valid``) of aligned ``logits`` / ``labels``, into ``results[idx[row]]``. Only the answer tokens
    are computed on: the model's dtype for the forward, float32 for the log-softmax."""
    flat = logits[valid]
    target = labels[valid]
    parts = []
    # 32 token rows at a time (a 6 MB float32 block at a 49k vocabulary): the five passes over each
    # row's vocabulary then stay in cache, about 3x faster on CPU than whole-batch tensors
    chunk = 32 if flat.device.type == "cpu" else 4096
    for lg, tg in zip(flat.split(chunk), target.split(chunk)):
        logp = torch.log_softmax(lg.float(), -1)
        p = logp.exp()
        mu = torch.linalg.vecdot(p, logp)
        tgt_lp = logp.gather(-1, tg.unsqueeze(-1)).squeeze(-1)
        var = torch.linalg.vecdot(p, logp.sub_(mu.unsqueeze(-1)).square_())  # two-pass: no cancellation
        parts.append((tgt_lp, lg.argmax(-1) == tg, mu, var))
    tgt_lp, hit, mu, var = (torch.cat(c) for c in zip(*parts))
    # one device->host copy per batch, then split per row
    counts = valid.sum(1).tolist()
    cols = [t.cpu().numpy() for t in (tgt_lp.double(), hit, mu.double(), var.double())]
    offs = np.cumsum([0] + counts)
    for row, i in enumerate(idx):
        results[i] = tuple(c[offs[row]:offs[row + 1]] for c in cols)


def _to_left_padding(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A right-padded batch (`collate`) moved to left padding, with the position ids each row had
    right-padded (0 at its first token), so every row ends in the last column."""
    n = b["attention_mask"].sum(1)
    width = b["input_ids"].shape[1]
    out = {}
    for k, v in b.items():
        out[k] = torch.stack([torch.roll(row, int(width - m)) for row, m in zip(v, n)])
    out["position_ids"] = positions(out["attention_mask"])
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
