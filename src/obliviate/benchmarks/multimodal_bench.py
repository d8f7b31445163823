"""Forget-MI on the built-in multimodal benchmark: original, exact retrain and Forget-MI, over seeds.

For each seed: build the patient-forgetting task, the original model and the retrain oracle; run
each Forget-MI variant on a copy of the original; score every model once on D_f, D_r and D_t
(joint logits) and hand the arrays to `obliviate.metrics.multimodal`: forget/test macro AUC and
F1 and the SVC membership score for each feature. Aggregated over seeds into a `Report` (mean,
population std, n), with seconds per run. "Before" is the ``original`` row, the target is the
``retrain`` row.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from obliviate import registry
from obliviate.benchmarks.multimodal import SPLITS, load_multimodal_task, oracle_model, original_model
from obliviate.config import ConfigError
from obliviate.methods.vision.base import VisionContext
from obliviate.metrics.base import MetricResult
from obliviate.metrics.multimodal import FEATURES, multimodal_metrics
from obliviate.report.schema import ModelEntry, Report

TABLE_METRICS = ("forget_auc", "forget_f1", "test_auc", "test_f1", "mia_svc_logits", "mia_svc_entropy", "mia_svc_loss")
# Rows run by default: (row name, method, config overrides). ``forget_mi`` is the paper's config
# (push_from_noisy, image noise 0.1, hinge margin 1). ``forget_mi_pull`` is the use_noise=true mode with
# the "large noise" the upstream script's comment asks for (image std 0.5), chosen on forget10 seeds 0-2
# and checked on seeds 3-5 and on forget03/06 (benchmarks/README.md):
# - image_noise "fixed": one noisy copy of D_f. Redrawn every epoch (upstream), the pull converges to the
#   noise-averaged target, which the original classifies as it memorised (D_f AUC 0.96-0.99 against 0.78
#   for one draw), so D_f AUC stays at 0.98-1.00;
# - hinge_margin 5: with the paper's +1 the retain distances pass their caps within 3 epochs (UR 4.1 at
#   epoch 3; the embeddings' norms are 12-17) and the retain terms then give no gradient: D_t AUC falls
#   to 0.78-0.83. At +5 they stay below their caps (UR <= 3.5) and keep pulling;
# - lr 1e-2 for 60 epochs: the pull reaches the retrained model's D_f AUC (30 epochs stop at 0.96).
VARIANTS: dict[str, tuple[str, dict]] = {
    "forget_mi": ("forget_mi", {}),
    "forget_mi_pull": ("forget_mi", {"mode": "pull_to_noisy", "image_noise_std": 0.5, "image_noise": "fixed",
                                     "hinge_margin": 5.0, "lr": 1e-2, "epochs": 60}),
}


@torch.no_grad()
def joint_logits(model: nn.Module, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, C), labels (N,)) of the model's joint head on a dataset of (image, tokens, label)."""
    img, tok, y = dataset.tensors
    was = model.training
    model.eval()
    out = model(img, tok).logits.numpy()
    model.train(was)
    return out, y.numpy()


def _aggregate(per_seed: list[MetricResult]) -> dict:
    vals = np.array([r.value for r in per_seed], dtype=np.float64)
    d = per_seed[0].to_dict()
    d.update(value=float(np.mean(vals)), std=float(np.std(vals)), n=len(vals), per_seed=vals.tolist(),
             n_examples=per_seed[0].n, ci=per_seed[0].ci if len(vals) == 1 else None)
    return d


