"""The Python API. Each CLI subcommand is a thin wrapper over one of these typed functions."""

from __future__ import annotations

import copy
import inspect
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from obliviate import registry
from obliviate.config import build_dataclass, to_dict
from obliviate.data.formatting import PromptFormat
from obliviate.data.io import read_qa_file
from obliviate.data.task import ForgetTask, QAItem
from obliviate.metrics.base import MissingReferenceError
from obliviate.presets import load_preset
from obliviate.report.schema import ModelEntry, Report, write_json_atomic
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.views import build_view
from obliviate.train.loop import RunLog, TrainConfig, run_unlearning

# Task metadata that holds data rather than a description: left out of the report's task header.
BULK_METADATA = ("idk_answers", "verbmem", "privleak", "knowmem_icl", "retain2_texts")

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


def prompt_format(tokenizer: Any, fmt: PromptFormat | str | None = None, *, system_prompt: str | None = None,
                  template_vars: dict[str, Any] | None = None, template: str | None = None) -> PromptFormat:
    """The prompt format for ``tokenizer``: a `PromptFormat` as given, or built from a kind
    (``"auto"`` (default) = the chat template when the tokenizer has one, ``"chat"``, ``"plain"``, or
    ``"template"`` with ``template``), the system prompt and chat-template variables."""
    if isinstance(fmt, PromptFormat):
        if system_prompt is not None or template_vars or template:
            raise ValueError("give either a PromptFormat or system_prompt/template_vars/template, not both")
        return fmt
    return PromptFormat.for_tokenizer(tokenizer, fmt or "auto", system_prompt=system_prompt,
                                      template_vars=template_vars, template=template)


