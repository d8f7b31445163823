"""Fluency guard: is a low forget score real forgetting, or just broken text?

Gradient-ascent-style unlearning often "forgets" by collapsing into repetition ("the the the ...") or
gibberish; ROUGE and familiarity then look perfect. OpenUnlearning ships a classifier for this
(`forget_Q_A_gibberish`: madhurjindal/autonlp-Gibberish-Detector-492513457, arXiv 2506.12618); obliviate
uses model-free statistics of the cached generations, so it runs offline and in milliseconds:

- distinct-n (Li et al., "A Diversity-Promoting Objective Function for Neural Conversation Models",
  arXiv 1510.03055): unique n-grams / total n-grams of one generation;
- repetition rate: share of n-gram occurrences (n = 2) that repeat an n-gram seen earlier in the text;
- longest run: the longest run of one identical token in a row.

A generation is flagged ``gibberish`` when any of these thresholds trips (chosen so that ordinary
sentences never trip them and collapsed outputs always do; see the known-answer tests):
- it is empty (no tokens);
- it has ≥ 4 tokens and the longest run of one token is ≥ 3 ("no no no");
- it has ≥ 8 tokens and distinct-1 < 0.3 (fewer than 3 in 10 tokens are new words);
- it has ≥ 8 tokens and the bigram repetition rate > 0.5.
The per-generation fluency score is 1 for an unflagged generation and 0 for a flagged one, so
``fluency_forget`` / ``fluency_retain`` = share of fluent generations (higher = more fluent).
Tokens are lower-cased words and punctuation marks (a regex split, independent of any tokenizer).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, bootstrap_ci
from obliviate.registry import register
from obliviate.scoring.types import AuditView

FLUENCY = dict(paper="A Diversity-Promoting Objective Function for Neural Conversation Models", arxiv="1510.03055",
               code="https://github.com/locuslab/open-unlearning")

RUN_MIN_TOKENS, MAX_RUN = 4, 3  # a token repeated 3+ times in a row
DIVERSITY_MIN_TOKENS, MIN_DISTINCT_1, MAX_REPETITION = 8, 0.3, 0.5
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return [t.lower() for t in _TOKEN.findall(text)]


def _ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def distinct_n(toks: Sequence[str], n: int) -> float:
    """Unique n-grams / n-grams (1.0 when there is no n-gram at all: nothing repeats)."""
    grams = _ngrams(toks, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition_rate(toks: Sequence[str], n: int = 2) -> float:
    """Share of n-gram occurrences that repeat an earlier one: Σ_g (count_g - 1) / #n-grams."""
    grams = _ngrams(toks, n)
    if not grams:
        return 0.0
    return sum(c - 1 for c in Counter(grams).values()) / len(grams)


def longest_run(toks: Sequence[str]) -> int:
    """Length of the longest run of one identical token."""
    best = run = 0
    prev = None
    for t in toks:
        run = run + 1 if t == prev else 1
        prev = t
        best = max(best, run)
    return best


@dataclass(frozen=True)
class FluencyStats:
    n_tokens: int
    distinct_1: float
    distinct_2: float
    repetition_rate: float
    longest_run: int
    gibberish: bool
    reason: str


def fluency_stats(text: str) -> FluencyStats:
    """The fluency statistics of one generation and its gibberish flag (thresholds in the module doc)."""
    toks = tokens(text)
    n = len(toks)
    d1, d2, rep, run = distinct_n(toks, 1), distinct_n(toks, 2), repetition_rate(toks, 2), longest_run(toks)
    reason = ""
    if n == 0:
        reason = "empty"
    elif n >= RUN_MIN_TOKENS and run >= MAX_RUN:
        reason = f"run: a token repeated {run}x in a row"
    elif n >= DIVERSITY_MIN_TOKENS and d1 < MIN_DISTINCT_1:
        reason = f"low_distinct: distinct-1 {d1:.2f} < {MIN_DISTINCT_1}"
    elif n >= DIVERSITY_MIN_TOKENS and rep > MAX_REPETITION:
        reason = f"repetition: bigram repetition {rep:.2f} > {MAX_REPETITION}"
    return FluencyStats(n, d1, d2, rep, run, bool(reason), reason)


def fluency_summary(generations: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Per-generation fluency (1 fluent, 0 flagged) and the mean statistics + flag counts for ``details``."""
    stats = [fluency_stats(g) for g in generations]
    per = np.array([0.0 if s.gibberish else 1.0 for s in stats])
    reasons = Counter(s.reason.split(":")[0] for s in stats if s.gibberish)  # run / low_distinct / ...
    details = {
        "gibberish": int(sum(s.gibberish for s in stats)),
        "empty": int(reasons.get("empty", 0)),
        "flag_reasons": dict(reasons),
        "mean_distinct_1": float(np.mean([s.distinct_1 for s in stats])) if stats else float("nan"),
        "mean_distinct_2": float(np.mean([s.distinct_2 for s in stats])) if stats else float("nan"),
        "mean_repetition_rate": float(np.mean([s.repetition_rate for s in stats])) if stats else float("nan"),
        "max_longest_run": int(max((s.longest_run for s in stats), default=0)),
        "examples_flagged": [dict(asdict(s), text=g[:120]) for s, g in zip(stats, generations) if s.gibberish][:3],
    }
    return per, details


def _make_fluency(base: str):
    name = f"fluency_{base}"

    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        # MUSE tasks have no QA training sets; their KnowMem QA generations stand in.
        key = base if base in view.sets or f"knowmem_{base}" not in view.sets else f"knowmem_{base}"
        ss = view.need(key)
        if ss.generations is None:
            raise KeyError(f"{name} needs greedy generations of the {key!r} set; audit with generate=True")
        per, details = fluency_summary(ss.generations)
        details["set"] = key
        return MetricResult(name, float(per.mean()) if per.size else float("nan"), "higher", n=int(per.size),
                            ci=bootstrap_ci(per), details=details)

    metric.__doc__ = (f"Share of {base} generations that are not flagged gibberish (repetition / low diversity "
                      "/ empty); details carry distinct-n, repetition rate and flag counts.")
    metric.__name__ = name
    return metric


register("metric", "fluency_forget", needs=("forget",), **FLUENCY)(_make_fluency("forget"))
register("metric", "fluency_retain", needs=("retain",), **FLUENCY)(_make_fluency("retain"))