def bench_multimodal(variants: dict[str, tuple[str, dict]] | None = None, split: str = "forget10",
                     seeds: Sequence[int] = (0, 1, 2), features: Sequence[str] = FEATURES, out: str | None = None,
                     progress: bool = False) -> Report:
    """Run the Forget-MI ``variants`` ({row: (method, overrides)}, default `VARIANTS`) on ``split``
    for every seed, next to the original and the retrain oracle; returns (and writes to ``out``) the Report."""
    if split not in SPLITS:
        raise ConfigError(f"unknown multimodal split {split!r}; use one of {', '.join(SPLITS)}")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed (e.g. --seeds 0 or --seeds '[0,1,2]')")
    variants = dict(VARIANTS if variants is None else variants)
    specs = {}
    for row, (name, overrides) in variants.items():
        info = registry.get("method", name)
        if "multimodal" not in info.modalities:
            raise ConfigError(f"method {name!r} unlearns {'/'.join(info.modalities)} models; the multimodal benchmark "
                              f"runs: {', '.join(registry.names('method', 'multimodal'))}")
        specs[row] = (info.obj, info.obj.make_config(overrides))
    rows: dict[str, dict[str, list[MetricResult]]] = {}
    seconds: dict[str, list[float]] = {}
    task = None
    for seed in seeds:
        task = load_multimodal_task(split, seed)
        t0 = time.perf_counter()
        original = original_model(seed)
        oracle = oracle_model(split, seed)
        build_s = time.perf_counter() - t0  # 0 when both were cached
        models: list[tuple[str, nn.Module, float | None]] = [("original", original, None), ("retrain", oracle, None)]
        for row, (spec, cfg) in specs.items():
            t0 = time.perf_counter()
            models.append((row, spec.run(cfg, original, task, VisionContext(seed=seed)), time.perf_counter() - t0))
        for row, model, secs in models:
            ms = multimodal_metrics(joint_logits(model, task.forget_set), joint_logits(model, task.retain_set),
                                    joint_logits(model, task.test_set), features=features, seed=seed)
            for k, r in ms.items():
                rows.setdefault(row, {}).setdefault(k, []).append(r)
            if secs is not None:
                seconds.setdefault(row, []).append(secs)
            if progress:
                print(f"[multimodal/{split} seed {seed}] {row}" + (f" ({secs:.1f} s)" if secs is not None else ""))
        seconds.setdefault("build", []).append(build_s)
    assert task is not None
    report = Report(kind="bench", task={
        "benchmark": "multimodal", "split": split, "seeds": seeds, "forget_size": len(task.forget_set),
        "retain_size": len(task.retain_set), "test_size": len(task.test_set),
        "forget_patients": task.metadata["n_forget_patients"], "train_patients": task.metadata["n_train_patients"],
        "recipe": task.metadata["recipe"], "build_seconds": float(np.sum(seconds.pop("build"))),
    }, reference="retrain")
    for row, metrics in rows.items():
        run: dict[str, Any] = {}
        if row in seconds:
            run["seconds"] = float(np.mean(seconds[row]))
        if row in specs:
            run["method"] = variants[row][0]
            run["config"] = dataclasses.asdict(specs[row][1])
        role = {"original": "target", "retrain": "oracle"}.get(row, "unlearned")
        report.models[row] = ModelEntry(row, {k: _aggregate(v) for k, v in metrics.items()}, run=run or None, role=role)
    names = sorted({m for m, _ in variants.values()})
    report.citations = [registry.get("benchmark", "multimodal").record()] + [registry.get("method", n).record()
                                                                            for n in names]
    report.notes.append("AUC/F1 are macro over classes on the joint head; mia_svc_* is the share of forget records "
                        "an SVC(C=3, rbf) fit on retain vs test calls member (lower = less evidence; Retrain is the "
                        "target). Means over seeds ± population std (ddof=0).")
    if out:
        from obliviate.report.files import write_report

        write_report(report, out)  # report.json with its verdict, report.html and report.md beside it
    return report


SHORT = {"forget_auc": "D_f AUC", "forget_f1": "D_f F1", "test_auc": "D_t AUC", "test_f1": "D_t F1",
         "mia_svc_logits": "MIA logits", "mia_svc_entropy": "MIA entropy", "mia_svc_loss": "MIA loss"}


def print_multimodal_table(report: Report, metrics: Sequence[str] = TABLE_METRICS, console: Any = None) -> None:
    """Print the comparison as a rich table: mean ± std over seeds, seconds per unlearning run."""
    from obliviate.report.table import print_seed_table

    t = report.task
    print_seed_table(report, metrics, f"multimodal/{t.get('split')} (seeds {t.get('seeds')}; {t.get('forget_patients')} "
                     f"of {t.get('train_patients')} patients, {t.get('forget_size')} records forgotten)", SHORT, console)
