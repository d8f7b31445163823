"""RESTOR-style restorative unlearning: after unlearning injected misinformation, does the
model's original correct knowledge come back?

Rezaei et al., "RESTOR: Knowledge Recovery in Machine Unlearning", TMLR 2025 (arXiv 2411.00204),
code https://github.com/k1rezaei/restor. Protocol on any QA task:
1. clean model θ_clean; pick ``n_facts`` facts (retain items with perturbed answers);
2. corruption documents state a wrong (perturbed) answer for each fact, each interleaved with
   ``mix_k`` correct facts about unrelated items (RESTOR's ``mix_a{k}``); fine-tune → θ_corrupted;
3. unlearn the corruption documents with ``method`` (reference = the corrupted model) → θ_unlearned;
4. accuracy on the facts, multiple-choice by answer likelihood (RESTOR's logit analysis): a fact
   counts as known when the correct answer's mean token log-prob beats the corrupted answer and
   every other perturbed answer. Recovery = (acc_u − acc_c) / (acc_clean − acc_c).
The original uses a GPT judge over generations; the likelihood form keeps this offline and exact.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from obliviate.attacks.base import AttackResult, attack
from obliviate.data.formatting import PromptFormat, encode_pair
from obliviate.data.task import ForgetTask, QAItem
from obliviate.scoring.cache import ScoringCache, stack_nll
from obliviate.train.sft import SFTConfig, sft


def mcq_accuracy(model, tokenizer, items: list[QAItem], wrong: list[str], fmt: PromptFormat) -> np.ndarray:
    """Per item: 1 if the correct answer is more likely (mean token NLL) than ``wrong[i]`` and all
    perturbed answers."""
    cache = ScoringCache(tokenizer, fmt)
    prompts = [fmt.prompt(it.question, tokenizer, it.context) for it in items]
    correct = cache.score(model, "c", prompts, [fmt.answer(it.answer, tokenizer) for it in items]).mean_nll()
    bad = cache.score(model, "w", prompts, [fmt.answer(w, tokenizer) for w in wrong]).mean_nll()
    k = min(len(it.perturbed_answers) for it in items)
    pert = stack_nll([cache.score(model, f"p{j}", prompts, [fmt.answer(it.perturbed_answers[j], tokenizer) for it in items])
                      for j in range(k)])
    return ((correct < bad) & (correct[:, None] < pert).all(axis=1)).astype(float)


def recovery_ratio(acc_clean: float, acc_corrupted: float, acc_unlearned: float) -> float:
    """(acc_u − acc_c) / (acc_clean − acc_c); NaN when the corruption did not lower accuracy."""
    gap = acc_clean - acc_corrupted
    return float("nan") if gap <= 0 else (acc_unlearned - acc_corrupted) / gap


@attack("restor", paper="RESTOR: Knowledge Recovery in Machine Unlearning", arxiv="2411.00204",
        code="https://github.com/k1rezaei/restor", needs=("a clean model", "retain items with perturbed answers"),
        summary="inject wrong facts, unlearn them, measure how much correct knowledge returns")
def restor(model, task: ForgetTask, tokenizer, *, method: str = "npo", n_facts: int = 20, mix_k: int = 1,
           corrupt_steps: int = 150, corrupt_lr: float = 2e-3, unlearn_train: dict | None = None,
           fmt: PromptFormat | None = None, seed: int = 0, **method_overrides) -> AttackResult:
    """Run the restorative-unlearning protocol with ``model`` as θ_clean."""
    from obliviate.api import unlearn

    fmt = fmt or PromptFormat()
    pool = [it for it in task.retain if it.perturbed_answers]
    if len(pool) < n_facts + mix_k:
        raise ValueError(f"restor needs {n_facts + mix_k} retain items with perturbed answers, found {len(pool)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    facts = [pool[i] for i in order[:n_facts]]
    others = [pool[i] for i in order[n_facts:]]
    wrong = [it.perturbed_answers[0] for it in facts]
    # Corruption documents: the wrong answer, interleaved with k correct unrelated facts.
    docs = []
    for i, (it, w) in enumerate(zip(facts, wrong)):
        ctx = " ".join(others[(i * mix_k + j) % len(others)].answer for j in range(mix_k))
        docs.append(QAItem(question=it.question, answer=f"{w} {ctx}".strip(), id=f"corrupt/{it.id}"))
    corrupted = copy.deepcopy(model)
    ex = [encode_pair(tokenizer, fmt.prompt(d.question, tokenizer, d.context), fmt.answer(d.answer, tokenizer)) for d in docs]
    sft(corrupted, tokenizer, ex, SFTConfig(steps=corrupt_steps, lr=corrupt_lr, batch_size=8, warmup_steps=0, seed=seed))
    fact_ids = {it.id for it in facts}
    retain = [it for it in task.retain if it.id not in fact_ids]
    utask = ForgetTask("restor", forget=docs, retain=retain)
    res = unlearn(corrupted, tokenizer, utask, method=method, fmt=fmt,
                  train={"progress": False, "seed": seed, **(unlearn_train or {})}, **method_overrides)
    accs = {name: float(mcq_accuracy(m, tokenizer, facts, wrong, fmt).mean())
            for name, m in (("clean", model), ("corrupted", corrupted), ("unlearned", res.model))}
    details = {"method": method, "n_facts": n_facts, "mix_k": mix_k, **{f"acc_{k}": v for k, v in accs.items()},
               "recovery": recovery_ratio(accs["clean"], accs["corrupted"], accs["unlearned"])}
    return AttackResult(res.model, dataclasses.replace(task), details)
