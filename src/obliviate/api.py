"""The Python API. Each CLI subcommand is a thin wrapper over one of these typed functions."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from obliviate import registry
from obliviate.config import ConfigError, build_dataclass, to_dict
from obliviate.data.formatting import PromptFormat
from obliviate.data.io import read_qa_file
from obliviate.data.task import ForgetTask, QAItem
from obliviate.metrics.base import MissingReferenceError
from obliviate.presets import load_preset
from obliviate.report.schema import ModelEntry, Report, write_json_atomic
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.views import build_view
from obliviate.train.loop import RunLog, TrainConfig, run_unlearning

# The columns of the headline table (demo, bench).
HEADLINE = ("forget_quality", "model_utility", "forget_rouge", "privleak")


@dataclass
class UnlearnResult:
    """An unlearned model with the log and the exact configs that produced it."""

    model: torch.nn.Module
    log: RunLog
    method: str
    method_config: dict
    train_config: dict


def list_methods(modality: str | None = None) -> list[str]:
    """Names of the registered methods (optionally one modality: "text" or "image")."""
    return registry.names("method", modality)


def resolve_configs(method: str, benchmark: str | None = None, overrides: dict | None = None,
                    train: dict | None = None) -> tuple[Any, TrainConfig]:
    """Method config and TrainConfig from: dataclass defaults < benchmark preset < overrides."""
    spec = registry.get("method", method).obj
    preset = load_preset(benchmark, method) if benchmark else {}
    mcfg = spec.make_config({**preset.get("method", {}), **(overrides or {})})
    tcfg = build_dataclass(TrainConfig, {**preset.get("train", {}), **(train or {})}, where="train config")
    return mcfg, tcfg


def unlearn(model: torch.nn.Module, tokenizer: Any, forget: ForgetTask | Sequence[QAItem] | str,
            retain: Sequence[QAItem] | str | None = None, method: str = "npo", *, benchmark: str | None = None,
            train: dict | None = None, fmt: PromptFormat | None = None, copy_model: bool = True,
            **overrides: Any) -> UnlearnResult:
    """Make ``model`` forget ``forget`` while keeping ``retain``.

    ``forget``/``retain``: a ForgetTask, lists of QAItem, or paths to JSONL/JSON/CSV files.
    ``overrides``: method config fields (type-checked; unknown keys are errors).
    ``train``: TrainConfig fields (lr, epochs, batch_size, lora, ...). ``benchmark`` picks a
    shipped preset (``presets/<benchmark>/<method>.yaml``) as the starting point.
    """
    task = _as_task(forget, retain)
    info = registry.get("method", method)
    spec = info.obj
    mcfg, tcfg = resolve_configs(method, benchmark, overrides, train)
    m = copy.deepcopy(model) if copy_model else model
    if spec.run is not None:
        t0 = time.perf_counter()
        out = spec.run(mcfg, m, task, tokenizer=tokenizer, train=tcfg, fmt=fmt or PromptFormat())
        log = RunLog(method=method, seconds=time.perf_counter() - t0)
    else:
        needs_ref = any(n.startswith("reference_model") for n in info.needs) and (
            "reference_model" in info.needs or getattr(mcfg, "retain_loss", "") == "kl")
        out, log = run_unlearning(m, tokenizer, task, spec, mcfg, tcfg, fmt, needs_reference=needs_ref)
    return UnlearnResult(out, log, method, to_dict(mcfg), to_dict(tcfg))


def _as_task(forget: Any, retain: Any) -> ForgetTask:
    if isinstance(forget, ForgetTask):
        return forget
    f = read_qa_file(forget) if isinstance(forget, (str, os.PathLike)) else list(forget)
    r = read_qa_file(retain) if isinstance(retain, (str, os.PathLike)) else list(retain or [])
    task = ForgetTask(name="user", forget=f, retain=r)
    task.validate()
    return task


def audit(models: dict[str, torch.nn.Module], task: ForgetTask, tokenizer: Any, *, reference: str | None = None,
          metrics: Sequence[str] | None = None, fmt: PromptFormat | None = None, cache: ScoringCache | None = None,
          roles: dict[str, str] | None = None, runs: dict[str, dict] | None = None,
          out: str | os.PathLike | None = None, kind: str = "audit") -> Report:
    """Score every model once and compute every metric (or ``metrics``) from the shared cache.

    ``reference`` names the retain-only oracle among ``models``; metrics that need it (forget
    quality, PrivLeak) are listed as skipped, with the reason, when it is absent.
    """
    if reference is not None and reference not in models:
        raise ValueError(f"reference {reference!r} is not among the audited models ({', '.join(models)})")
    cache = cache or ScoringCache(tokenizer, fmt)
    names = list(metrics) if metrics is not None else registry.names("metric", "text")
    fns = {n: registry.get("metric", n).obj for n in names}
    views = {name: build_view(m, name, task, cache) for name, m in models.items()}
    ref_view = views.get(reference) if reference else None
    report = Report(kind=kind, task={"name": task.name, "n_forget": len(task.forget), "n_retain": len(task.retain),
                                     "n_holdout": len(task.holdout), **{k: v for k, v in task.metadata.items()
                                                                        if k not in ("idk_answers",)}},
                    reference=reference)
    for name, view in views.items():
        entry = ModelEntry(name=name, role=(roles or {}).get(name, "oracle" if name == reference else "unlearned"),
                           run=(runs or {}).get(name))
        for mname, fn in fns.items():
            try:
                entry.metrics[mname] = fn(view, ref_view).to_dict()
            except MissingReferenceError as e:
                entry.skipped[mname] = str(e)
            except KeyError as e:  # the task lacks a set this metric reads
                entry.skipped[mname] = str(e)
        report.models[name] = entry
    report.citations = [p.record() for p in registry.plugins("metric") if p.name in fns and p.arxiv]
    if out is not None:
        write_json_atomic(report.to_dict(), out)
    return report


def load_task(benchmark: str = "fictional_authors", split: str = "forget10", **kwargs: Any) -> ForgetTask:
    """The ForgetTask of a registered benchmark split."""
    loader = registry.get("benchmark", benchmark).obj
    bench = loader(**kwargs)
    return bench.task(split) if hasattr(bench, "task") else bench
