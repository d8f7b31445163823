"""Compare every registered image-unlearning method on the digits benchmark.

For each seed: build the task, the original model and the exact retrain oracle; run each method
on a deep copy of the original; compute UA, RA, TA, MIA-Efficacy, Avg. Gap to the oracle,
U-LiRA (opt-in, shadows shared by every method) and the NeurIPS 2023 challenge score (retrained
arm shared by every method). Results are aggregated over seeds (mean, std, n) into a `Report`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

import obliviate.auditing.classifier as cm
import obliviate.auditing.shadows as sh
from obliviate import registry
from obliviate.config import ConfigError, digest
from obliviate.benchmarks.digits import parse_scenario, load_digits_task, oracle_model, original_model
from obliviate.methods.vision.base import ClassificationTask, VisionContext
from obliviate.metrics.base import MetricResult
from obliviate.report.schema import ModelEntry, Report, write_json_atomic

TABLE_METRICS = ("unlearning_accuracy", "retain_accuracy", "test_accuracy", "test_accuracy_full", "mia_efficacy",
                 "avg_gap", "ulira_auc", "ulira_tpr_at_1pct_fpr", "challenge_score", "relearn_time")


def method_config(name: str, scenario: str, overrides: dict | None = None) -> Any:
    """The config a digits bench run uses: the method's (paper) defaults < ``presets/digits/<name>.yaml``
    (its ``method:`` section, then its ``scenarios: {<scenario>: ...}`` entry) < ``overrides``. The
    presets tune methods whose paper settings do nothing (or destroy the model) on digits; each says
    what it measured in its notes."""
    from obliviate.config import check_fields
    from obliviate.presets import load_preset, preset_path

    spec = registry.get("method", name).obj
    raw = load_preset("digits", name)
    scenarios = raw.get("scenarios") or {}
    kinds = ("random10", "class", "subclass")
    unknown = sorted(set(scenarios) - set(kinds))
    if unknown:
        raise ConfigError(f"{preset_path('digits', name)}: scenarios {unknown}; the digits scenarios are "
                          f"{', '.join(kinds)}")
    kind = parse_scenario(scenario)[0]  # class7 -> class
    merged: dict[str, Any] = {}
    where = f"preset digits/{name}"
    merged.update(check_fields(spec.config_cls, raw.get("method") or {}, where=f"{where}: method {name!r}"))
    merged.update(check_fields(spec.config_cls, scenarios.get(kind) or {}, where=f"{where}: scenarios.{kind}"))
    merged.update(overrides or {})
    return spec.make_config(merged)


def _method_unlearn_fn(name: str, overrides: dict | None,
                       scenario: str = "random10") -> Callable[[nn.Module, ClassificationTask, int], nn.Module]:
    spec = registry.get("method", name).obj
    if spec.run is None:
        raise ValueError(f"method {name!r} has no run(cfg, model, task, ctx); bench_digits runs image methods only")
    cfg = method_config(name, scenario, overrides)

    def unlearn(model: nn.Module, task: ClassificationTask, seed: int) -> nn.Module:
        out = spec.run(cfg, model, task, VisionContext(seed=seed))
        return out if out is not None else model

    unlearn.config = cfg  # type: ignore[attr-defined]
    return unlearn


def _identity(model: nn.Module, task: ClassificationTask, seed: int) -> nn.Module:
    return model


def _retrain(model: nn.Module, task: ClassificationTask, seed: int) -> nn.Module:
    return task.train_fn(task.retain_set, seed)


def _metrics(model: nn.Module, task: ClassificationTask, seed: int) -> dict[str, MetricResult]:
    """UA/RA/TA/MIA with OPTML's test set (class-wise: without the forgotten class), plus, for class-wise
    forgetting, TA on the full test set under its own name."""
    ms = cm.classification_metrics(model, task, seed=seed)
    if task.forget_class is not None:
        full = cm.test_accuracy(model, cm.evaluation_test_set(task, "full"))
        ms["test_accuracy_full"] = MetricResult("test_accuracy_full", full.value, "higher", n=full.n, ci=full.ci,
                                                details={"test_set": "full"})
    return ms


def _aggregate(per_seed: list[MetricResult]) -> dict:
    vals = np.array([r.value for r in per_seed], dtype=np.float64)
    d = per_seed[0].to_dict()
    d.update(value=float(np.nanmean(vals)), std=float(np.nanstd(vals)), n=len(vals), per_seed=vals.tolist(),
             n_examples=per_seed[0].n, ci=per_seed[0].ci if len(vals) == 1 else None)
    return d


class _Checkpoints:
    """Per (seed, method) results of a bench that writes ``out``: kept next to it in
    ``<out stem>.parts/``, each written atomically, so a killed bench rerun with the same
    settings resumes at the first unfinished method. Without ``out`` nothing is kept."""

    def __init__(self, out: str | None, scenario: str, arch: str, shadows: int, challenge: int, overrides: dict):
        self.dir = None
        self.configs: dict[str, dict] = {}  # row -> the method's config: a changed default is another file
        if out is not None:
            from pathlib import Path

            tag = digest([scenario, arch, shadows, challenge, overrides, "audit-v2"], 10)  # v2: U-LiRA OUT = retrained, OPTML class-wise TA
            self.dir = Path(out).parent / f"{Path(out).stem}.parts" / tag

    def _path(self, seed: int, row: str):
        cfg = self.configs.get(row)
        tag = "" if cfg is None else "_" + digest(cfg, 8)
        return self.dir / f"seed{seed}_{row}{tag}.json"

    def done(self, seed: int, row: str) -> bool:
        return self.dir is not None and self._path(seed, row).exists()

    def save(self, seed: int, row: str, ms: dict, secs: float | None, skipped: dict) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic({"metrics": {k: r.to_dict() for k, r in ms.items()}, "seconds": secs, "skipped": skipped},
                          self._path(seed, row))

    def restore(self, seed: int, row: str, rows: dict, seconds: dict, skipped: dict) -> None:
        import json

        d = json.loads(self._path(seed, row).read_text())
        for k, r in d["metrics"].items():
            r["value"] = float("nan") if r["value"] is None else r["value"]
            r["ci"] = tuple(r["ci"]) if r["ci"] is not None else None
            rows.setdefault(row, {}).setdefault(k, []).append(MetricResult(**r))
        if d["seconds"] is not None:
            seconds.setdefault(row, []).append(d["seconds"])
        if d["skipped"]:
            skipped.setdefault(row, {}).update(d["skipped"])


def bench_digits(methods: Sequence[str] | str = "all", scenario: str = "random10", seeds: Sequence[int] = (0, 1, 2),
                 arch: str = "mlp", ulira_shadows: int = 16, challenge_models: int = 16, out: str | None = None,
                 method_overrides: dict[str, dict] | None = None, progress: bool = False) -> Report:
    """Benchmark image-unlearning methods on digits and return (and optionally write) a Report.

    ``methods``: registry names of image methods, or ``"all"`` (``registry.names("method", "image")``).
    ``ulira_shadows``: U-LiRA shadow models per seed (0 disables; K shadow trainings are shared by all
    methods, each method then unlearns in every shadow). ``challenge_models``: models per arm of the
    challenge score (0 disables). ``method_overrides``: ``{method: {config field: value}}``.
    Rows "original" and "retrain" (the exact oracle) are always included.
    """
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = registry.names("method", "image") if methods == "all" or list(methods) == ["all"] else list(methods)
    if not names:
        raise ConfigError("methods is empty; name at least one image method, or 'all'")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed (e.g. --seeds 0 or --seeds '[0,1,2]')")
    for n in names:
        modalities = registry.get("method", n).modalities
        if "image" not in modalities:
            raise ConfigError(f"method {n!r} unlearns {'/'.join(modalities)} models; the digits benchmark runs image "
                              f"methods: {', '.join(registry.names('method', 'image'))}")
    overrides = method_overrides or {}
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise ValueError(f"method_overrides for {', '.join(unknown)}, which are not benchmarked ({', '.join(names)})")
    fns = {n: _method_unlearn_fn(n, overrides.get(n), scenario) for n in names}
    rows: dict[str, dict[str, list[MetricResult]]] = {}
    seconds: dict[str, list[float]] = {}
    skipped: dict[str, dict[str, str]] = {}
    task = None
    ckpt = _Checkpoints(out, scenario, arch, ulira_shadows, challenge_models, overrides)
    ckpt.configs = {n: dataclasses.asdict(f.config) for n, f in fns.items() if dataclasses.is_dataclass(f.config)}
    for seed in seeds:
        task = load_digits_task(scenario, seed, arch)
        original = original_model(scenario, seed, arch)
        oracle = oracle_model(scenario, seed, arch)
        todo = [r for r in ["original", "retrain", *names] if not ckpt.done(seed, r)]
        shadows = sh.train_ulira_shadows(task, ulira_shadows, seed) if ulira_shadows and todo else None
        arm = sh.train_retrained_arm(task, challenge_models, seed) if challenge_models and todo else None
        oracle_metrics = _metrics(oracle, task, seed)
        # relearning target: the original model's accuracy on the forget set
        relearn_target = 100.0 - cm.classification_metrics(original, task, seed=seed)["unlearning_accuracy"].value
        candidates: list[tuple[str, Callable, nn.Module | None]] = [("original", _identity, original),
                                                                    ("retrain", _retrain, oracle)]
        candidates += [(n, fns[n], None) for n in names]
        for row, fn, model in candidates:
            if ckpt.done(seed, row):  # finished by an earlier (killed) run of the same bench
                ckpt.restore(seed, row, rows, seconds, skipped)
                continue
            if model is None:
                t0 = time.perf_counter()
                try:
                    model = cm.call_unlearn(fn, original, task, seed)
                except Exception as e:  # a broken method must not sink the whole comparison
                    skipped.setdefault(row, {})["run"] = f"{type(e).__name__}: {e}"
                    ckpt.save(seed, row, {}, None, skipped[row])
                    continue
                seconds.setdefault(row, []).append(time.perf_counter() - t0)
                diverged = cm.non_finite_outputs(model, task)
                if diverged:  # NaN logits would crash the MIA's SVC and sink every other row's results
                    skipped.setdefault(row, {})["run"] = diverged
                    ckpt.save(seed, row, {}, seconds[row][-1], skipped[row])
                    continue
            if progress:
                print(f"[digits/{scenario} seed {seed}] {row}")
            ms = oracle_metrics if row == "retrain" else _metrics(model, task, seed)
            ms = dict(ms)
            ms["avg_gap"] = cm.avg_gap(ms, oracle_metrics)
            # an audit that cannot be computed for one row (too few shadow scores ...) is recorded as
            # skipped with its reason instead of sinking the whole comparison
            if shadows is not None:
                try:
                    u = sh.ulira(model, oracle, task, fn, shadows=shadows)
                    ms["ulira_auc"] = u
                    ms["ulira_tpr_at_1pct_fpr"] = MetricResult(
                        "ulira_tpr_at_1pct_fpr", u.details["tpr_at_1pct_fpr"], "lower", n=u.details["n_neg"],
                        compared_to="oracle", details={"supported": u.details["tpr_at_1pct_fpr_supported"]})
                    ms["ulira_per_example_auc_std"] = MetricResult(
                        "ulira_per_example_auc_std", u.details["per_example_auc_std"], "lower",
                        n=u.details["n_examples_scored"], details={
                            k: u.details[k] for k in ("per_example_auc_p10", "per_example_auc_p50",
                                                      "per_example_auc_p90", "n_targets", "n_examples")})
                except ValueError as e:
                    skipped.setdefault(row, {})["ulira"] = str(e)
            ms["relearn_time"] = cm.relearn_time(model, task.forget_set, relearn_target, seed=seed)
            if arm is not None:
                try:
                    ms["challenge_score"] = sh.challenge_score(original, task, fn, seed=seed, retrained=arm)
                except ValueError as e:
                    skipped.setdefault(row, {})["challenge_score"] = str(e)
            for k, r in ms.items():
                rows.setdefault(row, {}).setdefault(k, []).append(r)
            ckpt.save(seed, row, ms, seconds[row][-1] if row in seconds else None, skipped.get(row, {}))

    assert task is not None, "bench_digits needs at least one seed"
    report = Report(kind="bench", task={
        "benchmark": "digits", "scenario": scenario, "arch": arch, "seeds": list(seeds),
        "forget_size": len(task.forget_set), "retain_size": len(task.retain_set), "test_size": len(task.test_set),
        "ulira_shadows": ulira_shadows, "challenge_models": challenge_models, "recipe": task.metadata["recipe"],
    }, reference="retrain")
    for row, metrics in rows.items():
        run: dict[str, Any] = {}
        if row in seconds:
            run["seconds"] = float(np.mean(seconds[row]))
        if row in fns:
            run["method"] = row
            run["config"] = dataclasses.asdict(fns[row].config) if dataclasses.is_dataclass(fns[row].config) else {}
        role = {"original": "target", "retrain": "oracle"}.get(row, "unlearned")
        report.models[row] = ModelEntry(row, {k: _aggregate(v) for k, v in metrics.items()},
                                        skipped=skipped.get(row, {}), run=run or None, role=role)
    for row, why in skipped.items():
        if row not in report.models:
            report.models[row] = ModelEntry(row, skipped=why, role="unlearned")
    cites = [registry.get("benchmark", "digits")] + [registry.get("method", n) for n in names]
    report.citations = [p.record() for p in cites]
    report.notes.append("Accuracies, MIA-Efficacy and gaps in percent; values are means over seeds; 'std' is the "
                        "population std (ddof=0) over seeds.")
    report.notes.append("U-LiRA: IN = shadows trained with x then unlearned by the method, OUT = shadows trained "
                        "without x; AUC over every shadow as the target model (attacked with the others), 50 ideal. "
                        "The retrain row runs exact retraining as the method, so its U-LiRA is measured, not 50 by "
                        "construction.")
    from obliviate.presets import list_presets

    tuned = [m for b, m in list_presets(image=True) if b == "digits" and m in names]
    if tuned:
        report.notes.append(f"Method settings: each method's paper defaults, except the digits presets of "
                            f"{', '.join(tuned)} (src/obliviate/presets/digits/, each with its measurements); the "
                            "configs used are in the provenance.")
    if scenario.startswith("class"):
        report.notes.append("Class-wise: TA and the MIA's non-member set use the test set without the forgotten "
                            "class (OPTML-Group's definition); test_accuracy_full keeps every test example.")
    if ulira_shadows and scenario != "random10":
        report.notes.append(
            "U-LiRA's shadows each train on a random half of the forget set, so they model forgetting "
            "individual examples; for a whole class or sub-class an OUT shadow still knows the class from the "
            "other half. Read U-LiRA mainly on the random10 scenario.")
    if out:
        write_json_atomic(report.to_dict(), out)
    return report


SHORT = {"unlearning_accuracy": "UA", "retain_accuracy": "RA", "test_accuracy": "TA", "mia_efficacy": "MIA-Eff",
         "avg_gap": "Avg.Gap", "ulira_tpr_at_1pct_fpr": "U-LiRA TPR@1%", "ulira_auc": "U-LiRA AUC", "test_accuracy_full": "TA(full)",
         "ulira_per_example_auc_std": "U-LiRA per-ex. AUC std",
         "challenge_score": "Challenge", "relearn_time": "Relearn steps"}


def print_digits_table(report: Report, metrics: Sequence[str] = TABLE_METRICS, console: Any = None) -> None:
    """Print the comparison as a rich table: mean ± std over seeds, seconds per run."""
    from obliviate.report.table import print_seed_table

    t = report.task
    print_seed_table(report, metrics, f"digits/{t.get('scenario')} ({t.get('arch')}, seeds {t.get('seeds')}; % except "
                     "Challenge)", SHORT, console, width=140)