def unlearn(model: torch.nn.Module, tokenizer: Any, forget: ForgetTask | Sequence[QAItem] | str,
            retain: Sequence[QAItem] | str | None = None, method: str = "npo", *, benchmark: str | None = None,
            train: dict | None = None, fmt: PromptFormat | str | None = None, copy_model: bool = True,
            **overrides: Any) -> UnlearnResult:
    """Make ``model`` forget ``forget`` while keeping ``retain``.

    ``forget``/``retain``: a ForgetTask, lists of QAItem, or paths to JSONL/JSON/CSV files.
    ``overrides``: method config fields (type-checked; unknown keys are errors).
    ``train``: TrainConfig fields (lr, epochs, batch_size, lora, ...). ``benchmark`` picks a
    shipped preset (``presets/<benchmark>/<method>.yaml``) as the starting point. ``fmt``: a
    `PromptFormat` or a kind for :func:`prompt_format` (default ``"auto"``: the tokenizer's chat
    template when it has one, else the plain ``Question:/Answer:`` tags).
    """
    task = _as_task(forget, retain)
    fmt = prompt_format(tokenizer, fmt)
    info = registry.get("method", method)
    spec = info.obj
    mcfg, tcfg = resolve_configs(method, benchmark, overrides, train)
    m = copy.deepcopy(model) if copy_model else model
    if spec.run is not None:
        t0 = time.perf_counter()
        out = spec.run(mcfg, m, task, tokenizer=tokenizer, train=tcfg, fmt=fmt)
        log = RunLog(method=method, seconds=time.perf_counter() - t0)
    else:
        # A frozen reference copy costs a model's worth of memory: build it only when the method
        # needs one, or when its retain term is KL to the original model.
        needs_ref = "reference_model" in info.needs or getattr(mcfg, "retain_loss", "") == "kl"
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
          metrics: Sequence[str] | None = None, fmt: PromptFormat | str | None = None,
          cache: ScoringCache | None = None,
          roles: dict[str, str] | None = None, runs: dict[str, dict] | None = None,
          attacks: Sequence[str] = (), attack_params: dict[str, dict] | None = None,
          attack_models: Sequence[str] | None = None, gradnorm: bool = False, ulira_shadows: int = 0,
          out: str | os.PathLike | None = None, kind: str = "audit") -> Report:
    """Score every model once and compute every metric (or ``metrics``) from the shared cache.

    ``reference`` names the retain-only oracle among ``models``; metrics that need it (forget
    quality, PrivLeak) are listed as skipped, with the reason, when it is absent. ``fmt``: the
    prompt format every set is scored and generated in (as for :func:`unlearn`; default ``"auto"``).
    ``attacks``: registered attack names applied to each model in ``attack_models`` (default:
    every model but the reference); each attacked model is audited as ``<model>@<attack>`` and
    ``report.tables["attacks"]`` lists every metric before and after, plus the share of the
    removed forget knowledge that the attack brings back. ``gradnorm`` adds the per-example
    gradient norms that the gradient-norm MIA reads (one backward pass per forget/holdout item).
    ``ulira_shadows`` = K > 0 adds the U-LiRA per-example attack (``metrics.lm_ulira``): K shadow
    fine-tunes of the benchmark's recipe (cached), then one AUC per model against the reference.
    """
    if reference is not None and reference not in models:
        raise ValueError(f"reference {reference!r} is not among the audited models ({', '.join(models)})")
    cache = cache or ScoringCache(tokenizer, prompt_format(tokenizer, fmt))
    names = list(metrics) if metrics is not None else registry.names("metric", "text")
    fns = {n: registry.get("metric", n).obj for n in names}
    views = {name: build_view(m, name, task, cache, gradnorm=gradnorm) for name, m in models.items()}
    ref_view = views.get(reference) if reference else None
    report = Report(kind=kind, task={"name": task.name, "n_forget": len(task.forget), "n_retain": len(task.retain),
                                     "n_holdout": len(task.holdout), **{k: v for k, v in task.metadata.items()
                                                                        if k not in BULK_METADATA}},
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
    if ulira_shadows:
        _add_ulira(report, models, task, tokenizer, cache, reference, ulira_shadows)
    if attacks:
        _run_attacks(report, models, views, task, tokenizer, cache, fns, ref_view, reference, attacks,
                     attack_params or {}, attack_models)
    used = set(fns) | set(attacks) | ({"ulira"} if ulira_shadows else set())
    report.citations = [p.record() for p in registry.plugins() if p.name in used and p.arxiv]
    if out is not None:
        write_json_atomic(report.to_dict(), out)
    return report


def _add_ulira(report: Report, models: dict, task: ForgetTask, tokenizer: Any, cache: ScoringCache,
               reference: str | None, n_shadows: int) -> None:
    from obliviate.metrics.lm_ulira import lm_ulira, train_lm_shadows

    try:
        if reference is None:
            raise MissingReferenceError("U-LiRA compares each model with the retrain oracle; pass reference=")
        shadows = train_lm_shadows(task, n_shadows)
    except MissingReferenceError as e:
        for entry in report.models.values():
            entry.skipped["ulira"] = str(e)
        return
    for name, model in models.items():
        try:
            report.models[name].metrics["ulira"] = lm_ulira(model, models[reference], task, tokenizer,
                                                            shadows=shadows, cache=cache).to_dict()
        except ValueError as e:  # too few IN/OUT shadow scores for every item
            report.models[name].skipped["ulira"] = str(e)


def load_task(benchmark: str = "fictional_authors", split: str = "forget10", **kwargs: Any) -> ForgetTask:
    """The ForgetTask of a registered benchmark split."""
    loader = registry.get("benchmark", benchmark).obj
    bench = loader(**kwargs)
    return bench.task(split) if hasattr(bench, "task") else bench


# Knowledge measures for the recovery figure: answer probability and ROUGE-L on the forget set.
RECOVERY_METRICS = ("forget_prob", "forget_rouge")


def recovered_share(k_target: float, k_unlearned: float, k_attacked: float) -> float:
    """Share of the knowledge removed by unlearning that an attack brings back:
    (K_attacked - K_unlearned) / (K_target - K_unlearned); NaN when nothing was removed."""
    removed = k_target - k_unlearned
    return float("nan") if removed <= 1e-12 else (k_attacked - k_unlearned) / removed


def _run_attacks(report: Report, models: dict, views: dict, task: ForgetTask, tokenizer: Any, cache: ScoringCache,
                 fns: dict, ref_view: Any, reference: str | None, attacks: Sequence[str], params: dict,
                 targets: Sequence[str] | None) -> None:
    rows = []
    target_name = next((n for n, e in report.models.items() if e.role == "target"), None)
    for aname in attacks:
        afn = registry.get("attack", aname).obj
        for mname in targets if targets is not None else [n for n in models if n != reference]:
            kw = dict(params.get(aname, {}))
            if "fmt" in inspect.signature(afn).parameters:
                kw.setdefault("fmt", cache.fmt)  # attacks encode through the audit's prompt format
            res = afn(models[mname], task, tokenizer, **kw)
            label = f"{mname}@{aname}"
            view = build_view(res.model, label, res.task, cache)
            entry = ModelEntry(name=label, role="attacked", run={"attack": aname, "of": mname, **res.details})
            for metric, fn in fns.items():
                try:
                    entry.metrics[metric] = fn(view, ref_view).to_dict()
                except (MissingReferenceError, KeyError) as e:
                    entry.skipped[metric] = str(e)
            report.models[label] = entry
            before = report.models[mname].metrics
            for metric, r in entry.metrics.items():
                if metric in before:
                    row = {"model": mname, "attack": aname, "metric": metric, "before": before[metric]["value"],
                           "after": r["value"]}
                    if metric in RECOVERY_METRICS and target_name and metric in report.models[target_name].metrics:
                        kt = report.models[target_name].metrics[metric]["value"]
                        row["recovered_share"] = recovered_share(kt, row["before"], row["after"])
                    rows.append(row)
    report.tables["attacks"] = rows


def bench(benchmark: str = "fictional_authors", methods: Sequence[str] | str = ("ga", "graddiff", "npo", "simnpo"),
          split: str = "forget10", seeds: Sequence[int] = (0,), attacks: Sequence[str] = ("quantize_int4",),
          out_dir: str | os.PathLike = "obliviate-bench", quick: bool = False,
          attack_params: dict[str, dict] | None = None) -> Report:
    """Run ``methods`` x ``seeds`` on a benchmark split, audit everything against the oracle, and
    write ``report.json`` and ``report.html`` into ``out_dir``. ``methods="all"`` runs every
    registered text method that has a preset for the benchmark. ``attack_params`` gives an
    attack's options by name, as in :func:`audit`."""
    from obliviate.benchmarks.fictional_authors import load_fictional_authors
    from obliviate.demo import benchmark_recipe
    from obliviate.presets import list_presets

    if benchmark != "fictional_authors":
        raise ValueError(f"bench supports the built-in 'fictional_authors' language benchmark here; for images use "
                         f"`obliviate bench-vision` (got {benchmark!r})")
    if methods == "all" or list(methods) == ["all"]:
        methods = [m for b, m in list_presets() if b == benchmark and m in registry.names("method", "text")]
    out_dir = Path(out_dir)
    entries: dict[str, Any] = {}
    reports = []
    for seed in seeds:
        b = load_fictional_authors(benchmark_recipe(quick, seed))
        tok, task = b.tokenizer(), b.task(split)
        models = {"target": b.load("target"), "oracle": b.load("oracle", split)}
        runs = {}
        for m in methods:
            models[m], runs[m] = _bench_run(m, models["target"], tok, task, benchmark, b.fmt, seed,
                                            out_dir / "models" / f"seed{seed}" / m)
        rep = audit(models, task, tok, reference="oracle", fmt=b.fmt, roles={"target": "target", "oracle": "oracle"},
                    runs=runs, attacks=attacks, attack_params=attack_params, kind="bench")
        reports.append((seed, rep))
        for name, e in rep.models.items():
            entries[f"{name}" if len(seeds) == 1 else f"{name}/seed{seed}"] = e
    report = reports[0][1] if len(reports) == 1 else _merge_seeds(reports)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report.to_dict(), out_dir / "report.json")
    try:
        from obliviate.report.html import write_html

        write_html(report, out_dir / "report.html")
    except ImportError:
        pass
    return report


