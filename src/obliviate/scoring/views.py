"""Build an `AuditView` for a model on a QA ForgetTask: every set scored once, through the cache."""

from __future__ import annotations

import numpy as np
import torch

from obliviate.data.formatting import Turns
from obliviate.data.task import ForgetTask, QAItem
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.types import AuditView

# Sets whose greedy generations the ROUGE / fluency / familiarity metrics read.
GENERATED_SETS = ("forget", "retain", "world_facts", "real_authors", "knowmem_forget", "knowmem_retain")


def _score_items(cache: ScoringCache, model: torch.nn.Module, key: str, items: list[QAItem], view: AuditView,
                 context: Turns = (), generate: bool = False) -> list[str]:
    """Score one QA set's answers, paraphrases and perturbed answers; returns its prompts (whose KV
    the cache keeps for the generation that follows when ``generate``)."""
    fmt, tok = cache.fmt, cache.tokenizer
    prompts = [fmt.prompt(it.question, tok, tuple(context) + it.context) for it in items]
    ids = [it.id for it in items]
    # the answer, the paraphrase and the k perturbed answers share each prompt: one prompt pass for all
    has_para = all(it.paraphrased_answer for it in items)
    k = min((len(it.perturbed_answers) for it in items), default=0)
    keys = [f"{key}:answer"] + ([f"{key}:para"] if has_para else []) + [f"{key}:pert{j}" for j in range(k)]
    answers = [[fmt.answer(it.answer, tok) for it in items]]
    answers += [[fmt.answer(it.paraphrased_answer or "", tok) for it in items]] if has_para else []
    answers += [[fmt.answer(it.perturbed_answers[j], tok) for it in items] for j in range(k)]
    scored = cache.score_group(model, keys, prompts, answers, ids, keep_kv=generate)
    view.sets[key] = scored[0]
    view.sets[key].answers = [it.answer for it in items]
    # The questions themselves (familiarity probes exclude question words from the answer anchors).
    view.extra[f"question:{key}"] = np.array([it.question for it in items], dtype=object)
    if any(it.group for it in items):
        # Per-example groups (TOFU author, SemEval sub-task) for metrics that aggregate by group.
        view.extra[f"group:{key}"] = np.array([it.group for it in items], dtype=object)
    if has_para:
        view.sets[f"{key}_para"] = scored[1]
    if k:
        view.perturbed[key] = scored[1 + has_para:]
    return prompts


def icl_context(task: ForgetTask, key: str) -> Turns:
    """MUSE KnowMem asks each question after its split's in-context examples (``knowmem/*_qa_icl``,
    kept by the loader in ``metadata["knowmem_icl"]``), given as earlier user/assistant turns: the
    plain format writes each as a prompt and its answer separated by blank lines, a chat format as
    conversation turns (as OpenUnlearning does). Other sets have no context."""
    if not key.startswith("knowmem_"):
        return ()
    shots = task.metadata.get("knowmem_icl", {}).get(f"{key[len('knowmem_'):]}_qa_icl") or []
    return tuple(turn for ex in shots for turn in (("user", ex["question"]), ("assistant", ex["answer"])))


def eval_sets_of(task: ForgetTask, limits: dict[str, int] | None = None) -> dict[str, list[QAItem]]:
    """The QA sets an audit scores, by name: forget, retain, holdout and the task's eval sets.

    An eval set named ``retain`` is the retain set *for evaluation* and replaces the training retain
    split: TOFU scores its retain statistics over ``retain_perturbed`` (OpenUnlearning's
    ``TOFU_QA_retain_eval``), which carries the paraphrased and perturbed answers, not over
    ``retain90``. Every item is scored unless ``limits`` {set name: n} keeps the first n items of a set
    (the default comes from ``task.metadata["eval_limits"]``, which benchmarks and users set
    explicitly; the report records it)."""
    limits = (task.metadata.get("eval_limits") or {}) if limits is None else limits
    sets = {"forget": task.forget, "retain": task.retain, "holdout": task.holdout, **task.eval_sets}
    unknown = sorted(set(limits) - set(sets))
    if unknown:
        raise ValueError(f"limits name set(s) {unknown} that task {task.name!r} does not have; its sets are "
                         f"{', '.join(k for k, v in sets.items() if v)}")
    return {k: list(v[:limits[k]] if k in limits else v) for k, v in sets.items()}


