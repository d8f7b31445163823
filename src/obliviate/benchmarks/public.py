"""The public benchmarks by name: TOFU, MUSE, WMDP and SemEval-2025 Task 4.

``obliviate unlearn|audit|bench --benchmark NAME --split SPLIT --source DIR|HUB_ID`` resolve here, and so
does ``obliviate.load_benchmark`` in Python: the split names each benchmark takes, where its data comes
from (a local copy of the Hub repository, or the Hub id; the loaders in `obliviate.data.loaders` read
both), and the evaluation settings that reproduce the benchmark's own numbers:

- **TOFU** (OpenUnlearning ``configs/eval/tofu.yaml`` and ``configs/generation/default.yaml``, locuslab/
  open-unlearning d3d7cf9): greedy generation of 200 new tokens; every forget item (``forgetXX_perturbed``);
  the retain statistics over ``retain_perturbed`` (OU's ``TOFU_QA_retain_eval``), not the training
  retain split; real authors and world facts; ``holdoutXX`` as the MIA non-members. Headline: OU's default
  suite (forget truth ratio, forget quality, forget probability and ROUGE, model utility, PrivLeak,
  extraction strength).
- **MUSE** (swj0419/muse_bench ``eval.py``): 128 new tokens (VerbMem continuations; KnowMem answers are cut at
  MUSE's stop strings). Headline: VerbMem, KnowMem forget / retain, PrivLeak (MUSE's convention).
- **WMDP** (arXiv 2403.03218): the multiple-choice questions scored by answer-letter likelihood, 8 new tokens
  (the audit's generation-based metrics have nothing to read on WMDP). Headline: WMDP accuracy.
- **SemEval-2025 Task 4**: 128 new tokens (the task's regurgitation scores compare full continuations).
  Headline: the task aggregate.

No set is cut unless the caller asks (``limits``, ``--limit SET=N``); a limit is recorded in the task's
metadata (``eval_limits``) and so in every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from obliviate.config import ConfigError
from obliviate.data import loaders
from obliviate.data.task import ForgetTask
from obliviate.registry import register


@dataclass(frozen=True)
class PublicBenchmark:
    """One public benchmark: its split names, default data source and evaluation defaults."""

    name: str
    splits: tuple[str, ...]  # the values --split accepts
    default_split: str
    default_source: Callable[[str], str]  # split -> Hub id
    load: Callable[[str, str], ForgetTask]  # (split, source) -> task
    max_new_tokens: int  # greedy generation length of the benchmark's own evaluation
    headline: tuple[str, ...]  # the terminal table's columns
    split_help: str
    models: dict[str, str] = field(default_factory=dict)  # split -> "target=HUB_ID retain=HUB_ID" (documentation)


def _load_tofu(split: str, source: str) -> ForgetTask:
    return loaders.load_tofu(split, source)


def _load_muse(split: str, source: str) -> ForgetTask:
    return loaders.load_muse(split, source)


def _wmdp_subsets(split: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in split.replace("+", ",").split(",") if s.strip())


def _load_wmdp(split: str, source: str) -> ForgetTask:
    # A local copy holds the questions (wmdp-<subset>/) and the corpora (wmdp-corpora/) side by side, as
    # OpenUnlearning's setup_data.py lays them out; from the Hub they are two repositories.
    corpora = source if source != loaders.WMDP_HUB else loaders.WMDP_CORPORA_HUB
    return loaders.load_wmdp(_wmdp_subsets(split), source, corpora_source=corpora)


def _load_semeval(split: str, source: str) -> ForgetTask:
    return loaders.load_semeval25(source, fold=split)


TOFU_HEADLINE = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rouge", "privleak",
                 "extraction_strength")
MUSE_HEADLINE = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak_muse")

BENCHMARKS: dict[str, PublicBenchmark] = {
    "tofu": PublicBenchmark(
        "tofu", ("forget01", "forget05", "forget10"), "forget10", lambda s: loaders.TOFU_HUB, _load_tofu, 200,
        TOFU_HEADLINE, "forget01, forget05 or forget10",
        models={"forget10": "target=open-unlearning/tofu_Llama-3.2-1B-Instruct_full "
                            "retain=open-unlearning/tofu_Llama-3.2-1B-Instruct_retain90"}),
    "muse": PublicBenchmark(
        "muse", ("news", "books"), "news", lambda s: loaders.MUSE_HUB[s], _load_muse, 128, MUSE_HEADLINE,
        "news or books (MUSE-News / MUSE-Books)",
        models={"news": "target=muse-bench/MUSE-News_target retain=muse-bench/MUSE-News_retrain",
                "books": "target=muse-bench/MUSE-Books_target retain=muse-bench/MUSE-Books_retrain"}),
    "wmdp": PublicBenchmark(
        "wmdp", ("bio", "cyber", "chem", "bio,cyber"), "bio,cyber", lambda s: loaders.WMDP_HUB, _load_wmdp, 8,
        ("wmdp_accuracy",), "bio, cyber, chem, or a comma list such as bio,cyber"),
    "semeval25": PublicBenchmark(
        "semeval25", ("train", "validation"), "train", lambda s: loaders.SEMEVAL25_HUB, _load_semeval, 128,
        ("semeval_task_score",), "train or validation (the forget_/retain_ fold)"),
}


def is_public(benchmark: str | None) -> bool:
    """True for the names `load_benchmark` resolves (tofu, muse, wmdp, semeval25)."""
    return benchmark in BENCHMARKS


def _check_split(b: PublicBenchmark, split: str) -> str:
    if b.name == "wmdp":
        subsets = _wmdp_subsets(split)
        bad = [s for s in subsets if s not in loaders.WMDP_SUBSETS]
        if subsets and not bad:
            return ",".join(subsets)
    elif split in b.splits:
        return split
    raise ConfigError(f"--split {split!r} is not a {b.name} split; use {b.split_help} "
                      f"(e.g. --benchmark {b.name} --split {b.default_split})")


def check_source(source: str, benchmark: str) -> None:
    """Refuse a local-looking ``source`` that does not exist, naming the option and the fix (a Hub id is
    checked when it is read)."""
    p = Path(source).expanduser()
    if p.exists():
        return
    if source.startswith(("/", ".", "~")) or source.count("/") != 1 or "\\" in source:
        hub = BENCHMARKS[benchmark].default_source(BENCHMARKS[benchmark].default_split)
        raise ConfigError(f"--source {source}: no such file or directory. Give a local copy of the {benchmark} "
                          f"dataset (`huggingface-cli download {hub} --repo-type dataset --local-dir DIR`, then "
                          f"--source DIR) or a Hub id such as {hub}")


def resolve_split(benchmark: str, split: str | None) -> str:
    """``split`` checked against the benchmark's split names, or its default split when None."""
    b = get(benchmark)
    return _check_split(b, split) if split is not None else b.default_split