def _bench_run(method: str, target: torch.nn.Module, tok: Any, task: ForgetTask, benchmark: str,
               fmt: PromptFormat, seed: int, save_dir: Path) -> tuple[torch.nn.Module, dict]:
    """Unlearn one method for ``bench``, or reload it when a previous (killed) bench already
    finished it: each finished model is saved atomically with its run record, so a rerun of the
    same command resumes at the first method it has not done."""
    import json

    from transformers import PreTrainedModel

    from obliviate.models.loading import save_model_atomic

    record = save_dir / "run.json"
    if record.exists():
        from transformers import AutoModelForCausalLM

        run = json.loads(record.read_text())
        model = AutoModelForCausalLM.from_pretrained(str(save_dir), use_safetensors=True)
        return model.eval(), run
    res = unlearn(target, tok, task, method=method, benchmark=benchmark, fmt=fmt,
                  train={"seed": seed, "progress": False})
    run = {"seconds": res.log.seconds, "steps": res.log.steps, "stopped": res.log.stopped,
           "method_config": res.method_config, "train_config": res.train_config}
    if isinstance(res.model, PreTrainedModel):
        # Inference-time wrappers (ECO, WHP logits) are cheap to rebuild and are not saved here.
        save_model_atomic(res.model, None, save_dir, extra_files={"run.json": json.dumps(run, default=str)})
    return res.model, run


def _merge_seeds(reports: list[tuple[int, Report]]) -> Report:
    """One report whose models are named ``<model>/seed<k>``, plus a mean/std table per model."""
    import numpy as np

    first = reports[0][1]
    merged = Report(kind="bench", task=first.task, reference=first.reference, citations=first.citations)
    for seed, rep in reports:
        for name, e in rep.models.items():
            merged.models[f"{name}/seed{seed}"] = e
        for k, v in rep.tables.items():
            merged.tables.setdefault(k, []).extend([{**row, "seed": seed} for row in v] if isinstance(v, list) else [v])
    summary = {}
    for name in first.models:
        per_metric: dict[str, list[float]] = {}
        for seed, rep in reports:
            for m, r in rep.models[name].metrics.items():
                if r["value"] is not None:
                    per_metric.setdefault(m, []).append(r["value"])
        summary[name] = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n_seeds": len(v)}
                         for m, v in per_metric.items()}
    merged.tables["seed_summary"] = summary
    return merged