def build_view(model: torch.nn.Module, name: str, task: ForgetTask, cache: ScoringCache, *, generate: bool = True,
               limits: dict[str, int] | None = None, gradnorm: bool = False) -> AuditView:
    """Score ``model`` on every set of ``task`` (forget, retain, holdout, eval sets; see `eval_sets_of`
    for which items, and ``limits``). ``gradnorm`` adds the per-example gradient norms of forget and
    holdout (a backward pass each; opt-in).
    """
    view = AuditView(model_name=name)
    sets = eval_sets_of(task, limits)
    to_generate = []  # (scored set, prompts): every set's generations in one pooled call, at the end
    for key, items in sets.items():
        if items:
            gen = generate and key in GENERATED_SETS
            prompts = _score_items(cache, model, key, list(items), view, icl_context(task, key), gen)
            if gen:
                to_generate.append((view.sets[key], prompts))
    for key, texts in (("forget_text", task.forget_texts), ("retain_text", task.retain_texts),
                       ("holdout_text", task.holdout_texts)):
        if texts:
            view.sets[key] = cache.score(model, key, [""] * len(texts), list(texts), append_eos=False)
    verbmem = verbmem_pairs(task, cache)
    if verbmem:
        prompts, refs = zip(*verbmem)
        view.sets["verbmem"] = cache.score(model, "verbmem", list(prompts), list(refs), append_eos=False)
        if generate:
            to_generate.append((view.sets["verbmem"], list(prompts)))
    cache.generate_into(model, to_generate)
    privleak = task.metadata.get("privleak") or {}
    for split in ("forget", "holdout"):
        texts = privleak.get(split)
        if texts:
            view.sets[f"privleak_{split}"] = cache.score(model, f"privleak_{split}", [""] * len(texts), list(texts),
                                                         append_eos=False)
    if gradnorm:
        from obliviate.scoring.gradnorm import gradnorms

        for key in ("forget", "holdout"):
            items = getattr(task, key)
            if items:
                view.extra[f"gradnorm:{key}"] = gradnorms(model, cache.tokenizer, list(items), cache.fmt)
    return view


def verbmem_pairs(task: ForgetTask, cache: ScoringCache, prompt_tokens: int = 32,
                  max_texts: int = 100) -> list[tuple[str, str]]:
    """(prompt, reference continuation) pairs for MUSE VerbMem.

    ``task.metadata["verbmem"]`` (a list of ``{"prompt", "gt"}`` records, as MUSE ships) wins;
    otherwise each of the first ``max_texts`` forget texts (MUSE uses 100 excerpts; a corpus such as
    WMDP's would otherwise cost a generation per document) is split after its first ``prompt_tokens``
    tokens (texts too short to leave a continuation are skipped). As MUSE does, the reference is cut to as many tokens as
    the cache generates (``cache.max_new_tokens``; MUSE: 128) so ROUGE compares like with like.
    """
    tok, n_new = cache.tokenizer, cache.max_new_tokens
    pairs: list[tuple[str, str]] = []
    explicit = task.metadata.get("verbmem")
    if explicit:
        for rec in explicit:
            gt_ids = tok(rec["gt"], add_special_tokens=False)["input_ids"][:n_new]
            pairs.append((rec["prompt"], tok.decode(gt_ids, skip_special_tokens=True)))
        return pairs
    for text in task.forget_texts[:max_texts]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= prompt_tokens:
            continue
        pairs.append((tok.decode(ids[:prompt_tokens], skip_special_tokens=True),
                      tok.decode(ids[prompt_tokens:prompt_tokens + n_new], skip_special_tokens=True)))
    return pairs
