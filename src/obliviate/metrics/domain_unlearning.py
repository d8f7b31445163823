"""Domain-unlearning metrics (ADU, Kawamura et al., NeurIPS 2025, arXiv 2510.08132): pure functions.

Inputs are per-example arrays: predicted class, true class and domain index. In percent:

- ``domain_accuracy``: accuracy on each domain;
- ``domain_mem``: Mem = accuracy over the kept domains' examples;
- ``domain_for``: For = error rate over the forget domains' examples;
- ``domain_h``: H = 2·Mem·For / (Mem + For), their harmonic mean (0 when both are 0);
- ``domain_gap_to_oracle``: mean |per-domain accuracy − the oracle's| (points).

A collapsed model scores For = 100, so Mem is always reported beside For (``domain_metrics``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, MissingReferenceError, bootstrap_ci
from obliviate.registry import register

_PAPER = dict(paper="Approximate Domain Unlearning for Vision-Language Models", arxiv="2510.08132",
              modalities=("vision-language",))


def _check(pred, y, d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, y, d = (np.asarray(a).ravel() for a in (pred, y, d))
    if not len(pred) == len(y) == len(d):
        raise ValueError(f"pred, y and d must have one entry per example; got {len(pred)}, {len(y)} and {len(d)}")
    return pred, y, d


def domain_accuracy(pred, y, d, domains: Sequence[str]) -> dict[str, MetricResult]:
    """Accuracy (%) on each domain; ``d`` holds indices into ``domains``."""
    pred, y, d = _check(pred, y, d)
    out = {}
    for i, name in enumerate(domains):
        c = (pred[d == i] == y[d == i]).astype(np.float64) * 100
        out[name] = MetricResult(f"acc_{name}", float(c.mean()) if len(c) else float("nan"), "closer_to_reference",
                                 n=len(c), ci=bootstrap_ci(c))
    return out


def _subset(d: np.ndarray, domains: Sequence[str], names: Sequence[str]) -> np.ndarray:
    unknown = [n for n in names if n not in domains]
    if unknown:
        raise ValueError(f"domains {unknown} are not among {list(domains)}")
    return np.isin(d, [list(domains).index(n) for n in names])


def domain_mem(pred, y, d, domains: Sequence[str], forget: Sequence[str]) -> MetricResult:
    """Mem = accuracy (%) on the kept domains (every domain not in ``forget``)."""
    pred, y, d = _check(pred, y, d)
    keep = ~_subset(d, domains, forget)
    if not keep.any():
        raise ValueError("Mem needs examples from at least one kept domain")
    c = (pred[keep] == y[keep]).astype(np.float64) * 100
    return MetricResult("domain_mem", float(c.mean()), "higher", n=len(c), ci=bootstrap_ci(c))


def domain_for(pred, y, d, domains: Sequence[str], forget: Sequence[str]) -> MetricResult:
    """For = error rate (%) on the forget domains."""
    pred, y, d = _check(pred, y, d)
    fg = _subset(d, domains, forget)
    if not fg.any():
        raise ValueError("For needs examples from at least one forget domain")
    e = (pred[fg] != y[fg]).astype(np.float64) * 100
    return MetricResult("domain_for", float(e.mean()), "higher", n=len(e), ci=bootstrap_ci(e))


def harmonic_mean(mem: float, forget_err: float) -> float:
    """H = 2·Mem·For / (Mem + For); 0 when both are 0."""
    return 0.0 if mem + forget_err == 0 else 2 * mem * forget_err / (mem + forget_err)


def domain_h(pred, y, d, domains: Sequence[str], forget: Sequence[str]) -> MetricResult:
    """H (%) = harmonic mean of Mem and For (ADU's headline number)."""
    mem, fo = domain_mem(pred, y, d, domains, forget), domain_for(pred, y, d, domains, forget)
    return MetricResult("domain_h", harmonic_mean(mem.value, fo.value), "higher", n=mem.n + fo.n,
                        details={"mem": mem.value, "for": fo.value})


def domain_gap_to_oracle(acc: dict[str, MetricResult], oracle_acc: dict[str, MetricResult] | None) -> MetricResult:
    """Mean |acc_d − oracle acc_d| over domains (points); needs the oracle's per-domain accuracy."""
    if oracle_acc is None:
        raise MissingReferenceError("domain_gap_to_oracle needs the oracle's per-domain accuracy (the model "
                                    "pre-trained without the forget domains); none was given")
    missing = sorted(set(acc) ^ set(oracle_acc))
    if missing:
        raise ValueError(f"per-domain accuracies do not cover the same domains: {missing}")
    gaps = {k: abs(acc[k].value - oracle_acc[k].value) for k in acc}
    return MetricResult("domain_gap_to_oracle", float(np.mean(list(gaps.values()))), "closer_to_zero", n=len(gaps),
                        compared_to="oracle", details=gaps)


def domain_metrics(pred, y, d, domains: Sequence[str], forget: Sequence[str],
                   oracle_acc: dict[str, MetricResult] | None = None) -> dict[str, MetricResult]:
    """Mem, For, H, per-domain accuracy (``acc_<domain>``) and, given the oracle's, the gap to it."""
    acc = domain_accuracy(pred, y, d, domains)
    out = {"domain_mem": domain_mem(pred, y, d, domains, forget), "domain_for": domain_for(pred, y, d, domains, forget),
           "domain_h": domain_h(pred, y, d, domains, forget)}
    out.update({f"acc_{k}": v for k, v in acc.items()})
    if oracle_acc is not None:
        out["domain_gap_to_oracle"] = domain_gap_to_oracle(acc, oracle_acc)
    return out


register("metric", "domain_mem", summary="Mem: accuracy on kept domains, %", **_PAPER)(domain_mem)
register("metric", "domain_for", summary="For: error rate on forget domains, % (read beside Mem)", **_PAPER)(domain_for)
register("metric", "domain_h", summary="H: harmonic mean of Mem and For, %", **_PAPER)(domain_h)
register("metric", "domain_accuracy", summary="Accuracy per domain, %", **_PAPER)(domain_accuracy)
register("metric", "domain_gap_to_oracle", summary="Mean |per-domain accuracy − oracle's| (points)",
         needs=("oracle",), **_PAPER)(domain_gap_to_oracle)
