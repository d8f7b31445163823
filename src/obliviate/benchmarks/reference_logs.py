"""The retain model's statistics from an OpenUnlearning ``TOFU_EVAL.json`` (``--reference_logs FILE``).

OpenUnlearning (locuslab/open-unlearning d3d7cf9) compares an unlearned model with the retain model through
that model's saved evaluation logs (``retain_logs_path``; the HF dataset ``open-unlearning/eval`` ships them,
e.g. ``tofu_Llama-3.2-1B-Instruct_retain90/TOFU_EVAL.json``). Two entries feed its metrics
(``src/evals/metrics/privacy.py``):

- ``forget_truth_ratio.value_by_index[i].score``: the retain model's per-item forget truth ratio
  R_i = P_wrong / (P_correct + 1e-10), for forget quality (KS test);
- ``mia_min_k.agg_value``: its Min-K% (k = 0.4) AUC, forget (label 0) vs holdout (label 1), loss-like scores,
  the same convention as `obliviate.metrics.mia.mia_auc`, for PrivLeak.

`read_openunlearning_logs` turns them into an oracle `AuditView` that holds those statistics (and no scored
sets): metrics that need more of the oracle than its logs give are skipped with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from obliviate.data.io import DataError
from obliviate.metrics.tofu import ORACLE_MIN_K_AUC, ORACLE_TRUTH_RATIOS
from obliviate.scoring.types import AuditView


def read_openunlearning_logs(path: str | os.PathLike, n_forget: int | None = None,
                             option: str = "--reference_logs") -> AuditView:
    """The oracle view of an OpenUnlearning ``TOFU_EVAL.json``. ``n_forget``, when given, must equal the
    number of logged forget truth ratios (logs of another forget split would make forget quality meaningless)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{option} {path}: no such file; give the retain model's TOFU_EVAL.json from an "
                        "OpenUnlearning evaluation (saves/eval/<run>/TOFU_EVAL.json, or the open-unlearning/eval "
                        "dataset on the Hub)")
    try:
        logs = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{option} {path}: not a JSON file ({e})") from None
    if not isinstance(logs, dict):
        raise DataError(f"{option} {path}: expected OpenUnlearning's TOFU_EVAL.json (a JSON object of metrics)")
    view = AuditView(model_name=f"oracle (logs {p.name})")
    tr = logs.get("forget_truth_ratio")
    if isinstance(tr, dict) and isinstance(tr.get("value_by_index"), dict):
        items = sorted(tr["value_by_index"].items(), key=lambda kv: int(kv[0]))
        try:
            ratios = np.array([float(v["score"]) for _, v in items], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{option} {path}: forget_truth_ratio.value_by_index entries need a numeric 'score'") \
                from None
        if n_forget is not None and ratios.size != n_forget:
            raise DataError(f"{option} {path}: holds {ratios.size} forget truth ratios but the forget set has "
                            f"{n_forget} items; use the logs of the retain model for the same forget split "
                            "(retain90 <-> forget10, retain95 <-> forget05, retain99 <-> forget01)")
        view.extra[ORACLE_TRUTH_RATIOS] = ratios
    mk = logs.get("mia_min_k")
    if isinstance(mk, dict) and mk.get("agg_value") is not None:
        view.extra[ORACLE_MIN_K_AUC] = np.array(float(mk["agg_value"]))
    if not view.extra:
        raise DataError(f"{option} {path}: has neither forget_truth_ratio (with value_by_index) nor mia_min_k; "
                        "run the OpenUnlearning TOFU evaluation of the retain model with those metrics")
    return view
