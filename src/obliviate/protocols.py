"""MUSE's scalability and sustainability protocols on the built-in benchmark.

Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language Models" (arXiv 2407.06460):
- **scalability**: the same method on growing forget sets (here forget01 -> forget05 -> forget10),
  each audited against its own exact oracle;
- **sustainability**: sequential requests: the forget10 authors are split into ``n_requests``
  chunks, unlearned one after another from the previous result; after each request the model is
  audited on everything forgotten so far.
Both return table rows (lists of dicts) that go into ``report.tables``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from obliviate.api import audit, unlearn
from obliviate.data.task import ForgetTask

SCALABILITY_METRICS = ("forget_quality", "model_utility", "forget_prob", "retain_prob", "forget_rouge", "privleak")
SUSTAINABILITY_METRICS = ("model_utility", "forget_prob", "retain_prob", "forget_rouge")


def scalability(bench, method: str, splits: Sequence[str] = ("forget01", "forget05", "forget10"),
                metrics: Sequence[str] = SCALABILITY_METRICS, seed: int = 0, train: dict | None = None) -> list[dict]:
    """One row per split: the method's metrics against that split's exact oracle."""
    tok = bench.tokenizer()
    target = bench.load("target")
    rows = []
    for split in splits:
        task = bench.task(split)
        res = unlearn(target, tok, task, method=method, benchmark="fictional_authors", fmt=bench.fmt,
                      train={"seed": seed, "progress": False, **(train or {})})
        rep = audit({method: res.model, "oracle": bench.load("oracle", split)}, task, tok, reference="oracle",
                    metrics=list(metrics), fmt=bench.fmt)
        rows.append({"split": split, "n_forget": len(task.forget), "method": method,
                     **{m: rep.value(method, m) for m in metrics if m in rep.models[method].metrics},
                     "seconds": res.log.seconds})
    return rows


def sustainability(bench, method: str, split: str = "forget10", n_requests: int = 3,
                   metrics: Sequence[str] = SUSTAINABILITY_METRICS, seed: int = 0, train: dict | None = None
                   ) -> list[dict]:
    """One row per sequential request (0 = the target before any request)."""
    tok = bench.tokenizer()
    full = bench.task(split)
    groups = list(dict.fromkeys(it.group for it in full.forget))
    if n_requests > len(groups):
        raise ValueError(f"{split} has {len(groups)} forget authors; cannot make {n_requests} requests")
    chunks = [groups[i::n_requests] for i in range(n_requests)]
    model = bench.load("target")
    rows = []
    forgotten: list = []
    for r in range(n_requests + 1):
        if r > 0:
            chunk = [it for it in full.forget if it.group in chunks[r - 1]]
            req = dataclasses.replace(full, forget=chunk)
            model = unlearn(model, tok, req, method=method, benchmark="fictional_authors", fmt=bench.fmt,
                            train={"seed": seed, "progress": False, **(train or {})}).model
            forgotten += chunk
        scored = ForgetTask(full.name, forget=forgotten or [it for it in full.forget if it.group in chunks[0]],
                            retain=full.retain, holdout=full.holdout, eval_sets=full.eval_sets,
                            metadata={"eval_limits": full.metadata.get("eval_limits") or {}})
        rep = audit({"m": model}, scored, tok, metrics=list(metrics), fmt=bench.fmt)
        rows.append({"request": r, "n_forgotten": len(forgotten), "method": method,
                     **{m: rep.value("m", m) for m in metrics if m in rep.models["m"].metrics}})
    return rows


# ---- MUSE's own scalability / sustainability splits (swj0419/muse_bench, muse-bench/MUSE-News) ----------
# MUSE measures both as utility preservation (KnowMem on the retain QA) while the forget set grows
# (``scal/forget_1..4``) or while requests arrive one after another (``sust/forget_1..4``); the forget-side
# VerbMem / KnowMem are reported beside it.
MUSE_CURVE_METRICS = ("knowmem_retain", "knowmem_forget", "verbmem_forget")


def muse_splits(corpus: str, source, config: str) -> list[tuple[str, ForgetTask]]:
    """``(split, task)`` for ``config``/forget_1, forget_2, ... (scal or sust) as far as ``source`` has them."""
    from obliviate.data.loaders import DatasetUnavailableError, load_muse

    out = []
    for k in range(1, 5):  # MUSE ships forget_1..forget_4
        try:
            out.append((f"{config}/forget_{k}", load_muse(corpus, source, forget_config=config,
                                                          forget_split=f"forget_{k}")))
        except DatasetUnavailableError:
            break
    return out


def _curve_row(model, tok, task, cache, metrics, **fields) -> dict:
    rep = audit({"m": model}, task, tok, metrics=list(metrics), cache=cache)
    return {**fields, "n_forget_texts": len(task.forget_texts),
            **{m: rep.value("m", m) for m in metrics if m in rep.models["m"].metrics}}


def muse_scalability(target, tok, method: str, corpus: str, source, *, cache, fmt, seed: int = 0,
                     train: dict | None = None, metrics: Sequence[str] = MUSE_CURVE_METRICS) -> list[dict]:
    """One row per ``scal/forget_k``: ``method`` run from the target on that (growing) forget set."""
    rows = []
    for split, task in muse_splits(corpus, source, "scal"):
        res = unlearn(target, tok, task, method=method, benchmark="muse", fmt=fmt,
                      train={"seed": seed, "progress": False, **(train or {})})
        rows.append(_curve_row(res.model, tok, task, cache, metrics, method=method, split=split,
                               seconds=res.log.seconds))
    return rows


def muse_sustainability(target, tok, method: str, corpus: str, source, *, cache, fmt, seed: int = 0,
                        train: dict | None = None, metrics: Sequence[str] = MUSE_CURVE_METRICS) -> list[dict]:
    """Row 0: the target; row k: after the k-th sequential request ``sust/forget_k``, each unlearned from the
    previous result."""
    splits = muse_splits(corpus, source, "sust")
    if not splits:
        return []
    rows = [_curve_row(target, tok, splits[0][1], cache, metrics, method=method, request=0, split="target")]
    model = target
    for k, (split, task) in enumerate(splits, start=1):
        model = unlearn(model, tok, task, method=method, benchmark="muse", fmt=fmt,
                        train={"seed": seed, "progress": False, **(train or {})}).model
        rows.append(_curve_row(model, tok, task, cache, metrics, method=method, request=k, split=split))
    return rows
