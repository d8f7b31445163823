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
                            retain=full.retain, holdout=full.holdout, eval_sets=full.eval_sets)
        rep = audit({"m": model}, scored, tok, metrics=list(metrics), fmt=bench.fmt)
        rows.append({"request": r, "n_forgotten": len(forgotten), "method": method,
                     **{m: rep.value("m", m) for m in metrics if m in rep.models["m"].metrics}})
    return rows