def get(benchmark: str) -> PublicBenchmark:
    """The public benchmark ``benchmark``; an unknown name lists the known ones."""
    if benchmark not in BENCHMARKS:
        from difflib import get_close_matches

        close = get_close_matches(benchmark, BENCHMARKS, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"--benchmark {benchmark!r}: unknown benchmark{hint}; the public benchmarks are "
                          f"{', '.join(BENCHMARKS)} (and the built-in fictional_authors)")
    return BENCHMARKS[benchmark]


def load_benchmark(benchmark: str, split: str | None = None, source: str | None = None,
                   limits: dict[str, int] | None = None) -> ForgetTask:
    """The ForgetTask of a public benchmark split from ``source`` (a local copy or a Hub id; default:
    the benchmark's Hub dataset). ``limits`` {set name: n} keeps the first n items of those evaluation
    sets (recorded in ``task.metadata["eval_limits"]``; by default every item is evaluated).

    Raises `ConfigError` for an unknown benchmark or split or a missing local source, and
    `obliviate.data.loaders.DatasetUnavailableError` when the data cannot be read (offline Hub)."""
    b = get(benchmark)
    split = resolve_split(benchmark, split)
    src = source if source is not None else b.default_source(split)
    check_source(str(src), benchmark)
    check_limits(limits)
    try:
        task = b.load(split, str(src))
    except loaders.DatasetUnavailableError as e:
        if Path(str(src)).expanduser().exists():  # a local copy without this split's files
            raise loaders.DatasetUnavailableError(f"--split {split} (--source {src}): {e} Pick a split the copy "
                                                  f"holds ({b.split_help}) or complete the copy.") from None
        raise
    task.metadata.setdefault("split", split)
    task.metadata["eval_max_new_tokens"] = b.max_new_tokens
    if limits:
        task.metadata["eval_limits"] = dict(limits)
    return task


def check_limits(limits: dict[str, Any] | None) -> None:
    for name, n in (limits or {}).items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"--limit {name}={n!r}: a limit is a whole number of items, 1 or more")


def _register() -> None:
    papers = {"tofu": ("TOFU: A Task of Fictitious Unlearning for LLMs", "2401.06121",
                       "https://github.com/locuslab/open-unlearning"),
              "muse": ("MUSE: Machine Unlearning Six-Way Evaluation for Language Models", "2407.06460",
                       "https://github.com/swj0419/muse_bench"),
              "wmdp": ("The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", "2403.03218",
                       "https://github.com/centerforaisafety/wmdp"),
              "semeval25": ("SemEval-2025 Task 4: Unlearning sensitive content from Large Language Models",
                            "2504.02883", "")}
    for name, (paper, arxiv, code) in papers.items():
        b = BENCHMARKS[name]

        def loader(split: str | None = None, source: str | None = None, _name: str = name, **kw: Any) -> ForgetTask:
            return load_benchmark(_name, split, source, **kw)

        loader.__doc__ = f"{name} from a local copy or the Hub (splits: {b.split_help})."
        register("benchmark", name, paper=paper, arxiv=arxiv, code=code, summary=loader.__doc__,
                 public=True)(loader)


_register()
