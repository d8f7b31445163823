"""Completion-based familiarity (Eldan & Russinovich, "Who's Harry Potter? Approximate Unlearning in
LLMs", arXiv 2310.02238, section 3.2.1; spec: specs/seed_llm_methods.md §1).

The paper prompts the model with text that asks for (or partially gives) target-specific content and has
GPT-4 judge whether each completion reveals familiarity; familiarity = the (weighted) share of completions
that do (0.29 -> 0.007 after unlearning on Harry Potter). The exact GPT-4 rubric is not public, so the
judge is pluggable: any ``callable(prompt, completion, keywords) -> float in [0, 1]``. The default judge
is a keyword matcher: 1 if the completion contains any anchor keyword of the probe (case-insensitive,
whole words), else 0. The default probe set is built from the forget items: the question is the prompt
and the content words of the gold answer are the anchors.

Metrics never run the model: `familiarity` reads the cached greedy generations of the ``forget`` set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from obliviate.data.task import QAItem
from obliviate.metrics.base import MetricResult, bootstrap_ci
from obliviate.registry import register
from obliviate.scoring.types import AuditView

WHP = dict(paper="Who's Harry Potter? Approximate Unlearning in LLMs", arxiv="2310.02238",
           code="https://github.com/swj0419/muse_bench")  # no official WHP code; MUSE ships the baseline

Judge = Callable[[str, str, Sequence[str]], float]

# Words that carry no target-specific knowledge: a completion containing "the" is not familiar.
STOPWORDS = frozenset("""a an the and or but of in on at to for from by with as is are was were be been being it its
this that these those he she they his her their him them who whom whose which what when where why how i you we
our your my me not no yes do does did has have had will would can could should may might shall also than then
there here into over under about after before during while so such very just only""".split())
_WORD = re.compile(r"[\w'-]+", re.UNICODE)


@dataclass(frozen=True)
class Probe:
    """One familiarity probe: a prompt and the anchor keywords whose presence reveals the target."""

    prompt: str
    keywords: tuple[str, ...]
    id: str = ""


def anchor_keywords(answer: str, question: str = "", min_len: int = 3) -> tuple[str, ...]:
    """Content words of ``answer`` that are not already in ``question`` (lower-cased, deduplicated, in order).

    Words shorter than ``min_len``, stop words and words copied from the question are dropped: a completion
    that merely echoes the question must not count as familiarity.
    """
    q = {w.lower() for w in _WORD.findall(question)}
    out: list[str] = []
    for w in _WORD.findall(answer):
        lw = w.lower().strip("'-")
        if len(lw) >= min_len and lw not in STOPWORDS and lw not in q and lw not in out:
            out.append(lw)
    return tuple(out)


def probes_from_items(items: Sequence[QAItem]) -> list[Probe]:
    """Default probe set: question -> anchor keywords of its answer."""
    return [Probe(it.question, anchor_keywords(it.answer, it.question), it.id) for it in items]


def keyword_judge(prompt: str, completion: str, keywords: Sequence[str]) -> float:
    """1.0 if ``completion`` contains any keyword as a whole word (case-insensitive), else 0.0."""
    words = {w.lower().strip("'-") for w in _WORD.findall(completion)}
    return 1.0 if any(k.lower() in words for k in keywords) else 0.0


def familiarity_scores(prompts: Sequence[str], completions: Sequence[str], keywords: Sequence[Sequence[str]],
                       judge: Judge = keyword_judge) -> np.ndarray:
    """Per-probe judge scores, checked to lie in [0, 1]. Probes without keywords are skipped (NaN)."""
    out = np.full(len(prompts), np.nan)
    for i, (p, c, k) in enumerate(zip(prompts, completions, keywords)):
        if not k:
            continue
        s = float(judge(p, c, k))
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"familiarity judge returned {s} for probe {i}; a judge must return a score in [0, 1]")
        out[i] = s
    return out


def familiarity(prompts: Sequence[str], completions: Sequence[str], keywords: Sequence[Sequence[str]],
                judge: Judge = keyword_judge) -> float:
    """Mean judge score over the probes that have keywords (NaN when none has)."""
    s = familiarity_scores(prompts, completions, keywords, judge)
    return float(np.nanmean(s)) if np.isfinite(s).any() else float("nan")


@register("metric", "familiarity", needs=("forget",), **WHP)
def familiarity_metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """WHP completion familiarity on the forget questions: share of greedy answers containing an anchor
    keyword of the gold answer (keyword judge; lower = less familiar)."""
    key = "forget" if "forget" in view.sets or "knowmem_forget" not in view.sets else "knowmem_forget"  # MUSE
    ss = view.need(key)
    if ss.generations is None:
        raise KeyError(f"familiarity needs greedy generations of the {key!r} set; audit with generate=True")
    # Anchors: the answer's content words minus the question's (when the view kept the questions), so a
    # completion that only echoes the question does not count.
    questions = list(view.extra.get(f"question:{key}", [""] * len(ss)))
    kws = [anchor_keywords(a, q) for a, q in zip(ss.answers, questions)]
    s = familiarity_scores(questions, ss.generations, kws)
    per = s[np.isfinite(s)]
    return MetricResult("familiarity", float(per.mean()) if per.size else float("nan"), "lower", n=int(per.size),
                        ci=bootstrap_ci(per), details={"judge": "keyword_judge", "set": key, "probes_without_keywords":
                                                       int((~np.isfinite(s)).sum())})
